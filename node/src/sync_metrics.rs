//! What the syncer costs the datastore, as Prometheus metrics: requests
//! and payload bytes (from its [`CountingStore`](tortie_datastore::CountingStore)),
//! lists, watch restarts and resumes, and the cache's size. The syncer
//! registers its counters here once; `/metrics` renders them with
//! [`render`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tortie_datastore::StoreStats;

use crate::cache::{Cache, SECTIONS};

/// The syncer's counters and gauges.
#[derive(Debug, Default)]
pub struct SyncMetrics {
    store: Arc<StoreStats>,
    /// Full lists of the scope (the first included).
    pub lists: AtomicU64,
    /// Lists made because a watch could not resume.
    pub watch_restarts: AtomicU64,
    /// Snapshots sent to the agent.
    pub snapshots: AtomicU64,
    entries: [AtomicU64; SECTIONS.len()],
    revision: AtomicI64,
}

impl SyncMetrics {
    /// Metrics over the store counters `store`.
    pub fn new(store: Arc<StoreStats>) -> Self {
        Self {
            store,
            ..Self::default()
        }
    }

    /// Records the cache's size and revision.
    pub fn observe(&self, cache: &Cache) {
        for (slot, n) in self.entries.iter().zip(cache.counts()) {
            slot.store(n as u64, Ordering::Relaxed);
        }
        self.revision.store(cache.revision(), Ordering::Relaxed);
    }
}

static CURRENT: Mutex<Option<Arc<SyncMetrics>>> = Mutex::new(None);

/// Makes `m` the metrics [`render`] shows (one syncer per process).
pub fn register(m: Arc<SyncMetrics>) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
}

/// The registered metrics, if a syncer runs.
pub fn current() -> Option<Arc<SyncMetrics>> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP tortie_{name} {help}\n# TYPE tortie_{name} {kind}"
    );
}

/// Appends the `tortie_datastore_*` metrics (nothing before the syncer started).
pub fn render(out: &mut String) {
    let Some(m) = current() else { return };
    let s = &m.store;
    head(
        out,
        "datastore_requests_total",
        "counter",
        "Datastore requests of this agent, by operation (a watch counts once when created).",
    );
    for (op, n) in s.all_requests() {
        let _ = writeln!(out, "tortie_datastore_requests_total{{op=\"{op}\"}} {n}");
    }
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let counters = [
        ("datastore_received_bytes_total", "Payload bytes (keys and values) this agent received from the datastore: list and get results, watch events.", load(&s.received_bytes)),
        ("datastore_sent_bytes_total", "Payload bytes (keys and values) this agent wrote to the datastore.", load(&s.sent_bytes)),
        ("datastore_listed_keys_total", "Keys returned by this agent's lists.", load(&s.listed_keys)),
        ("datastore_watch_events_total", "Watch events this agent received.", load(&s.watch_events)),
        ("datastore_lists_total", "Full lists of what this agent reads (the first one included).", load(&m.lists)),
        ("datastore_watch_restarts_total", "Times a watch could not resume (compacted history, failed watch) and the agent listed again.", load(&m.watch_restarts)),
        ("datastore_watch_reconnects_total", "etcd watches resumed from their next revision after a broken stream (an etcd restart): no list, nothing lost.", tortie_datastore::etcd::watch_reconnects()),
        ("datastore_snapshots_total", "Snapshots the syncer handed to the agent.", load(&m.snapshots)),
    ];
    for (name, help, v) in counters {
        head(out, name, "counter", help);
        let _ = writeln!(out, "tortie_{name} {v}");
    }
    head(
        out,
        "datastore_cache_entries",
        "gauge",
        "Entries in the agent's datastore cache, by kind.",
    );
    for (kind, n) in SECTIONS.iter().zip(&m.entries) {
        let _ = writeln!(
            out,
            "tortie_datastore_cache_entries{{kind=\"{kind}\"}} {}",
            load(n)
        );
    }
    head(
        out,
        "datastore_cache_revision",
        "gauge",
        "The datastore revision the agent's cache is current to.",
    );
    let _ = writeln!(
        out,
        "tortie_datastore_cache_revision {}",
        m.revision.load(Ordering::Relaxed)
    );
}
