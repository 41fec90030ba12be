//! Running code inside the pod's network namespace: a dedicated thread
//! enters it with `setns` (per-thread for network namespaces), runs the
//! closure and exits, so the main thread never leaves the host namespace.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::error::CniError;

/// Opens a namespace file; `Ok(None)` when it no longer exists.
pub fn open(path: &Path) -> Result<Option<File>, CniError> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CniError::Netns {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Runs `f` on a new thread that has joined the network namespace `ns`.
pub fn run_in<T: Send>(
    ns: &File,
    path: &Path,
    f: impl FnOnce() -> Result<T, CniError> + Send,
) -> Result<T, CniError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| CniError::Netns {
                path: path.display().to_string(),
                reason: format!("setns: {e}"),
            })?;
            f()
        })
        .join()
        .map_err(|_| CniError::Netns {
            path: path.display().to_string(),
            reason: "worker thread panicked".into(),
        })?
    })
}
