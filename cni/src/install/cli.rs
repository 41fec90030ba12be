//! The `install-cni` command line: `--help`, `--version`, and the install
//! itself with a line per file on stdout and warnings on stderr.

use std::process::ExitCode;

use super::{install, settings, InstallError, InstallSettings};

fn usage() -> String {
    let mut s = String::from(
        "install-cni: copies tortie and tortie-ipam into the host's CNI plugin folder and writes\n\
         the tortie network configuration, each only when it changed (safe to rerun).\n\n\
         Usage: install-cni [--help | --version]\n\nEnvironment:\n",
    );
    for (var, what) in settings::ENV_HELP {
        s.push_str(&format!("  {var}\n      {what}\n"));
    }
    s
}

/// Runs `install-cni` with the process's arguments and environment.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("install-cni {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("install-cni: unexpected argument {other:?} (configuration comes from the environment; see --help)");
            return ExitCode::from(2);
        }
    }
    let outcome = InstallSettings::from_env(|k| std::env::var(k).ok())
        .map_err(InstallError::from)
        .and_then(|s| install(&s));
    match outcome {
        Ok(report) => {
            for (path, action) in &report.files {
                println!("install-cni: {} {}", action.as_str(), path.display());
            }
            for w in &report.warnings {
                eprintln!("install-cni: warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("install-cni: {e}; nothing more was written");
            ExitCode::FAILURE
        }
    }
}
