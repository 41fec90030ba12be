//! Running the `nft` command (inside a network namespace when given): the
//! script goes on stdin, so one call is one atomic transaction.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::netns::{in_netns, NetnsError};

/// `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be run.
    #[error("running nft: {0}")]
    Spawn(#[source] std::io::Error),
    /// `nft` refused the input or the command.
    #[error("nft {args} failed (exit {code:?}): {stderr}")]
    Rejected {
        /// The arguments given.
        args: String,
        /// Exit code.
        code: Option<i32>,
        /// What nft said.
        stderr: String,
    },
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// Runs `nft ARGS` with `stdin` in the namespace at `netns`; its stdout.
pub fn run(netns: Option<&Path>, args: &[&str], stdin: &str) -> Result<Vec<u8>, NftError> {
    run_with(netns, args, stdin, |_| {})
}

/// As [`run`], handing `spawned` the PID of the `nft` process before it
/// reads its input (so before it can commit anything).
pub fn run_with(
    netns: Option<&Path>,
    args: &[&str],
    stdin: &str,
    spawned: impl FnOnce(u32) + Send + 'static,
) -> Result<Vec<u8>, NftError> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_string();
    let netns: Option<PathBuf> = netns.map(Path::to_path_buf);
    in_netns(netns.as_deref(), move || run_here(&args, &stdin, spawned))?
}

fn run_here(args: &[String], stdin: &str, spawned: impl FnOnce(u32)) -> Result<Vec<u8>, NftError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    spawned(child.id());
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).map_err(NftError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(NftError::Spawn)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(NftError::Rejected {
            args: args.join(" "),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
