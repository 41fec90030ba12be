//! A [`Store`] wrapper that counts what its user asks of the datastore:
//! requests per operation, payload bytes sent and received, watch events.
//! tortie-node wraps its store in one to report `tortie_datastore_*`
//! metrics, and the benchmarks read them to tell an idle agent's cost.
//!
//! Bytes are payload bytes (keys plus values) as the store API sees them,
//! not wire bytes: gRPC/HTTP/2 framing, TCP and keep-alives are not in
//! them (the benchmarks measure those on etcd's side).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::error::Result;
use crate::store::{KeyValue, ListResult, Revision, Store, TxnOp, WatchEvent, WatchStream};

/// The operations counted, as they appear in `op` labels.
pub const OPS: [&str; 6] = ["get", "list", "txn", "watch", "compact", "revision"];

/// Counters of one [`CountingStore`] (cheap to share: all atomics).
#[derive(Debug, Default)]
pub struct StoreStats {
    requests: [AtomicU64; OPS.len()],
    /// Keys returned by lists.
    pub listed_keys: AtomicU64,
    /// Payload bytes received (keys and values of get/list results and of
    /// watch events).
    pub received_bytes: AtomicU64,
    /// Payload bytes sent (keys and values written).
    pub sent_bytes: AtomicU64,
    /// Watch events delivered.
    pub watch_events: AtomicU64,
}

impl StoreStats {
    fn count(&self, op: usize) {
        self.requests[op].fetch_add(1, Ordering::Relaxed);
    }

    fn received(&self, bytes: usize) {
        self.received_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Requests of operation `op` (one of [`OPS`]; 0 for another name).
    pub fn requests(&self, op: &str) -> u64 {
        OPS.iter()
            .position(|o| *o == op)
            .map_or(0, |i| self.requests[i].load(Ordering::Relaxed))
    }

    /// `(op, requests)` for every operation.
    pub fn all_requests(&self) -> Vec<(&'static str, u64)> {
        OPS.iter()
            .zip(&self.requests)
            .map(|(o, n)| (*o, n.load(Ordering::Relaxed)))
            .collect()
    }
}

fn kv_bytes(kv: &KeyValue) -> usize {
    kv.key.len() + kv.value.len()
}

fn event_bytes(ev: &WatchEvent) -> usize {
    match ev {
        WatchEvent::Put(kv) => kv_bytes(kv),
        WatchEvent::Delete { key, .. } => key.len(),
    }
}

fn op_bytes(op: &TxnOp) -> usize {
    match op {
        TxnOp::Create { key, value }
        | TxnOp::Put { key, value }
        | TxnOp::Update { key, value, .. } => key.len() + value.len(),
        TxnOp::Delete { key, .. } => key.len(),
    }
}

const GET: usize = 0;
const LIST: usize = 1;
const TXN: usize = 2;
const WATCH: usize = 3;
const COMPACT: usize = 4;
const REVISION: usize = 5;

/// A store that counts every request made through it into [`StoreStats`].
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    stats: Arc<StoreStats>,
}

impl CountingStore {
    /// Wraps `inner`; the counters start at zero.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            stats: Arc::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<StoreStats> {
        Arc::clone(&self.stats)
    }

    fn write(&self, ops: &[TxnOp]) {
        self.stats.count(TXN);
        let bytes: usize = ops.iter().map(op_bytes).sum();
        self.stats
            .sent_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

impl Store for CountingStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        self.stats.count(GET);
        self.inner
            .get(key)
            .map(|r| {
                if let Ok(Some(kv)) = &r {
                    self.stats.received(kv_bytes(kv));
                }
                r
            })
            .boxed()
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<ListResult>> {
        self.stats.count(LIST);
        self.inner
            .list(prefix)
            .map(|r| {
                if let Ok(l) = &r {
                    self.stats
                        .listed_keys
                        .fetch_add(l.items.len() as u64, Ordering::Relaxed);
                    self.stats.received(l.items.iter().map(kv_bytes).sum());
                }
                r
            })
            .boxed()
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>> {
        self.stats.count(TXN);
        self.stats
            .sent_bytes
            .fetch_add((key.len() + value.len()) as u64, Ordering::Relaxed);
        self.inner.create(key, value)
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Revision,
    ) -> BoxFuture<'a, Result<Revision>> {
        self.stats.count(TXN);
        self.stats
            .sent_bytes
            .fetch_add((key.len() + value.len()) as u64, Ordering::Relaxed);
        self.inner.update(key, value, expected)
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>> {
        self.stats.count(TXN);
        self.stats
            .sent_bytes
            .fetch_add((key.len() + value.len()) as u64, Ordering::Relaxed);
        self.inner.put(key, value)
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<Revision>> {
        self.stats.count(TXN);
        self.inner.delete(key, expected)
    }

    fn txn(&self, ops: Vec<TxnOp>) -> BoxFuture<'_, Result<Revision>> {
        self.write(&ops);
        self.inner.txn(ops)
    }

    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        from_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        self.stats.count(WATCH);
        let stats = Arc::clone(&self.stats);
        self.inner
            .watch(prefix, from_revision)
            .map(move |r| {
                r.map(|s| -> WatchStream {
                    Box::pin(s.inspect(move |item| {
                        if let Ok(ev) = item {
                            stats.watch_events.fetch_add(1, Ordering::Relaxed);
                            stats.received(event_bytes(ev));
                        }
                    }))
                })
            })
            .boxed()
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        self.stats.count(COMPACT);
        self.inner.compact(revision)
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision>> {
        self.stats.count(REVISION);
        self.inner.revision()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteOptions, SqliteStore};

    #[tokio::test]
    async fn every_request_and_its_payload_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(&dir.path().join("c.db"), SqliteOptions::default()).unwrap();
        let s = CountingStore::new(Arc::new(inner));
        let st = s.stats();
        s.put("/a/1", b"xyz".to_vec()).await.unwrap();
        s.create("/a/2", b"ab".to_vec()).await.unwrap();
        assert_eq!(st.requests("txn"), 2);
        assert_eq!(st.sent_bytes.load(Ordering::Relaxed), 4 + 3 + 4 + 2);
        let l = s.list("/a/").await.unwrap();
        assert_eq!(l.items.len(), 2);
        assert_eq!(st.requests("list"), 1);
        assert_eq!(st.listed_keys.load(Ordering::Relaxed), 2);
        assert_eq!(st.received_bytes.load(Ordering::Relaxed), 4 + 3 + 4 + 2);
        let mut w = s.watch("/a/", l.revision + 1).await.unwrap();
        s.delete("/a/1", None).await.unwrap();
        let ev = w.next().await.unwrap().unwrap();
        assert_eq!(ev.key(), "/a/1");
        assert_eq!(st.requests("watch"), 1);
        assert_eq!(st.watch_events.load(Ordering::Relaxed), 1);
        assert_eq!(st.received_bytes.load(Ordering::Relaxed), 13 + 4);
        assert_eq!(st.requests("get"), 0);
        assert_eq!(st.requests("nope"), 0);
    }
}
