//! SQLite watches: a thread per watch with its own connection checks
//! `PRAGMA data_version` every poll interval (a few microseconds when nothing
//! changed) and reads the change log only when another connection committed.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::ops;
use crate::error::Result;
use crate::store::{Revision, WatchEvent, WatchStream};

/// Events buffered between the polling thread and the consumer.
const CHANNEL_DEPTH: usize = 1024;

/// Opens the watch's connection, checks the start revision against the kept
/// history (failing with `Compacted` here), and starts the polling thread.
pub(super) fn start(
    path: &Path,
    prefix: String,
    from_revision: Revision,
    interval: Duration,
) -> Result<WatchStream> {
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
    let poller = Poller {
        conn,
        prefix,
        next: from,
        interval,
        tx,
    };
    std::thread::Builder::new()
        .name("tortie-sqlite-watch".into())
        .spawn(move || poller.run(version, first))
        .map_err(|e| crate::StoreError::Unavailable(format!("cannot start watch thread: {e}")))?;
    Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })))
}

struct Poller {
    conn: rusqlite::Connection,
    prefix: String,
    next: Revision,
    interval: Duration,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

impl Poller {
    /// Delivers `first`, then polls until the consumer goes away or an error
    /// (sent as the last item) ends the watch.
    fn run(mut self, version: i64, first: ops::ChangeBatch) {
        let mut version = Some(version);
        if !self.deliver(first) {
            return;
        }
        loop {
            std::thread::sleep(self.interval);
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

    /// Sends a batch; false when the consumer has dropped the stream.
    fn deliver(&mut self, batch: ops::ChangeBatch) -> bool {
        self.next = self.next.max(batch.revision + 1);
        batch
            .events
            .into_iter()
            .all(|ev| self.tx.blocking_send(Ok(ev)).is_ok())
    }
}
