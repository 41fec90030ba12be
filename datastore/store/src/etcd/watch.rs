//! etcd watches that survive disconnects: a task per watch re-creates the
//! etcd watch from the last delivered revision + 1 whenever the stream
//! breaks, so no event is lost or delivered twice; a compacted start ends
//! the watch with `StoreError::Compacted`, and a server whose revision went
//! back below what the watch already saw (restored from an older backup,
//! wiped) ends it with `StoreError::Rewound`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchResponse};
use tokio::sync::mpsc;

use crate::error::{Result, StoreError};
use crate::store::{KeyValue, Revision, WatchEvent, WatchStream};

/// Events buffered between the watch task and the consumer.
const CHANNEL_DEPTH: usize = 1024;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// etcd watches re-created after a broken stream, in this process.
static RECONNECTS: AtomicU64 = AtomicU64::new(0);

/// How many times this process's etcd watches were re-created from their
/// last delivered revision + 1 after the stream broke (an etcd restart, a
/// lost connection). A resumed watch loses and repeats nothing; a watch
/// that cannot resume (compaction) ends with `Compacted` instead.
pub fn reconnects() -> u64 {
    RECONNECTS.load(Ordering::Relaxed)
}

/// What to watch.
pub(super) struct WatchSpec {
    pub client: Client,
    /// The backend prefix stripped from delivered keys.
    pub prefix: String,
    /// etcd key range start.
    pub start: String,
    /// etcd key range end (exclusive).
    pub end: Vec<u8>,
    /// First revision to deliver.
    pub from: Revision,
}

/// Spawns the watch task on the current tokio runtime.
pub(super) fn start(spec: WatchSpec) -> WatchStream {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(run(spec, tx));
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Why one etcd watch stream ended.
enum StreamEnd {
    /// The consumer dropped the stream, or the watch ended with an error it received.
    Done,
    /// The connection broke: re-create the watch from `next`.
    Reconnect(String),
}

async fn run(mut spec: WatchSpec, tx: mpsc::Sender<Result<WatchEvent>>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let opts = WatchOptions::new()
            .with_range(spec.end.clone())
            .with_start_revision(spec.from)
            .with_progress_notify();
        let created = tokio::select! {
            r = spec.client.watch(spec.start.clone(), Some(opts)) => r,
            _ = tx.closed() => return,
        };
        let reason = match created {
            Ok(mut stream) => {
                backoff = Duration::from_millis(20);
                match pump(&mut spec, &mut stream, &tx).await {
                    StreamEnd::Done => return,
                    StreamEnd::Reconnect(why) => why,
                }
            }
            Err(e) => e.to_string(),
        };
        tracing::debug!(prefix = %spec.start, next = spec.from, reason = %reason, "etcd watch reconnecting");
        RECONNECTS.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tx.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Forwards one etcd watch stream's events until it ends.
async fn pump(
    spec: &mut WatchSpec,
    stream: &mut etcd_client::WatchStream,
    tx: &mpsc::Sender<Result<WatchEvent>>,
) -> StreamEnd {
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = tx.closed() => return StreamEnd::Done,
        };
        let resp = match msg {
            Ok(Some(resp)) => resp,
            Ok(None) => return StreamEnd::Reconnect("stream closed".into()),
            Err(e) => return StreamEnd::Reconnect(e.to_string()),
        };
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                let _ = tx
                    .send(Err(StoreError::Compacted {
                        requested: spec.from,
                        compact_revision: resp.compact_revision(),
                    }))
                    .await;
                return StreamEnd::Done;
            }
            return StreamEnd::Reconnect(format!("canceled: {}", resp.cancel_reason()));
        }
        if let Some(current) = rewound(spec, &resp) {
            tracing::warn!(prefix = %spec.start, seen = spec.from - 1, current, "etcd went back in revisions");
            let _ = tx
                .send(Err(StoreError::Rewound {
                    seen: spec.from - 1,
                    current,
                }))
                .await;
            return StreamEnd::Done;
        }
        if !forward(spec, &resp, tx).await {
            return StreamEnd::Done;
        }
    }
}

/// The server's revision when a (re-)created watch finds it below the last
/// revision this watch already saw: the keyspace was replaced, and waiting
/// for `from` would wait for changes that will never be the ones we missed.
/// (A server restarted on its own data keeps its revision.)
fn rewound(spec: &WatchSpec, resp: &WatchResponse) -> Option<Revision> {
    if !resp.created() {
        return None;
    }
    let current = resp.header()?.revision();
    (current < spec.from - 1).then_some(current)
}

/// Sends a response's events; false when the consumer is gone.
async fn forward(
    spec: &mut WatchSpec,
    resp: &WatchResponse,
    tx: &mpsc::Sender<Result<WatchEvent>>,
) -> bool {
    if resp.events().is_empty() && !resp.created() {
        // A progress notification: nothing in our range up to this revision.
        if let Some(h) = resp.header() {
            spec.from = spec.from.max(h.revision() + 1);
        }
        return true;
    }
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        let key = String::from_utf8_lossy(kv.key());
        let key = key.strip_prefix(&spec.prefix).unwrap_or(&key).to_string();
        let revision = kv.mod_revision();
        let event = match ev.event_type() {
            EventType::Put => WatchEvent::Put(KeyValue {
                key,
                value: kv.value().to_vec(),
                revision,
                create_revision: kv.create_revision(),
            }),
            EventType::Delete => WatchEvent::Delete { key, revision },
        };
        spec.from = revision + 1;
        if tx.send(Ok(event)).await.is_err() {
            return false;
        }
    }
    true
}
