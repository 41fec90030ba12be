//! Shared by the tortiectl integration tests: run the real binary against a
//! datastore URL, exactly as a user would (environment + stdin).

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `tortiectl ARGS` with `TORTIE_DATASTORE=url`, feeding `stdin`.
pub fn run_tortiectl(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tortiectl"))
        .args(args)
        .env("TORTIE_DATASTORE", url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
