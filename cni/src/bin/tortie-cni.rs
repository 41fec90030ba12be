//! `tortie-cni`: `tortie`, `tortie-ipam` and `install-cni` in one
//! executable, chosen by the name it runs as (the container image's form).

fn main() -> std::process::ExitCode {
    tortie_cni::multicall::main()
}
