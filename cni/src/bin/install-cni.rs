//! `install-cni`: installs tortie's CNI plugins and network configuration
//! on the host folders mounted into the container (the DaemonSet's init
//! container). Configured by environment; see `install-cni --help`.

use std::process::ExitCode;

use tortie_cni::install::{self, InstallSettings};

fn usage() -> String {
    let mut s = String::from(
        "install-cni: copies tortie and tortie-ipam into the host's CNI plugin folder and writes\n\
         the tortie network configuration, each only when it changed (safe to rerun).\n\n\
         Usage: install-cni [--help | --version]\n\nEnvironment:\n",
    );
    for (var, what) in install::settings::ENV_HELP {
        s.push_str(&format!("  {var}\n      {what}\n"));
    }
    s
}

fn main() -> ExitCode {
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
        .map_err(install::InstallError::from)
        .and_then(|s| install::install(&s));
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
