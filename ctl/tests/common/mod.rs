//! Shared by the tortiectl integration tests: run the real binary against a
//! datastore URL, exactly as a user would (environment + stdin).

use std::process::{Command, Output};

/// Runs `tortiectl ARGS` with `TORTIE_DATASTORE=url`, feeding `stdin`.
pub fn run_tortiectl(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tortiectl"));
    cmd.args(args)
        .env("TORTIE_DATASTORE", url)
        .env_remove("RUST_LOG");
    tortie_testkit::process::output_with_stdin(&mut cmd, stdin).unwrap()
}
