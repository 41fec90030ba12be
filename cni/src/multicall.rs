//! One executable for `tortie`, `tortie-ipam` and `install-cni`, chosen by
//! the name it is run as (as Calico ships `calico` and `calico-ipam` as one
//! binary). The container image holds this binary once, under the three
//! names; installed on a host it is `tortie` and `tortie-ipam`. The code
//! each name runs is the same library code the separate binaries run.

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;

use crate::plugin_input::Input;

/// The names the binary answers to.
pub const NAMES: [&str; 3] = ["tortie", "tortie-ipam", "install-cni"];

/// What `tortie` runs: the CNI plugin.
pub fn tortie_main() -> i32 {
    crate::main_entry(|input| match input {
        Input::Version => Ok(Some(crate::version::version_info())),
        Input::Invoke(inv) => inv.run(),
    })
}

/// What `tortie-ipam` runs: the CNI IPAM plugin.
pub fn ipam_main() -> i32 {
    crate::main_entry(|input| match input {
        Input::Version => Ok(Some(crate::version::version_info())),
        Input::Invoke(inv) => crate::ipam_plugin::run(&inv),
    })
}

/// The name the process was started as (`argv[0]`'s last path component).
pub fn invoked_name(argv0: Option<&OsStr>) -> Option<String> {
    let base = Path::new(argv0?).file_name()?;
    Some(base.to_string_lossy().into_owned())
}

/// Runs what `argv[0]` names; any other name is a usage error (exit 2).
pub fn main() -> ExitCode {
    let argv0 = std::env::args_os().next();
    match invoked_name(argv0.as_deref()).as_deref() {
        Some("tortie") => ExitCode::from(exit_byte(tortie_main())),
        Some("tortie-ipam") => ExitCode::from(exit_byte(ipam_main())),
        Some("install-cni") => crate::install::cli::main(),
        other => {
            eprintln!(
                "tortie-cni: run as one of {} (a link or copy with that name), not {:?}",
                NAMES.join(", "),
                other.unwrap_or("")
            );
            ExitCode::from(2)
        }
    }
}

fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_last_path_component() {
        let n = |s: &str| invoked_name(Some(OsStr::new(s)));
        assert_eq!(
            n("/opt/cni/bin/tortie-ipam").as_deref(),
            Some("tortie-ipam")
        );
        assert_eq!(n("tortie").as_deref(), Some("tortie"));
        assert_eq!(
            n("/usr/local/bin/install-cni").as_deref(),
            Some("install-cni")
        );
        assert_eq!(invoked_name(None), None);
    }
}
