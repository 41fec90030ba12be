//! The route reconciler: keeps desired and observed routes, applies the
//! difference in one batch, re-reads the kernel when told it may be stale.
//!
//! Scan → classify → prune as BIRD's `krt.c` does: a dump fills the observed
//! view with the routes that are ours, the tracker classifies each key (in
//! sync, update, delete), and one batch writes the difference.
//!
//! Ours means [`Ownership`]: one of our protocol numbers and a destination
//! inside a prefix tortie owns — or a key we want (desired) or wrote in this
//! run outside those prefixes (routes learned from external BGP peers), so
//! that what we installed is also what we remove. Routes of other protocols,
//! and routes of our numbers elsewhere, never enter the observed view and
//! are never written. The one exception is a key we want: a monitor event
//! showing another program's route there (someone replaced ours) enters the
//! observed view so that ours is written back at once.
//!
//! A [`RouteHold`] keeps routes of some protocols that the kernel holds but
//! the desired state lacks (pending deletes are not written) until it is
//! released or runs out: after a restart tortie-node holds its BGP routes
//! until the speaker has resynced (RFC 4724 §4.1 restarting speaker, the
//! forwarding state it promised to preserve), then the next apply sweeps them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::delta::DeltaTracker;
use crate::owned::Ownership;
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
    /// The route at `key` carrying this protocol was deleted.
    Deleted(RouteKey, u8),
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
    /// Routes not desired but kept by the [`RouteHold`].
    pub held: usize,
    /// The hold ran out at this apply (it was not released in time).
    pub hold_expired: bool,
}

/// Undesired routes of `protocols` stay in the kernel until released or until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHold {
    /// `rtm_protocol` numbers whose routes are kept.
    pub protocols: BTreeSet<u8>,
    /// The hold ends by itself at this time (a bound, should the release never come).
    pub until: Instant,
}

impl RouteHold {
    /// True when the hold keeps a route of `spec`'s protocol.
    pub fn keeps(&self, spec: &RouteSpec) -> bool {
        self.protocols.contains(&spec.protocol)
    }
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
    hold: Option<RouteHold>,
    ownership: Ownership,
    /// Keys outside the owned prefixes that we wrote and that are still
    /// desired or in the kernel (their routes stay ours across resyncs).
    claimed: BTreeSet<RouteKey>,
    resyncs: u64,
}

impl<D: RouteDataplane> Reconciler<D> {
    /// A reconciler over `dataplane` that re-reads the kernel every
    /// `resync_interval`. Until [`Reconciler::set_ownership`] no route read
    /// back is taken as ours but those at desired keys.
    pub fn new(dataplane: D, resync_interval: Duration) -> Self {
        Self {
            dataplane,
            tracker: DeltaTracker::new(),
            sync: Freshness::Stale,
            resync_interval,
            last_resync: None,
            hold: None,
            ownership: Ownership::default(),
            claimed: BTreeSet::new(),
            resyncs: 0,
        }
    }

    /// Sets which routes are ours; the next apply re-reads the kernel.
    pub fn set_ownership(&mut self, ownership: Ownership) {
        if ownership != self.ownership {
            self.ownership = ownership;
            self.sync = Freshness::Stale;
        }
    }

    /// The ownership rule in force.
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Full re-reads of the kernel so far.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// True when a route the dataplane reports at `key` is ours to manage.
    fn is_ours(&self, key: &RouteKey, spec: &RouteSpec) -> bool {
        self.ownership.protocols().contains(&spec.protocol)
            && (self.ownership.covers(&key.dst)
                || self.tracker.desired(key).is_some()
                || self.claimed.contains(key))
    }

    /// A route of ours seen outside the owned prefixes (at a key we want)
    /// stays ours while it is there, also once we no longer want it.
    fn claim(&mut self, key: &RouteKey, spec: &RouteSpec) {
        if self.ownership.protocols().contains(&spec.protocol) && !self.ownership.covers(&key.dst) {
            self.claimed.insert(*key);
        }
    }

    /// Forgets `key`'s claim if it is neither desired nor observed any more.
    fn unclaim(&mut self, key: &RouteKey) {
        if self.tracker.desired(key).is_none() && self.tracker.observed(key).is_none() {
            self.claimed.remove(key);
        }
    }

    /// Forgets claimed keys that are neither desired nor observed any more.
    fn prune_claims(&mut self) {
        let t = &self.tracker;
        self.claimed
            .retain(|k| t.desired(k).is_some() || t.observed(k).is_some());
    }

    /// Keeps undesired routes of `hold.protocols` until released or `hold.until`.
    pub fn hold(&mut self, hold: RouteHold) {
        self.hold = Some(hold);
    }

    /// Ends the hold: the next apply deletes what it kept. True if one was active.
    pub fn release_hold(&mut self) -> bool {
        self.hold.take().is_some()
    }

    /// The active hold, if any.
    pub fn holding(&self) -> Option<&RouteHold> {
        self.hold.as_ref()
    }

    /// Ends the hold if it ran out at `now`; true when it did.
    pub fn expire_hold(&mut self, now: Instant) -> bool {
        if self.hold.as_ref().is_some_and(|h| now >= h.until) {
            self.hold = None;
            return true;
        }
        false
    }

    /// Routes the kernel holds, not desired, kept by the hold.
    pub fn held(&self) -> usize {
        self.hold.as_ref().map_or(0, |h| {
            self.tracker
                .pending_deletes()
                .filter(|(_, v)| h.keeps(v))
                .count()
        })
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
        self.prune_claims();
    }

    /// Feeds a monitor event into the observed view: routes that are ours,
    /// and any route at a key we want (another program's route there
    /// replaced ours); everything else is ignored.
    pub fn on_event(&mut self, ev: RouteEvent) {
        match ev {
            RouteEvent::Set(k, v) => {
                if self.is_ours(&k, &v) || self.tracker.desired(&k).is_some() {
                    self.claim(&k, &v);
                    self.tracker.on_observed_set(k, v);
                } else if self.tracker.observed(&k).is_some() {
                    // Ours was replaced by a route that is not ours: gone.
                    self.tracker.on_observed_delete(&k);
                    self.unclaim(&k);
                }
            }
            RouteEvent::Deleted(k, protocol) => {
                if self
                    .tracker
                    .observed(&k)
                    .is_some_and(|o| o.protocol == protocol)
                {
                    self.tracker.on_observed_delete(&k);
                    self.unclaim(&k);
                }
            }
            RouteEvent::Overflow => self.sync = Freshness::Stale,
        }
    }

    /// Re-reads the kernel every `interval` from now on.
    pub fn set_resync_interval(&mut self, interval: Duration) {
        self.resync_interval = interval;
    }

    /// Forces a full re-read on the next apply.
    pub fn request_resync(&mut self) {
        self.sync = Freshness::Stale;
    }

    /// True when the kernel matched the desired routes after the last write
    /// and no re-read is due (routes kept by a hold count as not in sync).
    pub fn in_sync(&self) -> bool {
        self.sync == Freshness::Trusted && self.tracker.in_sync()
    }

    /// True when an apply now would re-read the kernel or write something
    /// (routes kept by the hold do not count).
    pub fn has_work(&self) -> bool {
        let hold = self.hold.as_ref();
        self.sync == Freshness::Stale
            || self.tracker.pending_updates().next().is_some()
            || self
                .tracker
                .pending_deletes()
                .any(|(_, v)| hold.is_none_or(|h| !h.keeps(v)))
    }

    /// When the next timer resync is due (`None`: before the first apply).
    pub fn next_resync(&self) -> Option<Instant> {
        self.last_resync.map(|t| t + self.resync_interval)
    }

    /// Resyncs if due at `now` or stale, then writes pending deletes (but
    /// those the hold keeps) and updates in one batch.
    pub fn apply(&mut self, now: Instant) -> Result<ApplyReport, ReconcileError<D::Error>> {
        let mut report = ApplyReport {
            hold_expired: self.expire_hold(now),
            ..ApplyReport::default()
        };
        if self.next_resync().is_none_or(|t| now >= t) {
            self.sync = Freshness::Stale;
        }
        if self.sync == Freshness::Stale {
            let routes = self.dataplane.dump_routes().map_err(ReconcileError::Dump)?;
            let ours: Vec<_> = routes
                .into_iter()
                .filter(|(k, v)| self.is_ours(k, v))
                .collect();
            for (k, v) in &ours {
                self.claim(k, v);
            }
            self.tracker.resync_observed(ours);
            self.prune_claims();
            self.sync = Freshness::Trusted;
            self.last_resync = Some(now);
            self.resyncs += 1;
            report.resynced = true;
        }
        report.held = self.held();
        let hold = self.hold.as_ref();
        let ops: Vec<RouteOp> = self
            .tracker
            .pending_deletes()
            .filter(|(_, v)| hold.is_none_or(|h| !h.keeps(v)))
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
                    if !self.ownership.covers(&k.dst) {
                        self.claimed.insert(k);
                    }
                    self.tracker.on_observed_set(k, v);
                }
                (RouteOp::Delete(k, _), Ok(())) => {
                    report.deleted += 1;
                    self.claimed.remove(&k);
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
