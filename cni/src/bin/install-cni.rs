//! `install-cni`: installs tortie's CNI plugins and network configuration
//! on the host folders mounted into the container (the DaemonSet's init
//! container). Configured by environment; see `install-cni --help`.

fn main() -> std::process::ExitCode {
    tortie_cni::install::cli::main()
}
