//! The syncer's loop: list the [`Scope`] once into the [`Cache`], then
//! follow it with watches, applying events and sending a snapshot when
//! what the node reads changed; list again only when a watch cannot resume.
//! Writes of our own Node (registration, tunnel addresses) come back
//! through the watch like any other change.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, SelectAll};
use futures::StreamExt;
use tokio::sync::mpsc::Sender;
use tortie_datastore::{keys, typed, StoreError, TxnOp, WatchEvent, WatchStream};
use tortie_datastore::{KeyValue, Revision};
use tortie_ipam_core::{DatastoreIpamStore, Ipam};
use tortie_model::{Kind, Resource};

use crate::cache::{Cache, Scope};
use crate::snapshot::Snapshot;
use crate::sync::{ensure_tunnel_addrs, register_node, SyncConfig, SyncError};
use crate::sync_metrics::SyncMetrics;

/// A burst of datastore changes ends after this long without another one.
const COALESCE_GAP: Duration = Duration::from_millis(10);
/// The longest a change waits for the rest of its burst.
const COALESCE_MAX: Duration = Duration::from_millis(50);
/// Pause before retrying a failed list, watch or write.
const RETRY: Duration = Duration::from_secs(1);

/// What waiting on the watches gave.
enum Next {
    /// Changes (a coalesced burst).
    Events(Vec<WatchEvent>),
    /// A watch cannot go on (compacted, failed, ended): list again.
    Broken(String),
    /// Nothing within the retry pause (only while a write is to be retried).
    Quiet,
    /// The agent is gone.
    Closed,
}

/// The syncer's state between events.
pub(crate) struct Syncer {
    cfg: SyncConfig,
    ipam: Ipam<DatastoreIpamStore>,
    cache: Cache,
    metrics: Arc<SyncMetrics>,
    /// One watch on the whole keyspace, filtered here (SQLite: a local
    /// change log, one thread per watch), or one per prefix (etcd: only
    /// what the node reads crosses the network).
    one_watch: bool,
    last: Option<Snapshot>,
    /// The revision of our last Node write, until the watch brings it back.
    pending: Option<Revision>,
    /// The latest revision seen for our Node's key (event or list).
    node_seen: Revision,
    node_key: String,
    /// A write failed: try again after [`RETRY`] even without a change.
    retry: bool,
    backfilled: bool,
}

impl Syncer {
    pub(crate) fn new(
        cfg: SyncConfig,
        ipam: Ipam<DatastoreIpamStore>,
        metrics: Arc<SyncMetrics>,
        one_watch: bool,
    ) -> Self {
        let scope = if cfg.policy {
            Scope::with_policy(&cfg.node_name)
        } else {
            Scope::for_node(&cfg.node_name)
        };
        let node_key = typed::key_of(Kind::Node, None, &cfg.node_name);
        Self {
            cfg,
            ipam,
            cache: Cache::new(scope),
            metrics,
            one_watch,
            last: None,
            pending: None,
            node_seen: 0,
            node_key,
            retry: false,
            backfilled: false,
        }
    }

    /// Lists, follows, and lists again when a watch breaks, until `tx` closes.
    pub(crate) fn run(mut self, tx: &Sender<Snapshot>) {
        loop {
            let watches = match self.relist() {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the datastore; retrying");
                    std::thread::park_timeout(RETRY);
                    if tx.is_closed() {
                        return;
                    }
                    continue;
                }
            };
            if !self.publish(tx) {
                return;
            }
            match self.follow(watches, tx) {
                None => return,
                Some(why) => {
                    self.metrics.watch_restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %why, "datastore watch cannot resume; listing again");
                }
            }
        }
    }

    fn blocking(&self) -> &tortie_datastore::BlockingStore {
        self.ipam.store().blocking()
    }

    /// Lists every prefix of the scope into the cache and starts the
    /// watches from just after each list.
    fn relist(&mut self) -> Result<SelectAll<WatchStream>, SyncError> {
        if !self.backfilled {
            self.backfill_index()?;
            self.backfilled = true;
        }
        let prefixes = self.cache.scope().prefixes().to_vec();
        let mut revs = Vec::with_capacity(prefixes.len());
        for (i, p) in prefixes.iter().enumerate() {
            let b = self.blocking();
            let l = b
                .block_on(b.store().list(p))
                .map_err(typed::TypedError::from)?;
            for e in self.cache.load(i, &l.items, l.revision) {
                tracing::warn!(error = %e, "datastore value ignored");
            }
            revs.push(l.revision);
        }
        self.node_seen = revs[0];
        // The list shows our last Node write if the store still has it; if
        // the store was replaced, the write is gone and is made again.
        self.pending = None;
        self.metrics.lists.fetch_add(1, Ordering::Relaxed);
        let b = self.blocking();
        let starts: Vec<(String, Revision)> = if self.one_watch {
            let from = revs.iter().copied().min().unwrap_or(0) + 1;
            vec![("/".to_string(), from)]
        } else {
            prefixes
                .into_iter()
                .zip(revs.iter().map(|r| r + 1))
                .collect()
        };
        let mut all = SelectAll::new();
        for (prefix, from) in starts {
            let w = b
                .block_on(b.store().watch(&prefix, from))
                .map_err(typed::TypedError::from)?;
            let end = stream::once(async { Err(StoreError::Unavailable("watch ended".into())) });
            all.push(Box::pin(w.chain(end)) as WatchStream);
        }
        tracing::info!(
            revision = self.cache.revision(),
            watches = all.len(),
            "datastore listed; following it"
        );
        Ok(all)
    }

    /// Applies changes until a watch breaks (`Some(why)`) or `tx` closes (`None`).
    fn follow(
        &mut self,
        mut watches: SelectAll<WatchStream>,
        tx: &Sender<Snapshot>,
    ) -> Option<String> {
        loop {
            let retry = self.retry;
            let next = self.blocking().block_on(async {
                tokio::select! {
                    n = next_batch(&mut watches, retry) => n,
                    _ = tx.closed() => Next::Closed,
                }
            });
            match next {
                Next::Events(evs) => self.apply(&evs),
                Next::Quiet => {}
                Next::Broken(why) => return Some(why),
                Next::Closed => return None,
            }
            if !self.publish(tx) {
                return None;
            }
        }
    }

    fn apply(&mut self, evs: &[WatchEvent]) {
        for ev in evs {
            if ev.key() == self.node_key {
                self.node_seen = self.node_seen.max(ev.revision());
            }
            if let Err(e) = self.cache.apply(ev) {
                tracing::warn!(error = %e, "datastore value ignored");
            }
        }
    }

    /// Writes our Node when it needs it, else sends the cache's snapshot
    /// if it differs from the last one sent. False when `tx` closed.
    fn publish(&mut self, tx: &Sender<Snapshot>) -> bool {
        self.metrics.observe(&self.cache);
        if let Some(r) = self.pending {
            if self.node_seen < r {
                return true;
            }
            self.pending = None;
        }
        let snap = self.cache.snapshot();
        self.retry = false;
        match self.write_needed(&snap) {
            Ok(Some(rev)) => {
                self.pending = Some(rev);
                return true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "datastore write failed; retrying");
                self.retry = true;
                return true;
            }
        }
        if self.last.as_ref() == Some(&snap) {
            return true;
        }
        if tx.blocking_send(snap.clone()).is_err() {
            return false;
        }
        self.metrics.snapshots.fetch_add(1, Ordering::Relaxed);
        self.last = Some(snap);
        true
    }

    /// Registers our Node or allocates its tunnel addresses when needed;
    /// the revision of the Node write, if one was made.
    fn write_needed(&self, snap: &Snapshot) -> Result<Option<Revision>, SyncError> {
        if let Some(rev) = register_node(&self.ipam, snap, &self.cfg)? {
            return Ok(Some(rev));
        }
        ensure_tunnel_addrs(&self.ipam, snap, &self.cfg.node_name)
    }

    /// Our WorkloadEndpoints stored before the per-node index existed get
    /// their index entry, once in the node's life (a marker key says it
    /// was done): the only time an agent reads every endpoint.
    fn backfill_index(&self) -> Result<(), SyncError> {
        let me = &self.cfg.node_name;
        let marker = format!("/index/v1/built/{me}");
        let b = self.blocking();
        let s = b.store().as_ref();
        if b.block_on(s.get(&marker))
            .map_err(typed::TypedError::from)?
            .is_some()
        {
            return Ok(());
        }
        let all = b
            .block_on(s.list(&keys::resource_prefix("workloadendpoints")))
            .map_err(typed::TypedError::from)?;
        let mut added = 0;
        for kv in &all.items {
            if backfill_one(b, kv, me)? {
                added += 1;
            }
        }
        b.block_on(s.put(&marker, b"{}".to_vec()))
            .map_err(typed::TypedError::from)?;
        tracing::info!(endpoints = added, "indexed this node's WorkloadEndpoints");
        Ok(())
    }
}

/// Adds the index entry of one stored endpoint of node `me` when it has
/// none: a transaction that rewrites the endpoint at the revision read, so
/// a concurrent change (which writes its own entry) wins.
fn backfill_one(
    b: &tortie_datastore::BlockingStore,
    kv: &KeyValue,
    me: &str,
) -> Result<bool, SyncError> {
    let Ok(r @ Resource::WorkloadEndpoint(_)) = typed::decode(kv) else {
        return Ok(false);
    };
    let Some(index) =
        typed::workload_index_key(&r).filter(|k| k.starts_with(&keys::workload_index_prefix(me)))
    else {
        return Ok(false);
    };
    let s = b.store().as_ref();
    if b.block_on(s.get(&index))
        .map_err(typed::TypedError::from)?
        .is_some()
    {
        return Ok(false);
    }
    let ops = vec![
        TxnOp::Update {
            key: kv.key.clone(),
            value: kv.value.clone(),
            expected: kv.revision,
        },
        TxnOp::Create {
            key: index,
            value: kv.value.clone(),
        },
    ];
    match b.block_on(s.txn(ops)) {
        Ok(_) => Ok(true),
        Err(
            StoreError::Conflict { .. }
            | StoreError::NotFound { .. }
            | StoreError::AlreadyExists { .. },
        ) => Ok(false),
        Err(e) => Err(typed::TypedError::from(e).into()),
    }
}

/// The next burst of events: waits for one (at most [`RETRY`] when
/// `retry`), then gathers the rest of its burst ([`COALESCE_GAP`],
/// [`COALESCE_MAX`]: back-to-back pod ADDs must not hold routes back).
async fn next_batch(w: &mut SelectAll<WatchStream>, retry: bool) -> Next {
    let first = if retry {
        match tokio::time::timeout(RETRY, w.next()).await {
            Ok(n) => n,
            Err(_) => return Next::Quiet,
        }
    } else {
        w.next().await
    };
    let mut evs = match first {
        Some(Ok(ev)) => vec![ev],
        Some(Err(e)) => return Next::Broken(e.to_string()),
        None => return Next::Broken("no watch".into()),
    };
    let cap = tokio::time::Instant::now() + COALESCE_MAX;
    loop {
        let left = cap.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left.min(COALESCE_GAP), w.next()).await {
            Ok(Some(Ok(ev))) => evs.push(ev),
            Ok(Some(Err(e))) => return Next::Broken(e.to_string()),
            Ok(None) => return Next::Broken("no watch".into()),
            Err(_) => break,
        }
    }
    Next::Events(evs)
}
