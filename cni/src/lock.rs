//! The per-host IPAM lock: an exclusive `flock` on a file, polled until a
//! deadline; a lock still busy at the deadline is CNI error 11 (try again later).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::CniError;

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct HostLock {
    _flock: Flock<File>,
}

/// Takes the exclusive lock on `path` (creating it and its directory), waiting at most `timeout`.
pub fn lock_host(path: &Path, timeout: Duration) -> Result<HostLock, CniError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CniError::io(format!("create {}", dir.display()), e))?;
    }
    let deadline = Instant::now() + timeout;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| CniError::io(format!("open lock {}", path.display()), e))?;
    let mut backoff = Duration::from_micros(200);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => return Ok(HostLock { _flock: flock }),
            Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                // Polling a lock held by another plugin process; no event to wait on.
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(10));
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(CniError::TryAgainLater(format!(
                    "IPAM lock {} still held after {timeout:?}",
                    path.display()
                )))
            }
            Err((_, e)) => {
                return Err(CniError::io(
                    format!("flock {}", path.display()),
                    std::io::Error::from(e),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_past_the_timeout_asks_to_try_again_later() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/ipam.lock");
        let held = lock_host(&p, Duration::from_secs(1)).unwrap();
        let e = lock_host(&p, Duration::from_millis(30)).unwrap_err();
        assert_eq!(e.code(), 11);
        drop(held);
        assert!(lock_host(&p, Duration::from_millis(30)).is_ok());
    }
}
