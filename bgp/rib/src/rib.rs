//! The [`Rib`] value: peers, tables, and the change pipeline every input
//! ends in (snapshot → modify → reselect → FIB diff → export diff).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tortie_bgp_wire::{Family, PathAttributes, Prefix};

use crate::adj_out::{self, Dump};
use crate::best::{self, Candidate};
use crate::config::{PeerInfo, PeerRole, RibConfig};
use crate::error::RibError;
use crate::export::GroupKey;
use crate::gr::RestartState;
use crate::output::{FibRoute, FibUpdate, Output};
use crate::table::{AttrPool, Dest, FastSet, Path, RouteAttrs, Tables, LOCAL_SLOT};

/// RFC 4724 §4.2 state of a peer whose routes are kept as stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StaleState {
    /// Families whose paths are stale.
    pub(crate) families: Vec<Family>,
    /// When the stale paths are removed if End-of-RIB has not come.
    pub(crate) deadline: Duration,
}

/// One peer known to the RIB: up, or down with stale routes kept.
#[derive(Clone, Debug)]
pub(crate) struct PeerSlot {
    pub(crate) info: PeerInfo,
    pub(crate) up: bool,
    /// Paths stored from this peer (max-prefix accounting).
    pub(crate) paths: usize,
    /// Max-prefix was reported once already.
    pub(crate) limit_hit: bool,
    pub(crate) stale: Option<StaleState>,
    /// Families the peer sent End-of-RIB for since it came up.
    pub(crate) eor: Vec<Family>,
    /// Flushed: the slot is freed once this input's exports are computed
    /// (the old paths' export decisions still need the peer's role).
    pub(crate) forget: bool,
}

/// Prefixes touched by one input, with their destination before the first change.
#[derive(Default)]
pub(crate) struct Changes {
    seen: FastSet<Prefix>,
    old: Vec<(Prefix, Option<Dest>)>,
}

impl Changes {
    /// Room for `n` prefixes: an UPDATE's NLRI count is known up front, and
    /// growing the set NLRI by NLRI rehashed it ~8 times per UPDATE.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Changes {
            seen: FastSet::with_capacity_and_hasher(n, Default::default()),
            old: Vec::with_capacity(n),
        }
    }

    /// Remembers `prefix`'s destination before it is modified (first time only).
    pub(crate) fn note(&mut self, tables: &Tables, prefix: &Prefix) {
        if self.seen.insert(*prefix) {
            self.old.push((*prefix, tables.get(prefix).cloned()));
        }
    }

    /// Like [`Changes::note`] with the destination already looked up.
    pub(crate) fn note_with(&mut self, prefix: Prefix, before: Option<Dest>) {
        if self.seen.insert(prefix) {
            self.old.push((prefix, before));
        }
    }
}

/// The RIB of one speaker: Adj-RIBs-In (post-policy), Loc-RIB and the
/// export computation that stands for the Adj-RIBs-Out. Owned by one loop;
/// every method takes the time as a parameter and returns an [`Output`].
#[derive(Debug)]
pub struct Rib {
    pub(crate) cfg: RibConfig,
    pub(crate) peers: Vec<Option<PeerSlot>>,
    pub(crate) by_addr: HashMap<IpAddr, u16>,
    pub(crate) tables: Tables,
    pub(crate) pool: AttrPool,
    pub(crate) restart: Option<RestartState>,
    /// Bumped whenever exports may have changed (routes, peers' paths, policy).
    pub(crate) generation: u64,
    /// Initial dumps per update group, valid for one generation: peers of one
    /// group coming up one after another share one computation.
    pub(crate) dump_cache: HashMap<GroupKey, Arc<Dump>>,
}

impl Rib {
    /// A RIB; with `cfg.restart` set it starts in RFC 4724 §4.1 deferral at `now`.
    pub fn new(cfg: RibConfig, now: Duration) -> Self {
        let restart = cfg.restart.as_ref().map(|r| RestartState::new(r, now));
        Rib {
            cfg,
            peers: vec![None],
            by_addr: HashMap::new(),
            tables: Tables::default(),
            pool: AttrPool::default(),
            restart,
            generation: 0,
            dump_cache: HashMap::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    /// True while this speaker defers selection after its own restart: the
    /// speaker sets the Restart State bit in OPENs meanwhile (RFC 4724 §4.1).
    pub fn is_restarting(&self) -> bool {
        self.restart.is_some()
    }

    /// Number of prefixes in the Loc-RIB (both families).
    pub fn prefix_count(&self) -> usize {
        self.tables.len()
    }

    /// Paths currently stored from `peer`.
    pub fn paths_from(&self, peer: IpAddr) -> usize {
        self.slot_of(peer).map_or(0, |s| s.paths)
    }

    /// Approximate bytes of route storage: tables plus distinct attribute sets.
    pub fn approx_bytes(&self) -> usize {
        self.tables.approx_bytes() + self.pool.len() * (std::mem::size_of::<RouteAttrs>() + 64)
    }

    pub(crate) fn slot_of(&self, peer: IpAddr) -> Option<&PeerSlot> {
        let i = *self.by_addr.get(&peer)?;
        self.peers.get(usize::from(i))?.as_ref()
    }

    pub(crate) fn slot_index(&self, peer: IpAddr) -> Result<u16, RibError> {
        self.by_addr
            .get(&peer)
            .copied()
            .ok_or(RibError::UnknownPeer { peer })
    }

    pub(crate) fn slot_mut(&mut self, i: u16) -> Option<&mut PeerSlot> {
        self.peers.get_mut(usize::from(i))?.as_mut()
    }

    /// A free slot index for a new peer.
    pub(crate) fn allocate_slot(&mut self) -> Result<u16, RibError> {
        if let Some(i) = self.peers.iter().skip(1).position(Option::is_none) {
            return Ok(u16::try_from(i + 1).unwrap_or(u16::MAX));
        }
        let i = u16::try_from(self.peers.len()).map_err(|_| RibError::TooManyPeers)?;
        if i == u16::MAX {
            return Err(RibError::TooManyPeers);
        }
        self.peers.push(None);
        Ok(i)
    }

    /// Originates `prefixes` with `attrs` (ORIGIN, MED, communities...);
    /// AS_PATH, NEXT_HOP and LOCAL_PREF are filled per peer on export.
    pub fn originate(&mut self, prefixes: &[Prefix], attrs: PathAttributes) -> Output {
        let shared = self.pool.intern(RouteAttrs {
            next_hop: None,
            attrs,
        });
        let mut changes = Changes::default();
        for p in prefixes {
            changes.note(&self.tables, p);
            self.tables
                .upsert(p, Path::new(shared.clone(), LOCAL_SLOT, 0));
        }
        self.finish(changes)
    }

    /// Stops originating `prefixes`.
    pub fn withdraw_local(&mut self, prefixes: &[Prefix]) -> Output {
        let mut changes = Changes::default();
        for p in prefixes {
            changes.note(&self.tables, p);
            self.tables
                .modify(p, |d| d.remove_where(|x| x.peer == LOCAL_SLOT));
        }
        self.finish(changes)
    }

    /// What best path selection knows about `path`.
    fn candidate(cfg: &RibConfig, peers: &[Option<PeerSlot>], path: &Path) -> Candidate {
        let a = &path.attrs.attrs;
        let info = peers
            .get(usize::from(path.peer))
            .and_then(|s| s.as_ref())
            .map(|s| &s.info);
        let ebgp = info.is_some_and(|i| i.role == PeerRole::Ebgp);
        let router_id = a
            .originator_id
            .or(info.map(|i| i.router_id))
            .unwrap_or(cfg.router_id);
        let as_path = a.as_path.as_ref();
        Candidate {
            // RFC 4271 §9.1.1: LOCAL_PREF of iBGP routes; eBGP routes were stripped on import.
            local_pref: a.local_pref.unwrap_or(100),
            local: path.peer == LOCAL_SLOT,
            as_path_len: as_path.map_or(0, |p| p.path_len()),
            origin: a.origin.map_or(2, origin_code),
            med: a.med.unwrap_or(0),
            neighbor_as: as_path.and_then(|p| p.first_as()).unwrap_or(cfg.asn),
            ebgp,
            cluster_list_len: a.cluster_list.len(),
            router_id: u32::from(router_id),
            peer_addr: info.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |i| i.addr),
            path_id: path.rx_id,
        }
    }

    /// Runs best path selection over a destination and stores the order.
    fn reselect(cfg: &RibConfig, peers: &[Option<PeerSlot>], dest: &mut Dest) {
        let Dest::Many(m) = dest else {
            return;
        };
        let cands: Vec<Candidate> = m
            .paths
            .iter()
            .map(|p| Self::candidate(cfg, peers, p))
            .collect();
        let sel = best::select(&cands, usize::from(cfg.max_paths));
        let paths: Vec<Path> = sel.order.iter().map(|&i| m.paths[i].clone()).collect();
        m.paths = paths;
        m.ecmp = u16::try_from(sel.ecmp).unwrap_or(u16::MAX);
        m.reason = sel.reason;
    }

    /// The end of every input: reselect what changed, then report FIB and
    /// export differences (held back while our own restart defers selection).
    pub(crate) fn finish(&mut self, changes: Changes) -> Output {
        let (old, fib) = self.settle(changes);
        if !old.is_empty() {
            self.generation += 1;
        }
        let mut out = Output::default();
        if self.restart.is_none() {
            out.fib = fib;
            out.updates = adj_out::diff_all(self, &old);
        }
        self.reap();
        self.pool.maybe_collect();
        out.next_deadline = self.next_deadline();
        out
    }

    /// Reselects every changed prefix; returns the old destinations in
    /// prefix order and the FIB changes between them and the new ones.
    pub(crate) fn settle(
        &mut self,
        changes: Changes,
    ) -> (Vec<(Prefix, Option<Dest>)>, Vec<FibUpdate>) {
        let mut old = changes.old;
        old.sort_unstable_by_key(|a| a.0);
        let mut fib = Vec::new();
        for (prefix, before) in &old {
            let now = match self.tables.get_mut(prefix) {
                Some(d) => {
                    Self::reselect(&self.cfg, &self.peers, d);
                    fib_view(Some(d))
                }
                None => None,
            };
            if fib_view(before.as_ref()) != now {
                fib.push(FibUpdate {
                    prefix: *prefix,
                    route: now,
                });
            }
        }
        (old, fib)
    }

    /// Frees the slots of flushed peers.
    fn reap(&mut self) {
        for slot in self.peers.iter_mut() {
            if let Some(s) = slot.take_if(|s| s.forget) {
                self.by_addr.remove(&s.info.addr);
            }
        }
    }

    /// Update groups of the peers that are up, per family, in a stable order.
    pub(crate) fn groups(&self) -> BTreeMap<GroupKey, Vec<u16>> {
        let mut groups: BTreeMap<GroupKey, Vec<u16>> = BTreeMap::new();
        for (i, slot) in self.peers.iter().enumerate() {
            let Some(s) = slot.as_ref().filter(|s| s.up) else {
                continue;
            };
            for f in &s.info.families {
                let key = GroupKey::of(&s.info, *f);
                groups
                    .entry(key)
                    .or_default()
                    .push(u16::try_from(i).unwrap_or(u16::MAX));
            }
        }
        groups
    }

    /// The earliest timer among stale peers and our own restart.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        let stale = self
            .peers
            .iter()
            .flatten()
            .filter_map(|s| s.stale.as_ref().map(|st| st.deadline));
        let restart = self.restart.as_ref().map(|r| r.next_deadline());
        stale.chain(restart).min()
    }
}

fn origin_code(o: tortie_bgp_wire::Origin) -> u8 {
    match o {
        tortie_bgp_wire::Origin::Igp => 0,
        tortie_bgp_wire::Origin::Egp => 1,
        _ => 2,
    }
}

/// What the kernel should hold for a destination.
pub(crate) fn fib_view(dest: Option<&Dest>) -> Option<FibRoute> {
    let set = dest?.ecmp();
    if set.first()?.peer == LOCAL_SLOT {
        return None;
    }
    let mut next_hops: Vec<IpAddr> = Vec::new();
    for nh in set
        .iter()
        .filter(|p| p.peer != LOCAL_SLOT)
        .filter_map(|p| p.attrs.next_hop)
    {
        if !next_hops.contains(&nh) {
            next_hops.push(nh);
        }
    }
    if next_hops.is_empty() {
        return None;
    }
    Some(FibRoute {
        next_hops,
        stale: set.iter().any(Path::is_stale),
    })
}

/// Shared attribute pointer identity, for caches.
pub(crate) fn ptr_of(a: &Arc<RouteAttrs>) -> usize {
    Arc::as_ptr(a) as usize
}
