//! Wake-ups for SQLite watches from Linux inotify (`inotify(7)`): one
//! inotify instance and one reader thread per process, shared by every watch
//! of every database (the per-user limit on inotify instances,
//! `fs.inotify.max_user_instances`, is 128 by default — far fewer than the
//! watches of a lab full of node agents). A watch subscribes to its
//! database's directory for the names `<db>`, `<db>-wal` and `<db>-journal`;
//! any `IN_MODIFY`, `IN_CREATE`, `IN_CLOSE_WRITE` or `IN_MOVED_TO` on one of
//! them (a commit in any process writes the WAL) wakes the subscription.
//!
//! Must not: decide whether something changed (the watch still asks
//! `PRAGMA data_version`), or be relied on for correctness — events can be
//! lost (queue overflow, a removed directory) or arrive before the commit is
//! visible, so watches keep a slow safety poll.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

/// The process-wide inotify instance and who listens to which names.
struct Shared {
    inotify: Inotify,
    subs: Mutex<Vec<Sub>>,
}

/// One subscription: a watched directory, the file names in it, the signal.
struct Sub {
    wd: WatchDescriptor,
    names: Vec<OsString>,
    signal: Weak<Signal>,
}

/// A generation counter bumped on every relevant event.
#[derive(Default)]
struct Signal {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Signal {
    fn bump(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }
}

/// A watch's registration; dropping it unsubscribes (lazily, on the next
/// event or subscription).
pub(super) struct Subscription {
    signal: Arc<Signal>,
    seen: u64,
}

impl Subscription {
    /// Blocks until a relevant event arrived since the last call or until
    /// `timeout`; true when woken by an event.
    pub(super) fn wait(&mut self, timeout: Duration) -> bool {
        let guard = self
            .signal
            .generation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let seen = self.seen;
        let (guard, _) = self
            .signal
            .changed
            .wait_timeout_while(guard, timeout, |g| *g == seen)
            .unwrap_or_else(|p| p.into_inner());
        self.seen = *guard;
        self.seen != seen
    }
}

/// Wakes a [`Subscription`]'s waiter without an inotify event (e.g. when
/// the watch's consumer went away and its thread should end now).
pub(super) struct Waker(Arc<Signal>);

impl Waker {
    /// Wakes the subscription's waiter.
    pub(super) fn wake(&self) {
        self.0.bump();
    }
}

impl Subscription {
    /// A handle that wakes this subscription.
    pub(super) fn waker(&self) -> Waker {
        Waker(Arc::clone(&self.signal))
    }
}

/// Subscribes to changes of the database at `db`; `Err` says why inotify
/// cannot be used (the caller falls back to fast polling).
pub(super) fn subscribe(db: &Path) -> Result<Subscription, String> {
    let shared = shared()?;
    let name = db
        .file_name()
        .ok_or_else(|| format!("{}: database path has no file name", db.display()))?;
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let names = ["", "-wal", "-journal"]
        .iter()
        .map(|suffix| {
            let mut n = name.to_os_string();
            n.push(suffix);
            n
        })
        .collect();
    let signal = Arc::new(Signal::default());
    let mut subs = shared.subs.lock().unwrap_or_else(|p| p.into_inner());
    // Adding the same directory again returns its existing descriptor.
    let wd = shared
        .inotify
        .add_watch(&dir, watch_flags())
        .map_err(|e| format!("inotify_add_watch({}): {e}", dir.display()))?;
    subs.retain(|s| s.signal.strong_count() > 0);
    subs.push(Sub {
        wd,
        names,
        signal: Arc::downgrade(&signal),
    });
    Ok(Subscription { signal, seen: 0 })
}

fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
}

/// The process-wide instance, started on first use; the error (also kept
/// for later callers) says why it could not be.
fn shared() -> Result<&'static Arc<Shared>, String> {
    static SHARED: OnceLock<Result<Arc<Shared>, String>> = OnceLock::new();
    SHARED.get_or_init(start).as_ref().map_err(Clone::clone)
}

fn start() -> Result<Arc<Shared>, String> {
    let inotify =
        Inotify::init(InitFlags::IN_CLOEXEC).map_err(|e| format!("inotify_init1: {e}"))?;
    let shared = Arc::new(Shared {
        inotify,
        subs: Mutex::new(Vec::new()),
    });
    let reader = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("tortie-sqlite-inotify".into())
        .spawn(move || read_loop(&reader))
        .map_err(|e| format!("cannot start the inotify reader thread: {e}"))?;
    Ok(shared)
}

/// Reads events forever and wakes the matching subscriptions. On a read
/// error it wakes everyone and stops; watches then run on their safety poll.
fn read_loop(shared: &Shared) {
    loop {
        match shared.inotify.read_events() {
            Ok(events) => dispatch(shared, &events),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "inotify read failed; sqlite watches fall back to their safety poll");
                let subs = shared.subs.lock().unwrap_or_else(|p| p.into_inner());
                subs.iter()
                    .filter_map(|s| s.signal.upgrade())
                    .for_each(|s| s.bump());
                return;
            }
        }
    }
}

fn dispatch(shared: &Shared, events: &[InotifyEvent]) {
    let mut subs = shared.subs.lock().unwrap_or_else(|p| p.into_inner());
    subs.retain(|s| s.signal.strong_count() > 0);
    for sub in subs.iter() {
        if events.iter().any(|ev| concerns(ev, sub)) {
            if let Some(signal) = sub.signal.upgrade() {
                signal.bump();
            }
        }
    }
}

/// Whether `ev` may mean a commit to `sub`'s database: an event on one of
/// its names, a lost-events overflow, or its directory's watch going away.
fn concerns(ev: &InotifyEvent, sub: &Sub) -> bool {
    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
        return true;
    }
    if ev.wd != sub.wd {
        return false;
    }
    if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
        return true;
    }
    ev.name.as_ref().is_some_and(|n| sub.names.contains(n))
}

/// Tests of the process-wide instance on a real directory.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_the_wal_wakes_and_other_names_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let mut sub = subscribe(&db).unwrap();
        std::fs::write(dir.path().join("other.db-wal"), b"x").unwrap();
        std::fs::write(dir.path().join("x.db-shm"), b"x").unwrap();
        assert!(!sub.wait(Duration::from_millis(200)));
        std::fs::write(dir.path().join("x.db-wal"), b"x").unwrap();
        assert!(sub.wait(Duration::from_secs(30)));
    }
}
