//! Running a closure inside a network namespace given by path.
//!
//! Namespaces are per thread: the closure runs on a fresh thread that joins
//! the namespace (nix's safe `setns`), so the caller's namespace never
//! changes. Sockets created there stay bound to the namespace; children
//! spawned there start in it.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

/// Entering a namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("opening network namespace {path}: {source}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `setns` failed.
    #[error("entering network namespace {path}: {source}")]
    Enter {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// The thread running the closure panicked.
    #[error("the thread running in network namespace {0} panicked")]
    Panicked(PathBuf),
}

/// Runs `f` in the namespace at `path` (or in the current one for `None`).
pub fn in_netns<T, F>(path: Option<&Path>, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(path) = path else {
        return Ok(f());
    };
    let path = path.to_path_buf();
    let file = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    let p2 = path.clone();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|source| NetnsError::Enter { path: p2, source })?;
        Ok(f())
    })
    .join()
    .map_err(|_| NetnsError::Panicked(path))?
}
