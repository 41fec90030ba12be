//! Route storage: interned attributes, compact per-family prefix keys, and one
//! destination per prefix holding every accepted path (the Adj-RIBs-In after
//! import policy) ordered best first, so the Loc-RIB is a view, not a copy.
//!
//! Memory matters here (the target is BIRD's ≈ 88 bytes per route): a path is
//! 16 bytes (shared attributes pointer, received path id, peer slot, sent path
//! id with the stale flag), a single-path destination stores it inline in
//! 16 bytes, and IPv4 prefixes are keyed by 8 bytes: 24 bytes per table slot.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use tortie_bgp_wire::{Afi, Family, PathAttributes, Prefix, Safi};

use crate::best::BestPathReason;

/// The attributes of a stored path, shared by every path that has the same
/// ones. NEXT_HOP and MP_REACH/MP_UNREACH are taken out of `attrs`; the
/// next hop lives here (`None` for routes we originate).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// The next hop (IPv6 global when the peer sent an IPv6 next hop).
    pub next_hop: Option<IpAddr>,
    /// The other attributes.
    pub attrs: PathAttributes,
}

/// Interning pool: equal attributes are stored once.
#[derive(Debug, Default)]
pub(crate) struct AttrPool {
    set: HashSet<Arc<RouteAttrs>>,
    /// Size after the last collection; the next one runs at twice this.
    collected_at: usize,
}

impl AttrPool {
    /// The shared copy of `attrs`.
    pub(crate) fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        if let Some(a) = self.set.get(&attrs) {
            return a.clone();
        }
        let a = Arc::new(attrs);
        self.set.insert(a.clone());
        a
    }

    /// Drops attributes no path uses any more, once the pool has doubled.
    pub(crate) fn maybe_collect(&mut self) {
        if self.set.len() < 2 * self.collected_at.max(512) {
            return;
        }
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.collected_at = self.set.len();
    }

    /// Distinct attribute sets held.
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

/// Peer slot of the routes we originate.
pub(crate) const LOCAL_SLOT: u16 = 0;
const STALE_BIT: u16 = 0x8000;

/// One path: 16 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    /// Shared attributes.
    pub(crate) attrs: Arc<RouteAttrs>,
    /// RFC 7911 path id as received (0 without ADD-PATH).
    pub(crate) rx_id: u32,
    /// Peer slot ([`LOCAL_SLOT`] for our own routes).
    pub(crate) peer: u16,
    /// Path id we send with ADD-PATH (low 15 bits) and the RFC 4724 stale flag.
    tx: u16,
}

impl Path {
    /// A fresh (not stale) path; its sent path id is assigned on insertion.
    pub(crate) fn new(attrs: Arc<RouteAttrs>, peer: u16, rx_id: u32) -> Self {
        Path {
            attrs,
            rx_id,
            peer,
            tx: 0,
        }
    }

    /// The RFC 7911 path id we use when sending this path.
    pub(crate) fn tx_id(&self) -> u32 {
        u32::from(self.tx & !STALE_BIT)
    }

    /// True while the path waits for its restarting peer's End-of-RIB.
    pub(crate) fn is_stale(&self) -> bool {
        self.tx & STALE_BIT != 0
    }

    /// Marks the path stale (RFC 4724 §4.2).
    pub(crate) fn set_stale(&mut self) {
        self.tx |= STALE_BIT;
    }

    fn same_source(&self, other: &Path) -> bool {
        self.peer == other.peer && self.rx_id == other.rx_id
    }
}

/// What [`Dest::upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// The same path was already stored.
    Unchanged,
    /// A path of the same source was replaced.
    Replaced,
    /// A path from a new source was added.
    Added,
}

/// All paths of one prefix, best first, then the rest of the multipath set.
#[derive(Clone, Debug)]
pub(crate) enum Dest {
    /// The common case: one path, stored inline.
    One(Path),
    /// Several paths.
    Many(Box<Multi>),
}

/// A destination with several paths.
#[derive(Clone, Debug)]
pub(crate) struct Multi {
    pub(crate) paths: Vec<Path>,
    pub(crate) ecmp: u16,
    pub(crate) reason: BestPathReason,
}

impl Dest {
    /// Every path, best first.
    pub(crate) fn paths(&self) -> &[Path] {
        match self {
            Dest::One(p) => std::slice::from_ref(p),
            Dest::Many(m) => &m.paths,
        }
    }

    /// The multipath set (best first); empty never.
    pub(crate) fn ecmp(&self) -> &[Path] {
        match self {
            Dest::One(p) => std::slice::from_ref(p),
            Dest::Many(m) => &m.paths[..usize::from(m.ecmp.max(1))],
        }
    }

    /// Why the best path won.
    pub(crate) fn reason(&self) -> BestPathReason {
        match self {
            Dest::One(_) => BestPathReason::OnlyPath,
            Dest::Many(m) => m.reason,
        }
    }

    /// True when a path from `peer` with received id `rx_id` is stored.
    pub(crate) fn has_source(&self, peer: u16, rx_id: u32) -> bool {
        self.paths()
            .iter()
            .any(|p| p.peer == peer && p.rx_id == rx_id)
    }

    /// Adds or replaces the path of the same source.
    pub(crate) fn upsert(&mut self, mut path: Path) -> Upsert {
        let result;
        if let Some(old) = self.paths().iter().find(|p| p.same_source(&path)) {
            if old.attrs == path.attrs && !old.is_stale() {
                return Upsert::Unchanged;
            }
            path.tx = old.tx & !STALE_BIT;
            result = Upsert::Replaced;
        } else {
            path.tx = self.free_tx_id();
            result = Upsert::Added;
        }
        match self {
            Dest::One(p) if p.same_source(&path) => *p = path,
            Dest::One(p) => {
                let first = p.clone();
                *self = Dest::Many(Box::new(Multi {
                    paths: vec![first, path],
                    ecmp: 1,
                    reason: BestPathReason::OnlyPath,
                }));
            }
            Dest::Many(m) => match m.paths.iter_mut().find(|p| p.same_source(&path)) {
                Some(slot) => *slot = path,
                None => m.paths.push(path),
            },
        }
        result
    }

    /// A new destination holding one path.
    pub(crate) fn single(mut path: Path) -> Self {
        path.tx = 1;
        Dest::One(path)
    }

    fn free_tx_id(&self) -> u16 {
        let used: Vec<u16> = self.paths().iter().map(|p| p.tx & !STALE_BIT).collect();
        (1..STALE_BIT).find(|id| !used.contains(id)).unwrap_or(1)
    }

    /// Removes the paths `drop` selects; returns (removed any, now empty).
    pub(crate) fn remove_where(&mut self, drop: impl Fn(&Path) -> bool) -> (bool, bool) {
        match self {
            Dest::One(p) => {
                let gone = drop(p);
                (gone, gone)
            }
            Dest::Many(m) => {
                let before = m.paths.len();
                m.paths.retain(|p| !drop(p));
                let removed = m.paths.len() != before;
                match m.paths.len() {
                    0 => (removed, true),
                    1 => {
                        let only = m.paths.pop().map(Dest::One);
                        if let Some(d) = only {
                            *self = d;
                        }
                        (removed, false)
                    }
                    _ => (removed, false),
                }
            }
        }
    }

    /// Marks the paths `pick` selects stale; returns how many changed.
    pub(crate) fn mark_stale(&mut self, pick: impl Fn(&Path) -> bool) -> usize {
        let paths: &mut [Path] = match self {
            Dest::One(p) => std::slice::from_mut(p),
            Dest::Many(m) => &mut m.paths,
        };
        let mut n = 0;
        for p in paths.iter_mut().filter(|p| pick(p) && !p.is_stale()) {
            p.set_stale();
            n += 1;
        }
        n
    }
}

/// Compact key of an IPv4 prefix (8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct V4Key(u32, u8);

/// Compact key of an IPv6 prefix (17 bytes, alignment 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct V6Key([u8; 16], u8);

fn v4_prefix(k: V4Key) -> Prefix {
    // The key came from a valid prefix, so its length is valid.
    Prefix::new(IpAddr::V4(Ipv4Addr::from(k.0)), k.1).unwrap_or_else(|_| unreachable_prefix())
}

fn v6_prefix(k: V6Key) -> Prefix {
    Prefix::new(IpAddr::V6(Ipv6Addr::from(k.0)), k.1).unwrap_or_else(|_| unreachable_prefix())
}

fn unreachable_prefix() -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        .unwrap_or_else(|_| unreachable!("/0 is valid"))
}

/// Hash maps keyed by peer-supplied prefixes: foldhash is several times
/// faster than SipHash here and randomly seeded per process, which keeps
/// crafted prefixes from degrading the tables (hash flooding).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// A set with the same hasher as [`FastMap`].
pub(crate) type FastSet<K> = HashSet<K, foldhash::quality::RandomState>;

/// The unicast tables of both address families.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    v4: FastMap<V4Key, Dest>,
    v6: FastMap<V6Key, Dest>,
}

/// The families the RIB stores.
pub(crate) fn supported(family: Family) -> bool {
    family.safi == Safi::Unicast && matches!(family.afi, Afi::Ipv4 | Afi::Ipv6)
}

/// The unicast family of a prefix.
pub(crate) fn family_of(prefix: &Prefix) -> Family {
    if prefix.is_ipv4() {
        Family::IPV4_UNICAST
    } else {
        Family::IPV6_UNICAST
    }
}

impl Tables {
    /// The destination of `prefix`.
    pub(crate) fn get(&self, prefix: &Prefix) -> Option<&Dest> {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.get(&V4Key(a.into(), prefix.len())),
            IpAddr::V6(a) => self.v6.get(&V6Key(a.octets(), prefix.len())),
        }
    }

    /// Inserts `path` for `prefix`.
    pub(crate) fn upsert(&mut self, prefix: &Prefix, path: Path) -> Upsert {
        use std::collections::hash_map::Entry;
        fn go<K: std::hash::Hash + Eq>(map: &mut FastMap<K, Dest>, k: K, path: Path) -> Upsert {
            match map.entry(k) {
                Entry::Occupied(mut e) => e.get_mut().upsert(path),
                Entry::Vacant(e) => {
                    e.insert(Dest::single(path));
                    Upsert::Added
                }
            }
        }
        match prefix.addr() {
            IpAddr::V4(a) => go(&mut self.v4, V4Key(a.into(), prefix.len()), path),
            IpAddr::V6(a) => go(&mut self.v6, V6Key(a.octets(), prefix.len()), path),
        }
    }

    /// Applies `f` to the destination of `prefix`, dropping it when `f` says it is empty.
    pub(crate) fn modify<R>(
        &mut self,
        prefix: &Prefix,
        f: impl FnOnce(&mut Dest) -> (R, bool),
    ) -> Option<R> {
        fn go<K: std::hash::Hash + Eq, R>(
            map: &mut FastMap<K, Dest>,
            k: K,
            f: impl FnOnce(&mut Dest) -> (R, bool),
        ) -> Option<R> {
            let d = map.get_mut(&k)?;
            let (r, empty) = f(d);
            if empty {
                map.remove(&k);
            }
            Some(r)
        }
        match prefix.addr() {
            IpAddr::V4(a) => go(&mut self.v4, V4Key(a.into(), prefix.len()), f),
            IpAddr::V6(a) => go(&mut self.v6, V6Key(a.octets(), prefix.len()), f),
        }
    }

    /// Mutable access without removal (reordering after best path selection).
    pub(crate) fn get_mut(&mut self, prefix: &Prefix) -> Option<&mut Dest> {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.get_mut(&V4Key(a.into(), prefix.len())),
            IpAddr::V6(a) => self.v6.get_mut(&V6Key(a.octets(), prefix.len())),
        }
    }

    /// Removes, in one pass over `family`'s table, the paths `pick` selects;
    /// returns each touched prefix with its destination before and how many
    /// paths went.
    pub(crate) fn remove_paths(
        &mut self,
        family: Family,
        pick: impl Fn(&Path) -> bool,
    ) -> Vec<(Prefix, Dest, usize)> {
        fn go<K: Copy>(
            map: &mut FastMap<K, Dest>,
            key: fn(K) -> Prefix,
            pick: &dyn Fn(&Path) -> bool,
            out: &mut Vec<(Prefix, Dest, usize)>,
        ) {
            map.retain(|k, d| {
                let n = d.paths().iter().filter(|p| pick(p)).count();
                if n == 0 {
                    return true;
                }
                let before = d.clone();
                let (_, empty) = d.remove_where(pick);
                out.push((key(*k), before, n));
                !empty
            });
        }
        let mut out = Vec::new();
        match family.afi {
            Afi::Ipv4 => go(&mut self.v4, v4_prefix, &pick, &mut out),
            Afi::Ipv6 => go(&mut self.v6, v6_prefix, &pick, &mut out),
            Afi::Other(_) => {}
        }
        out
    }

    /// Marks stale, in one pass over `family`'s table, the fresh paths `pick`
    /// selects; returns each touched prefix with its destination before.
    pub(crate) fn mark_stale(
        &mut self,
        family: Family,
        pick: impl Fn(&Path) -> bool,
    ) -> Vec<(Prefix, Dest)> {
        fn go<K: Copy>(
            map: &mut FastMap<K, Dest>,
            key: fn(K) -> Prefix,
            pick: &dyn Fn(&Path) -> bool,
            out: &mut Vec<(Prefix, Dest)>,
        ) {
            for (k, d) in map.iter_mut() {
                if d.paths().iter().any(|p| pick(p) && !p.is_stale()) {
                    let before = d.clone();
                    d.mark_stale(pick);
                    out.push((key(*k), before));
                }
            }
        }
        let mut out = Vec::new();
        match family.afi {
            Afi::Ipv4 => go(&mut self.v4, v4_prefix, &pick, &mut out),
            Afi::Ipv6 => go(&mut self.v6, v6_prefix, &pick, &mut out),
            Afi::Other(_) => {}
        }
        out
    }

    /// Every prefix of `family`, unordered.
    pub(crate) fn prefixes(&self, family: Family) -> Vec<Prefix> {
        match family.afi {
            Afi::Ipv4 => self.v4.keys().map(|k| v4_prefix(*k)).collect(),
            Afi::Ipv6 => self.v6.keys().map(|k| v6_prefix(*k)).collect(),
            Afi::Other(_) => Vec::new(),
        }
    }

    /// Number of prefixes of both families.
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Bytes held by the hash tables and multi-path vectors (attributes excluded).
    pub(crate) fn approx_bytes(&self) -> usize {
        fn table<K>(m: &FastMap<K, Dest>) -> usize {
            let slot = std::mem::size_of::<(K, Dest)>() + 1;
            let buckets = (m.capacity() * 8 / 7).next_power_of_two();
            let many: usize = m
                .values()
                .map(|d| match d {
                    Dest::One(_) => 0,
                    Dest::Many(b) => {
                        std::mem::size_of::<Multi>()
                            + b.paths.capacity() * std::mem::size_of::<Path>()
                    }
                })
                .sum();
            buckets * slot + many
        }
        table(&self.v4) + table(&self.v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(pool: &mut AttrPool, peer: u16, med: u32) -> Path {
        let a = pool.intern(RouteAttrs {
            next_hop: Some("10.0.0.1".parse().unwrap()),
            attrs: PathAttributes {
                med: Some(med),
                ..Default::default()
            },
        });
        Path::new(a, peer, 0)
    }

    #[test]
    fn paths_and_single_path_destinations_stay_small() {
        assert_eq!(std::mem::size_of::<Path>(), 16);
        // The multi-path box hides in the attribute pointer's niche.
        assert_eq!(std::mem::size_of::<Dest>(), 16);
        assert_eq!(std::mem::size_of::<(V4Key, Dest)>(), 24);
    }

    #[test]
    fn equal_attributes_are_stored_once() {
        let mut pool = AttrPool::default();
        let a = path(&mut pool, 1, 5);
        let b = path(&mut pool, 2, 5);
        assert!(Arc::ptr_eq(&a.attrs, &b.attrs));
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn replacing_a_path_keeps_its_sent_path_id_and_new_sources_get_free_ids() {
        let mut pool = AttrPool::default();
        let mut d = Dest::single(path(&mut pool, 1, 0));
        assert_eq!(d.upsert(path(&mut pool, 1, 0)), Upsert::Unchanged);
        assert_eq!(d.upsert(path(&mut pool, 2, 0)), Upsert::Added);
        assert_eq!(d.upsert(path(&mut pool, 1, 9)), Upsert::Replaced);
        let ids: Vec<(u16, u32)> = d.paths().iter().map(|p| (p.peer, p.tx_id())).collect();
        assert_eq!(ids, vec![(1, 1), (2, 2)]);
        assert_eq!(d.remove_where(|p| p.peer == 1), (true, false));
        assert!(matches!(d, Dest::One(_)));
        assert_eq!(d.upsert(path(&mut pool, 3, 0)), Upsert::Added);
        assert_eq!(d.paths()[1].tx_id(), 1);
    }

    #[test]
    fn a_refreshed_stale_path_counts_as_a_change_and_is_fresh_again() {
        let mut pool = AttrPool::default();
        let mut d = Dest::single(path(&mut pool, 1, 0));
        assert_eq!(d.mark_stale(|_| true), 1);
        assert!(d.paths()[0].is_stale());
        assert_eq!(d.upsert(path(&mut pool, 1, 0)), Upsert::Replaced);
        assert!(!d.paths()[0].is_stale());
    }

    #[test]
    fn tables_round_trip_prefixes_of_both_families() {
        let mut pool = AttrPool::default();
        let mut t = Tables::default();
        let v4: Prefix = "10.244.1.0/26".parse().unwrap();
        let v6: Prefix = "fd00:1::/122".parse().unwrap();
        assert_eq!(t.upsert(&v4, path(&mut pool, 1, 0)), Upsert::Added);
        assert_eq!(t.upsert(&v6, path(&mut pool, 1, 0)), Upsert::Added);
        assert_eq!(t.prefixes(Family::IPV4_UNICAST), vec![v4]);
        assert_eq!(t.prefixes(Family::IPV6_UNICAST), vec![v6]);
        assert_eq!(t.modify(&v4, |d| d.remove_where(|_| true)), Some(true));
        assert_eq!(t.len(), 1);
    }
}
