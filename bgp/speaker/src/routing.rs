//! The instance loop's half of routing: it owns the pure [`Rib`], feeds it
//! what the peer tasks report (sessions up and down, UPDATEs, ROUTE-REFRESH,
//! our originated prefixes, timer ticks), encodes each [`UpdateBatch`] once
//! per update group and hands the same bytes to every peer of the group, and
//! passes FIB changes to subscribers ([`crate::SpeakerHandle::subscribe_fib`]).

use crate::config::SpeakerOptions;
use crate::peer::PeerCmd;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tortie_bgp_rib::{
    DownKind, FibRoute, FibUpdate, Output, PeerFilters, PeerInfo, PolicyConfig, PoolConfig,
    RestartConfig, Rib, RibConfig, RibEntry, RibEvent, UpdateBatch,
};
use tortie_bgp_wire::{
    encode, encode_announcements, encode_withdrawals, DecodeContext, Family, Message,
    PathAttributes, Prefix, UpdateMsg,
};

/// What a peer task tells the instance about routing. `epoch` numbers one
/// Established session (unique per speaker), so that messages of a session
/// that has since gone are recognised and dropped.
#[derive(Debug)]
pub(crate) enum RibMsg {
    /// The session reached Established.
    Up {
        epoch: u64,
        info: Box<PeerInfo>,
        ctx_tx: DecodeContext,
    },
    /// The session left Established.
    Down {
        peer: IpAddr,
        epoch: u64,
        kind: DownKind,
    },
    /// An UPDATE arrived (End-of-RIB markers included).
    Update {
        peer: IpAddr,
        epoch: u64,
        msg: Box<UpdateMsg>,
    },
    /// The peer asked for a family again (RFC 2918).
    Refresh {
        peer: IpAddr,
        epoch: u64,
        family: Family,
    },
}

/// Forwarding changes for the owner (tortie-node's felix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibEvent {
    /// Per prefix: the Loc-RIB best/ECMP next hops (stale flag set while a
    /// restarting peer's routes are kept), or `None` = remove the route.
    /// The first event of a subscription is the whole table.
    Routes(Vec<FibUpdate>),
    /// Our own restart is over: BGP routes not given since may be deleted.
    RestartComplete,
}

/// One Established session as the instance sends to it.
struct SessionOut {
    epoch: u64,
    ctx: DecodeContext,
    tx: mpsc::UnboundedSender<PeerCmd>,
    /// Paths in its Adj-RIB-Out: the running sum of the batches'
    /// `adj_out_delta`, so that status never walks the table.
    sent: i64,
}

/// The RIB and what is needed to act on its outputs.
pub(crate) struct RibDriver {
    rib: Rib,
    origin: tokio::time::Instant,
    deadline: Option<Duration>,
    sessions: HashMap<IpAddr, SessionOut>,
    fib_subs: Vec<mpsc::UnboundedSender<FibEvent>>,
    /// Our own restart (RFC 4724 §4.1) is in progress: the peer tasks set
    /// the Restart State bit in OPENs while this is true.
    restarting: Arc<AtomicBool>,
    /// Each configured peer's BGPFilter rules: the RIB gets them when the
    /// session comes up, and at once when they change while it is up.
    filters: HashMap<IpAddr, PeerFilters>,
}

/// Pools covering everything: the speaker's default, accept and export all.
fn permissive() -> PolicyConfig {
    let pool = |s: &str| PoolConfig {
        cidr: s
            .parse()
            .unwrap_or_else(|_| unreachable!("constant prefix")),
        disable_bgp_export: false,
    };
    PolicyConfig {
        pools: vec![pool("0.0.0.0/0"), pool("::/0")],
        ..Default::default()
    }
}

impl RibDriver {
    /// `expected` = the peers configured at start (waited for when
    /// `opts.restart` makes this a restarting speaker).
    pub fn new(asn: u32, router_id: Ipv4Addr, opts: &SpeakerOptions, expected: &[IpAddr]) -> Self {
        let mut cfg = RibConfig::new(asn, router_id);
        cfg.cluster_id = opts.cluster_id;
        cfg.max_paths = opts.max_paths.max(1);
        cfg.policy = opts.policy.clone().unwrap_or_else(permissive);
        cfg.stale_path_time = opts.stale_path_time;
        cfg.restart = opts.restart.map(|r| RestartConfig {
            expected_peers: expected.to_vec(),
            selection_deferral: r.selection_deferral,
            peer_wait: r.peer_wait,
        });
        let rib = Rib::new(cfg, Duration::ZERO);
        if rib.is_restarting() {
            tracing::info!(
                expected = expected.len(),
                "restarting speaker (RFC 4724 §4.1): selection deferred"
            );
        }
        Self {
            // The restart's timers run from now, before any input.
            deadline: rib.deadline(),
            restarting: Arc::new(AtomicBool::new(rib.is_restarting())),
            rib,
            origin: tokio::time::Instant::now(),
            sessions: HashMap::new(),
            fib_subs: Vec::new(),
            filters: HashMap::new(),
        }
    }

    /// The flag the peer tasks read before each OPEN.
    pub fn restarting_flag(&self) -> Arc<AtomicBool> {
        self.restarting.clone()
    }

    /// True while our own restart defers selection.
    pub fn is_restarting(&self) -> bool {
        self.rib.is_restarting()
    }

    /// A peer configured while our restart is in progress is waited for too.
    pub fn expect_peer(&mut self, peer: IpAddr) {
        self.rib.expect_peer(peer);
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// When [`RibDriver::tick`] must run, as an instant.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline.map(|d| self.origin + d)
    }

    pub fn tick(&mut self) {
        let out = self.rib.tick(self.now());
        self.apply(out);
    }

    /// Handles one message of a peer task; `tx` reaches that peer's task.
    pub fn handle(&mut self, msg: RibMsg, tx: Option<&mpsc::UnboundedSender<PeerCmd>>) {
        let now = self.now();
        match msg {
            RibMsg::Up {
                epoch,
                mut info,
                ctx_tx,
            } => {
                let Some(tx) = tx else { return };
                info.filters = self.filters.get(&info.addr).cloned().unwrap_or_default();
                let peer = info.addr;
                self.sessions.insert(
                    peer,
                    SessionOut {
                        epoch,
                        ctx: ctx_tx,
                        tx: tx.clone(),
                        sent: 0,
                    },
                );
                match self.rib.peer_up(*info, now) {
                    Ok(out) => self.apply(out),
                    Err(e) => tracing::warn!(peer = %peer, error = %e, "RIB refused the peer"),
                }
            }
            RibMsg::Down { peer, epoch, kind } => {
                if self.current(peer, epoch) {
                    self.peer_gone(peer, kind);
                }
            }
            RibMsg::Update { peer, epoch, msg } => {
                if self.current(peer, epoch) {
                    match self.rib.update(peer, &msg, now) {
                        Ok(out) => self.apply(out),
                        Err(e) => tracing::debug!(peer = %peer, error = %e, "UPDATE not taken"),
                    }
                }
            }
            RibMsg::Refresh {
                peer,
                epoch,
                family,
            } => {
                if self.current(peer, epoch) {
                    self.refresh(peer, family);
                }
            }
        }
    }

    fn current(&self, peer: IpAddr, epoch: u64) -> bool {
        self.sessions.get(&peer).is_some_and(|s| s.epoch == epoch)
    }

    /// The session of `peer` is gone (or the peer removed: `Hard`).
    pub fn peer_gone(&mut self, peer: IpAddr, kind: DownKind) {
        // A peer removed from the configuration after its session was lost
        // (its routes kept stale for graceful restart, RFC 4724 §4.2) must
        // still lose those routes now.
        if self.sessions.remove(&peer).is_none() && kind != DownKind::Hard {
            return;
        }
        match self.rib.peer_down(peer, kind, self.now()) {
            Ok(out) => self.apply(out),
            Err(e) => tracing::debug!(peer = %peer, error = %e, "peer down not taken"),
        }
    }

    /// RFC 2918 §4: the family's Adj-RIB-Out again.
    fn refresh(&mut self, peer: IpAddr, family: Family) {
        // Our restart defers all UPDATEs: the table follows at its end.
        if self.rib.is_restarting() {
            return;
        }
        let Ok(routes) = self.rib.adj_rib_out(peer, family) else {
            return;
        };
        let Some(s) = self.sessions.get(&peer) else {
            return;
        };
        let mut buf = Vec::new();
        for (nlri, attrs) in routes {
            if let Err(e) = encode_announcements(&attrs, &[nlri], &s.ctx, &mut buf) {
                tracing::warn!(peer = %peer, error = %e, "cannot encode a refreshed route");
            }
        }
        let _ = s.tx.send(PeerCmd::Send {
            epoch: s.epoch,
            bytes: Arc::new(buf),
        });
    }

    pub fn originate(&mut self, prefixes: &[Prefix], attrs: PathAttributes) {
        let out = self.rib.originate(prefixes, attrs);
        self.apply(out);
    }

    pub fn withdraw(&mut self, prefixes: &[Prefix]) {
        let out = self.rib.withdraw_local(prefixes);
        self.apply(out);
    }

    /// Replaces the export/import rules (`None` = accept and export every
    /// unicast prefix); exports are re-sent as a difference, and peers whose
    /// imports changed are asked for their routes again.
    pub fn set_policy(&mut self, policy: Option<PolicyConfig>) {
        let out = self.rib.set_policy(policy.unwrap_or_else(permissive));
        self.apply(out);
    }

    /// Sets `peer`'s BGPFilter rules; a session the RIB holds gets them at
    /// once (re-export to it, ROUTE-REFRESH when its import rules changed).
    pub fn set_filters(&mut self, peer: IpAddr, filters: PeerFilters) {
        if self.filters.get(&peer) == Some(&filters) {
            return;
        }
        self.filters.insert(peer, filters.clone());
        // A peer the RIB does not hold gets the filters with its session.
        if let Ok(out) = self.rib.set_peer_filters(peer, filters) {
            tracing::info!(peer = %peer, "BGP filters applied without a session reset");
            self.apply(out);
        }
    }

    /// A removed peer's filters are forgotten.
    pub fn forget_filters(&mut self, peer: IpAddr) {
        self.filters.remove(&peer);
    }

    pub fn query(&self, family: Option<Family>) -> Vec<RibEntry> {
        self.rib.query(family)
    }

    /// Prefixes (paths, with ADD-PATH) sent to and accepted from `peer`:
    /// two running counters, O(1).
    pub fn counts(&self, peer: IpAddr) -> Option<(u64, u64)> {
        let s = self.sessions.get(&peer)?;
        let sent = u64::try_from(s.sent).unwrap_or(0);
        Some((sent, self.rib.paths_from(peer) as u64))
    }

    /// A new FIB subscriber: it gets the whole table first (empty while our
    /// restart defers selection: the table comes whole at its end).
    pub fn subscribe(&mut self, tx: mpsc::UnboundedSender<FibEvent>) {
        let all = if self.rib.is_restarting() {
            Vec::new()
        } else {
            fib_snapshot(&self.rib.query(None))
        };
        if tx.send(FibEvent::Routes(all)).is_ok() {
            self.fib_subs.push(tx);
        }
    }

    fn apply(&mut self, out: Output) {
        self.deadline = out.next_deadline;
        if !out.fib.is_empty() {
            broadcast(&mut self.fib_subs, FibEvent::Routes(out.fib));
        }
        for batch in &out.updates {
            self.send_batch(batch);
        }
        for ev in out.events {
            self.on_event(ev);
        }
    }

    fn on_event(&mut self, ev: RibEvent) {
        match ev {
            RibEvent::StaleSwept { peer, paths } => {
                tracing::info!(peer = %peer, paths, "stale routes swept (RFC 4724)");
            }
            RibEvent::RestartComplete => {
                self.restarting.store(false, Ordering::Relaxed);
                tracing::info!("restart complete (RFC 4724 §4.1): tables sent, FIB may sweep");
                self.fib_subs
                    .retain(|s| s.send(FibEvent::RestartComplete).is_ok());
            }
            // The peer tasks enforce max-prefix themselves (the RIB has no limit).
            RibEvent::MaxPrefixExceeded { peer, limit } => {
                tracing::warn!(peer = %peer, limit, "RIB max-prefix reached");
            }
            // The peer task knows whether ROUTE-REFRESH was negotiated.
            RibEvent::RouteRefreshNeeded { peer } => {
                if let Some(s) = self.sessions.get(&peer) {
                    let _ = s.tx.send(PeerCmd::RouteRefresh { epoch: s.epoch });
                }
            }
        }
    }

    /// Encodes a batch once and sends the bytes to every peer of the group.
    fn send_batch(&mut self, b: &UpdateBatch) {
        let Some(first) = b.peers.iter().find_map(|p| self.sessions.get(p)) else {
            return;
        };
        let bytes = match encode_batch(b, &first.ctx) {
            Ok(buf) => Arc::new(buf),
            Err(e) => {
                tracing::warn!(error = %e, family = %b.family, "cannot encode an update batch");
                return;
            }
        };
        for p in &b.peers {
            if let Some(s) = self.sessions.get_mut(p) {
                s.sent += b.adj_out_delta;
                let _ = s.tx.send(PeerCmd::Send {
                    epoch: s.epoch,
                    bytes: bytes.clone(),
                });
            }
        }
    }
}

/// Sends `ev` to every subscriber, dropping those that are gone. The last
/// one gets `ev` itself: a FIB event can hold a next-hop vector per prefix,
/// and the usual single subscriber then costs no copy (the deep clone was
/// ≈ 1–2 % of the DUT's CPU at 1M routes, docs/benchmarks.md).
fn broadcast(subs: &mut Vec<mpsc::UnboundedSender<FibEvent>>, ev: FibEvent) {
    let mut ev = Some(ev);
    let last = subs.len().saturating_sub(1);
    let mut i = 0;
    subs.retain(|s| {
        let e = match i == last {
            true => ev.take(),
            false => ev.clone(),
        };
        i += 1;
        e.is_some_and(|e| s.send(e).is_ok())
    });
}

/// One batch as UPDATE messages: withdrawals, announcements, End-of-RIB.
fn encode_batch(
    b: &UpdateBatch,
    ctx: &DecodeContext,
) -> Result<Vec<u8>, tortie_bgp_wire::EncodeError> {
    let mut buf = Vec::new();
    if !b.withdraw.is_empty() {
        encode_withdrawals(b.family, &b.withdraw, ctx, &mut buf)?;
    }
    for a in &b.announce {
        encode_announcements(&a.attrs, &a.nlri, ctx, &mut buf)?;
    }
    if b.end_of_rib {
        encode(
            &Message::Update(UpdateMsg::end_of_rib(b.family)),
            ctx,
            &mut buf,
        )?;
    }
    Ok(buf)
}

/// The FIB view of a Loc-RIB dump: best + multipath next hops; prefixes whose
/// best path is our own are left out (the owner programs those itself).
fn fib_snapshot(entries: &[RibEntry]) -> Vec<FibUpdate> {
    entries
        .iter()
        .filter_map(|e| {
            if e.paths.first().is_none_or(|p| p.next_hop.is_none()) {
                return None;
            }
            let set: Vec<_> = e.paths.iter().filter(|p| p.best || p.multipath).collect();
            let mut next_hops: Vec<IpAddr> = Vec::new();
            for nh in set.iter().filter_map(|p| p.next_hop) {
                if !next_hops.contains(&nh) {
                    next_hops.push(nh);
                }
            }
            let stale = set.iter().any(|p| p.stale);
            Some(FibUpdate {
                prefix: e.prefix,
                route: Some(FibRoute { next_hops, stale }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_accepts_any_unicast_prefix() {
        let p = permissive();
        for s in ["10.1.0.0/24", "192.0.2.1/32", "fd00::/64", "0.0.0.0/0"] {
            let prefix: Prefix = s.parse().unwrap();
            assert!(p.exportable(&prefix), "{s}");
            assert!(p.acceptable_from_node(&prefix), "{s}");
        }
    }

    #[test]
    fn every_live_subscriber_gets_the_event_and_gone_ones_are_dropped() {
        let ev = FibEvent::Routes(vec![FibUpdate {
            prefix: "10.9.0.0/24".parse().unwrap(),
            route: None,
        }]);
        let (a, mut ra) = mpsc::unbounded_channel();
        let (b, rb) = mpsc::unbounded_channel();
        let (c, mut rc) = mpsc::unbounded_channel();
        drop(rb);
        let mut subs = vec![a, b, c];
        broadcast(&mut subs, ev.clone());
        assert_eq!(subs.len(), 2);
        assert_eq!(ra.try_recv().unwrap(), ev);
        assert_eq!(rc.try_recv().unwrap(), ev);
        // The last subscriber gone: the others still get it.
        drop(rc);
        broadcast(&mut subs, FibEvent::RestartComplete);
        assert_eq!(subs.len(), 1);
        assert_eq!(ra.try_recv().unwrap(), FibEvent::RestartComplete);
    }

    #[test]
    fn a_batch_encodes_withdrawals_announcements_and_end_of_rib() {
        let b = UpdateBatch {
            peers: vec!["10.0.0.2".parse().unwrap()],
            family: Family::IPV4_UNICAST,
            withdraw: vec![tortie_bgp_wire::Nlri::new("10.9.0.0/24".parse().unwrap())],
            announce: vec![],
            end_of_rib: true,
            adj_out_delta: -1,
        };
        let ctx = DecodeContext::four_octet();
        let buf = encode_batch(&b, &ctx).unwrap();
        let (m1, n1) = tortie_bgp_wire::decode(&buf, &ctx).unwrap().unwrap();
        let Message::Update(u) = m1 else { panic!() };
        assert_eq!(u.withdrawn.len(), 1);
        let (m2, _) = tortie_bgp_wire::decode(&buf[n1..], &ctx).unwrap().unwrap();
        let Message::Update(eor) = m2 else { panic!() };
        assert_eq!(eor.end_of_rib_family(), Some(Family::IPV4_UNICAST));
    }
}
