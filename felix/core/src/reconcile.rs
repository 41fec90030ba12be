//! The route reconciler: keeps desired and observed routes, applies the
//! difference in one batch, re-reads the kernel when told it may be stale.
//!
//! Scan → classify → prune as BIRD's `krt.c` does: a dump fills the observed
//! view with routes of our protocols only, the tracker classifies each key
//! (in sync, update, delete), and one batch writes the difference. Routes of
//! other protocols never enter the observed view and are never written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::delta::DeltaTracker;
use crate::route::{RouteKey, RouteOp, RouteSpec};

/// The route half of a dataplane: a filtered dump and a batched write.
pub trait RouteDataplane {
    /// Failure of a dump or a single write.
    type Error: std::error::Error + Send + Sync + 'static;

    /// All routes of felix's protocols in felix's table.
    fn dump_routes(&mut self) -> Result<Vec<(RouteKey, RouteSpec)>, Self::Error>;

    /// Writes `ops` (many in flight); one result per op, in order. Deleting
    /// a route that is already gone must be reported as success.
    fn apply_routes(&mut self, ops: &[RouteOp]) -> Vec<Result<(), Self::Error>>;
}

/// A change to one of our routes seen by a netlink monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEvent {
    /// The kernel now holds `spec` at `key` (ours or replaced by someone).
    Set(RouteKey, RouteSpec),
    /// The route at `key` was deleted.
    Deleted(RouteKey),
    /// Events were lost (ENOBUFS): the observed view can't be trusted.
    Overflow,
}

/// What one `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// A full dump was read first.
    pub resynced: bool,
    /// Routes written (created or replaced).
    pub replaced: usize,
    /// Routes deleted.
    pub deleted: usize,
    /// Writes that failed (retried on the next apply, after a resync).
    pub failed: usize,
}

/// An error that stopped an apply before it wrote anything.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError<E: std::error::Error + 'static> {
    /// The kernel dump failed; the next apply dumps again.
    #[error("reading the kernel's routes failed: {0}")]
    Dump(#[source] E),
}

/// Whether the next apply must re-read the kernel first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    Trusted,
    Stale,
}

/// Desired routes in, minimal batched writes out.
#[derive(Debug)]
pub struct Reconciler<D: RouteDataplane> {
    dataplane: D,
    tracker: DeltaTracker<RouteKey, RouteSpec>,
    sync: Freshness,
    resync_interval: Duration,
    last_resync: Option<Instant>,
}

impl<D: RouteDataplane> Reconciler<D> {
    /// A reconciler over `dataplane` that re-reads the kernel every `resync_interval`.
    pub fn new(dataplane: D, resync_interval: Duration) -> Self {
        Self {
            dataplane,
            tracker: DeltaTracker::new(),
            sync: Freshness::Stale,
            resync_interval,
            last_resync: None,
        }
    }

    /// The dataplane.
    pub fn dataplane(&self) -> &D {
        &self.dataplane
    }

    /// The dataplane, mutably.
    pub fn dataplane_mut(&mut self) -> &mut D {
        &mut self.dataplane
    }

    /// The desired/observed tracker.
    pub fn tracker(&self) -> &DeltaTracker<RouteKey, RouteSpec> {
        &self.tracker
    }

    /// Replaces the desired routes.
    pub fn set_desired(&mut self, routes: BTreeMap<RouteKey, RouteSpec>) {
        self.tracker.replace_all_desired(routes);
    }

    /// Feeds a monitor event into the observed view.
    pub fn on_event(&mut self, ev: RouteEvent) {
        match ev {
            RouteEvent::Set(k, v) => self.tracker.on_observed_set(k, v),
            RouteEvent::Deleted(k) => self.tracker.on_observed_delete(&k),
            RouteEvent::Overflow => self.sync = Freshness::Stale,
        }
    }

    /// Forces a full re-read on the next apply.
    pub fn request_resync(&mut self) {
        self.sync = Freshness::Stale;
    }

    /// True when the kernel matched the desired routes after the last write
    /// and no re-read is due.
    pub fn in_sync(&self) -> bool {
        self.sync == Freshness::Trusted && self.tracker.in_sync()
    }

    /// When the next timer resync is due (`None`: before the first apply).
    pub fn next_resync(&self) -> Option<Instant> {
        self.last_resync.map(|t| t + self.resync_interval)
    }

    /// Resyncs if due at `now` or stale, then writes pending deletes and updates in one batch.
    pub fn apply(&mut self, now: Instant) -> Result<ApplyReport, ReconcileError<D::Error>> {
        let mut report = ApplyReport::default();
        if self.next_resync().is_none_or(|t| now >= t) {
            self.sync = Freshness::Stale;
        }
        if self.sync == Freshness::Stale {
            let routes = self.dataplane.dump_routes().map_err(ReconcileError::Dump)?;
            self.tracker.resync_observed(routes);
            self.sync = Freshness::Trusted;
            self.last_resync = Some(now);
            report.resynced = true;
        }
        let ops: Vec<RouteOp> = self
            .tracker
            .pending_deletes()
            .map(|(k, v)| RouteOp::Delete(*k, v.clone()))
            .chain(
                self.tracker
                    .pending_updates()
                    .map(|(k, v)| RouteOp::Replace(*k, v.clone())),
            )
            .collect();
        if ops.is_empty() {
            return Ok(report);
        }
        let results = self.dataplane.apply_routes(&ops);
        for (op, res) in ops.into_iter().zip(results) {
            match (op, res) {
                (RouteOp::Replace(k, v), Ok(())) => {
                    report.replaced += 1;
                    self.tracker.on_observed_set(k, v);
                }
                (RouteOp::Delete(k, _), Ok(())) => {
                    report.deleted += 1;
                    self.tracker.on_observed_delete(&k);
                }
                (_, Err(_)) => report.failed += 1,
            }
        }
        if report.failed > 0 {
            self.sync = Freshness::Stale;
        }
        Ok(report)
    }
}
