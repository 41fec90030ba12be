//! Host files felix writes: sysctls (per namespace) and the MTU file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::netns::{in_netns, NetnsError};

/// Writing a sysctl or the MTU file failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file write failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// Writes each `net/...` sysctl whose value differs, inside the namespace
/// (`/proc/sys/net` shows the namespace of the thread that opens it). A
/// failing write (a workload interface gone) does not stop the others; the
/// first failure is returned. Returns how many were written.
pub fn apply_sysctls(
    netns: Option<&Path>,
    sysctls: &BTreeMap<String, String>,
) -> Result<usize, HostError> {
    let sysctls = sysctls.clone();
    in_netns(netns, move || {
        let mut n = 0;
        let mut first = None;
        for (k, v) in &sysctls {
            let path = Path::new("/proc/sys").join(k);
            let cur = std::fs::read_to_string(&path).unwrap_or_default();
            if cur.trim() == v {
                continue;
            }
            match std::fs::write(&path, v) {
                Ok(()) => n += 1,
                Err(source) => {
                    first.get_or_insert(HostError::Write { path, source });
                }
            }
        }
        first.map_or(Ok(n), Err)
    })?
}

/// Writes the pod MTU to `path` (creating its folder) when it differs.
pub fn write_mtu_file(path: &Path, mtu: u32) -> Result<(), HostError> {
    let want = format!("{mtu}\n");
    if std::fs::read_to_string(path).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let err = |source| HostError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, want).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
