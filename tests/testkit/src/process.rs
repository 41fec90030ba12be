//! Child processes that are killed (by PID, with SIGKILL) and reaped when dropped.

use std::process::{Child, Command, Stdio};

/// Owns a spawned child; dropping it kills and reaps the child.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed. Output goes where `cmd` says.
    pub fn spawn(name: &str, cmd: &mut Command) -> std::io::Result<Self> {
        let child = cmd.stdin(Stdio::null()).spawn()?;
        Ok(Self {
            child: Some(child),
            name: name.to_string(),
        })
    }

    /// Adopts an already spawned child.
    pub fn adopt(name: &str, child: Child) -> Self {
        Self {
            child: Some(child),
            name: name.to_string(),
        }
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The name given at spawn time (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Has the child exited? Returns its status if so.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the child.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Kills (SIGKILL) and reaps the child now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills every process whose PID is listed in `pidfile` (daemons that fork,
/// like FRR or BIRD started with `-P`), ignoring errors, and waits (up to
/// 10 s) until each is gone or a zombie: a daemon started again at once
/// must not find the old one still holding its control socket (BIRD:
/// "I found another BIRD running").
pub fn kill_pidfile(pidfile: &std::path::Path) {
    let Ok(s) = std::fs::read_to_string(pidfile) else {
        return;
    };
    let pids: Vec<u32> = s
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for pid in &pids {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
    let _ = crate::wait_until(
        "killed daemons to exit",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(10),
        || !pids.iter().any(|&p| alive(p)),
    );
}

/// Does `pid` run (exists and is not a zombie)?
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Runs `cmd` to its end with `stdin` as its standard input, capturing
/// stdout and stderr (what a runtime or a user piping a manifest does).
pub fn output_with_stdin(cmd: &mut Command, stdin: &str) -> std::io::Result<std::process::Output> {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes())?;
    }
    child.wait_with_output()
}
