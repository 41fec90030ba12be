//! SQLite watches: a thread per watch with its own connection checks
//! `PRAGMA data_version` (a few microseconds when nothing changed) and reads
//! the change log only when another connection committed.
//!
//! When to check: an idle watch sleeps until inotify reports a write to the
//! database's files (`notify`), or the safety poll (`idle_poll_interval`,
//! 60 s) expires; dropping the stream wakes it too, so its thread ends. After an event or a delivered change the watch is "hot"
//! for [`HOT_WINDOW`] and checks every `poll_interval` (1 ms): the WAL write
//! that wakes it can precede the commit becoming visible in the WAL index.
//! Without inotify it checks every `poll_interval` while hot and every
//! 50 ms ([`FALLBACK_IDLE`]) otherwise.
//!
//! Must not: depend on inotify for correctness (events can be lost or early).

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{notify, ops};
use crate::error::Result;
use crate::store::{Revision, WatchEvent, WatchStream};

/// Events buffered between the polling thread and the consumer.
const CHANNEL_DEPTH: usize = 1024;

/// How long a watch keeps checking every `poll_interval` after an inotify
/// event or a delivered change.
const HOT_WINDOW: Duration = Duration::from_millis(20);

/// Without inotify, how often an idle watch checks (after [`HOT_WINDOW`]
/// without a change): a change then waits up to this long, but a lab of
/// hundreds of agents whose processes got no inotify instance
/// (`fs.inotify.max_user_instances`, 128 by default) does not spend a core
/// polling every millisecond.
const FALLBACK_IDLE: Duration = Duration::from_millis(50);

/// The watch's check intervals ([`super::SqliteOptions`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Polls {
    /// While hot, and always without inotify.
    pub(super) hot: Duration,
    /// The safety poll of an idle watch.
    pub(super) idle: Duration,
}

/// Opens the watch's connection, checks the start revision against the kept
/// history (failing with `Compacted` here), and starts the polling thread.
pub(super) fn start(
    path: &Path,
    prefix: String,
    from_revision: Revision,
    polls: Polls,
) -> Result<WatchStream> {
    // Subscribe before reading the version, so no commit falls in between.
    let wake = match notify::subscribe(path) {
        Ok(sub) => Some(sub),
        Err(why) => {
            tracing::warn!(db = %path.display(), %why, "no inotify for this sqlite watch; polling every {:?} (every {:?} after a change)", polls.idle.min(FALLBACK_IDLE), polls.hot);
            None
        }
    };
    let mut conn = ops::connect(path)?;
    let from = if from_revision <= 0 {
        ops::revision(&conn)? + 1
    } else {
        from_revision
    };
    // Read the version before the first snapshot: a commit after this read
    // changes it, so the poller cannot miss a commit the snapshot missed.
    let version = ops::data_version(&conn)?;
    let first = ops::changes_since(&mut conn, &prefix, from)?;
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let on_drop = WakeOnDrop(wake.as_ref().map(notify::Subscription::waker));
    let poller = Poller {
        conn,
        prefix,
        next: from,
        polls,
        wake,
        tx,
    };
    std::thread::Builder::new()
        .name("tortie-sqlite-watch".into())
        .spawn(move || poller.run(version, first))
        .map_err(|e| crate::StoreError::Unavailable(format!("cannot start watch thread: {e}")))?;
    Ok(Box::pin(futures::stream::unfold(
        (rx, on_drop),
        |(mut rx, on_drop)| async move { rx.recv().await.map(|item| (item, (rx, on_drop))) },
    )))
}

/// Held by the stream: when the consumer drops it, the polling thread is
/// woken to notice and end (an idle watch would otherwise sleep until its
/// safety poll).
struct WakeOnDrop(Option<notify::Waker>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(w) = &self.0 {
            w.wake();
        }
    }
}

struct Poller {
    conn: rusqlite::Connection,
    prefix: String,
    next: Revision,
    polls: Polls,
    /// `None` when inotify could not be set up: poll every `polls.hot`.
    wake: Option<notify::Subscription>,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

impl Poller {
    /// Delivers `first`, then checks for commits until the consumer goes
    /// away or an error (sent as the last item) ends the watch.
    fn run(mut self, version: i64, first: ops::ChangeBatch) {
        let mut version = Some(version);
        if !self.deliver(first) {
            return;
        }
        let mut hot_until = Instant::now() + HOT_WINDOW;
        loop {
            if self.sleep(hot_until) {
                hot_until = Instant::now() + HOT_WINDOW;
            }
            if self.tx.is_closed() {
                return;
            }
            let now = match ops::data_version(&self.conn) {
                Ok(v) => Some(v),
                Err(e) => {
                    let _ = self.tx.blocking_send(Err(e));
                    return;
                }
            };
            if now == version {
                continue;
            }
            version = now;
            hot_until = Instant::now() + HOT_WINDOW;
            match ops::changes_since(&mut self.conn, &self.prefix, self.next) {
                Ok(batch) => {
                    if !self.deliver(batch) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(prefix = %self.prefix, error = %e, "sqlite watch ends");
                    let _ = self.tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    }

    /// Waits for the next check: `polls.hot` while before `hot_until` or
    /// without inotify, else until an event or the safety poll. True when
    /// an inotify event woke it.
    fn sleep(&mut self, hot_until: Instant) -> bool {
        let timeout = if Instant::now() < hot_until {
            self.polls.hot
        } else {
            self.polls.idle
        };
        match &mut self.wake {
            Some(sub) => sub.wait(timeout),
            None => {
                std::thread::sleep(timeout.min(FALLBACK_IDLE));
                false
            }
        }
    }

    /// Sends a batch; false when the consumer has dropped the stream.
    fn deliver(&mut self, batch: ops::ChangeBatch) -> bool {
        self.next = self.next.max(batch.revision + 1);
        batch
            .events
            .into_iter()
            .all(|ev| self.tx.blocking_send(Ok(ev)).is_ok())
    }
}
