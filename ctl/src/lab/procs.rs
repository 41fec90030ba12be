//! The processes a lab starts, recorded so that it stops only those: at
//! launch the lab records each PID with the binary it runs
//! (`/proc/PID/exe`) and its start time (`/proc/PID/stat` field 22, clock
//! ticks since boot, fixed for a process's life). Before a signal it reads
//! both again: a PID that now belongs to another process (the agent exited
//! and the number was reused) is left alone.
//!
//! Must not: signal a PID whose binary and start time differ from the
//! record, or one without a record.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// What identifies one started process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcIdentity {
    /// The binary it runs.
    pub exe: PathBuf,
    /// Its start time in clock ticks after boot.
    pub start_time: u64,
}

/// What became of a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was ours and has stopped.
    Stopped,
    /// It had already exited.
    Gone,
    /// The PID runs something else now (or nothing was recorded for it): left alone.
    NotOurs,
}

/// `/proc/PID/exe`, without the ` (deleted)` the kernel appends once the
/// binary was replaced on disk (a rebuild while the lab runs).
fn exe_of(pid: u32) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let s = link.to_string_lossy();
    Some(PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s)))
}

/// The start time, or `None` for a zombie or a PID that does not exist.
fn start_time_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// True while `pid` runs and is the process `id` recorded.
pub fn is_same(pid: u32, id: &ProcIdentity) -> bool {
    start_time_of(pid) == Some(id.start_time) && exe_of(pid).as_deref() == Some(&id.exe)
}

fn alive(pid: u32) -> bool {
    start_time_of(pid).is_some()
}

/// Records `pid` once it runs `exe` (it may still be `ip netns exec`, which
/// execs the binary in place): polls up to 5 s.
pub fn record(pid: u32, exe: &Path) -> anyhow::Result<ProcIdentity> {
    let want = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match (exe_of(pid), start_time_of(pid)) {
            (Some(e), Some(start_time)) if e == want => {
                return Ok(ProcIdentity { exe: e, start_time });
            }
            (_, None) => bail!("process {pid} exited before it ran {}", want.display()),
            _ if Instant::now() > deadline => {
                bail!("process {pid} did not run {} within 5 s", want.display())
            }
            _ => std::thread::park_timeout(Duration::from_millis(5)),
        }
    }
}

/// How a recorded process is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// SIGTERM, then SIGKILL after 5 s.
    Term,
    /// SIGKILL at once (a crash).
    Kill,
}

/// Stops `pid` if it is still the process `id` recorded; waits up to 5 s
/// for it to go.
pub fn stop(pid: u32, id: Option<&ProcIdentity>, how: How) -> Outcome {
    if !alive(pid) {
        return Outcome::Gone;
    }
    let Some(id) = id.filter(|id| is_same(pid, id)) else {
        return Outcome::NotOurs;
    };
    let target = Pid::from_raw(pid as i32);
    let first = match how {
        How::Term => Signal::SIGTERM,
        How::Kill => Signal::SIGKILL,
    };
    let _ = kill(target, first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_same(pid, id) && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(20));
    }
    if is_same(pid, id) {
        let _ = kill(target, Signal::SIGKILL);
    }
    Outcome::Stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    struct Sleeper(Child);

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn sleeper() -> (Sleeper, u32) {
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        (Sleeper(child), pid)
    }

    fn sleep_bin() -> PathBuf {
        std::fs::canonicalize(
            std::env::var_os("PATH")
                .and_then(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("sleep"))
                        .find(|f| f.exists())
                })
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_recorded_process_is_recognised_and_stopped() {
        let (mut s, pid) = sleeper();
        let id = record(pid, &sleep_bin()).unwrap();
        assert!(is_same(pid, &id));
        assert_eq!(stop(pid, Some(&id), How::Term), Outcome::Stopped);
        assert!(s.0.wait().unwrap().code().is_none(), "killed by a signal");
    }

    #[test]
    fn a_pid_with_another_start_time_or_binary_is_left_alone() {
        let (mut s, pid) = sleeper();
        let id = record(pid, &sleep_bin()).unwrap();
        let reused = ProcIdentity {
            start_time: id.start_time + 1,
            ..id.clone()
        };
        assert_eq!(stop(pid, Some(&reused), How::Kill), Outcome::NotOurs);
        let other_binary = ProcIdentity {
            exe: "/usr/local/bin/tortie-node".into(),
            ..id.clone()
        };
        assert_eq!(stop(pid, Some(&other_binary), How::Kill), Outcome::NotOurs);
        assert_eq!(stop(pid, None, How::Kill), Outcome::NotOurs);
        assert!(s.0.try_wait().unwrap().is_none(), "still running");
        assert!(is_same(pid, &id));
    }

    #[test]
    fn an_exited_process_is_gone_and_recording_it_fails() {
        let (mut s, pid) = sleeper();
        let id = record(pid, &sleep_bin()).unwrap();
        s.0.kill().unwrap();
        s.0.wait().unwrap();
        assert_eq!(stop(pid, Some(&id), How::Term), Outcome::Gone);
        assert!(record(pid, &sleep_bin()).is_err());
    }

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_spaces() {
        let me = std::process::id();
        assert!(start_time_of(me).is_some());
        assert!(exe_of(me).is_some());
    }
}
