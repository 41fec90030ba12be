//! Delegating to an IPAM plugin the way the spec says: find `ipam.type` in
//! CNI_PATH, exec it with the same environment and the same network
//! configuration on stdin, read its result or its error JSON from stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde::Deserialize;

use crate::env::Command;
use crate::error::CniError;
use crate::result::CniResult;

/// Checks a plugin name as the reference library (libcni's
/// `invoke.FindInPath`) does before joining it to a CNI_PATH directory: not
/// empty, no path separator. `.`, `..` and NUL are refused too (libcni
/// finds no regular file by those names either).
pub fn check_plugin_name(plugin: &str) -> Result<(), CniError> {
    let why = if plugin.is_empty() {
        "missing (e.g. \"tortie-ipam\" or \"host-local\")".to_string()
    } else if plugin.contains('/') || plugin == "." || plugin == ".." || plugin.contains('\0') {
        format!("{plugin:?} must be a plugin name found in CNI_PATH, not a path")
    } else {
        return Ok(());
    };
    Err(CniError::config("ipam.type", why))
}

/// Finds `plugin` in the CNI_PATH directories: the first regular file of
/// that name (symbolic links followed), as libcni's `FindInPath`.
pub fn find_plugin(plugin: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    check_plugin_name(plugin)?;
    path.iter()
        .map(|dir| dir.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::config(
                "ipam.type",
                format!("plugin {plugin:?} not found in CNI_PATH {path:?}"),
            )
        })
}

/// Runs the IPAM plugin `binary` for `command` with `config` on stdin.
///
/// Returns the decoded result for ADD, `None` for DEL, CHECK and GC.
pub fn exec_ipam(
    binary: &Path,
    command: Command,
    config: &[u8],
) -> Result<Option<CniResult>, CniError> {
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child = Process::new(binary)
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::io(format!("exec IPAM plugin {}", binary.display()), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(config)
            .map_err(|e| CniError::io(format!("write config to {name}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::io(format!("wait for {name}"), e))?;
    if !out.status.success() {
        return Err(delegate_error(&name, &out.stdout));
    }
    if command != Command::Add {
        return Ok(None);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| CniError::Decode {
            what: "IPAM plugin result",
            source: e,
        })?;
    CniResult::from_json(&v).map(Some)
}

#[derive(Deserialize)]
struct ErrorJson {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// The plugin exited non-zero: pass on its error JSON, or say it gave none.
fn delegate_error(plugin: &str, stdout: &[u8]) -> CniError {
    match serde_json::from_slice::<ErrorJson>(stdout) {
        Ok(e) => CniError::Delegate {
            plugin: plugin.into(),
            code: if e.code == 0 { 999 } else { e.code },
            msg: e.msg,
            details: e.details,
        },
        Err(_) => CniError::Delegate {
            plugin: plugin.into(),
            code: 999,
            msg: "IPAM plugin failed without error JSON".into(),
            details: String::from_utf8_lossy(stdout).trim().to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_missing_from_cni_path_is_an_invalid_config() {
        let e = find_plugin("no-such-ipam", &["/nonexistent".into()]).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("no-such-ipam"), "{e}");
    }

    #[test]
    fn plugin_names_that_are_paths_are_refused_before_any_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("bin");
        std::fs::create_dir(&inner).unwrap();
        std::fs::write(dir.path().join("evil"), "#!/bin/sh\n").unwrap();
        let path = [inner];
        for name in ["", "/bin/true", "../evil", "..", ".", "a/b", "x\0y"] {
            let e = find_plugin(name, &path).unwrap_err();
            assert_eq!(e.code(), 7, "{name:?}: {e}");
            assert!(e.to_string().contains("ipam.type"), "{e}");
        }
        assert!(check_plugin_name("host-local").is_ok());
    }

    #[test]
    fn a_directory_is_not_a_plugin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("host-local")).unwrap();
        let e = find_plugin("host-local", &[dir.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }

    #[test]
    fn a_delegates_error_json_is_passed_on() {
        let e = delegate_error("host-local", br#"{"code":11,"msg":"busy","details":"d"}"#);
        assert_eq!(e.code(), 11);
        assert_eq!(e.msg(), "busy");
    }

    #[test]
    fn a_delegate_without_error_json_still_fails_with_its_output() {
        let e = delegate_error("x", b"panic: oops");
        assert!(e.details().contains("panic"));
    }

    #[test]
    fn a_delegates_result_is_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-ipam");
        std::fs::write(
            &script,
            "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.1.0.3/32\"}]}'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = find_plugin("fake-ipam", &[dir.path().to_path_buf()]).unwrap();
        let r = exec_ipam(&found, Command::Add, b"{}").unwrap().unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.3/32");
    }
}
