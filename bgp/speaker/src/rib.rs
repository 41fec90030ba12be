//! The speaker's minimal, replaceable route state: one Adj-RIB-In per peer
//! and the set of prefixes we originate. Best path, policy and reflection
//! belong to `tortie-bgp-rib`, which consumes [`crate::SpeakerEvent`]s.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use tortie_bgp_wire::{Family, Nlri, PathAttributes, Prefix};

/// A path as received: its next hop and attributes (with NEXT_HOP,
/// MP_REACH_NLRI and MP_UNREACH_NLRI taken out).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    /// The next hop (IPv6 global when the peer sent an IPv6 next hop).
    pub next_hop: IpAddr,
    /// The other attributes.
    pub attrs: Arc<PathAttributes>,
}

/// Routes received from one peer (RFC 4271 §3.2 Adj-RIB-In), keyed per
/// family by NLRI (prefix + ADD-PATH path id).
#[derive(Debug, Default, Clone)]
pub struct AdjRibIn {
    tables: HashMap<Family, HashMap<Nlri, Arc<Path>>>,
}

impl AdjRibIn {
    /// Stores a path; returns true when it is new or changed.
    pub fn insert(&mut self, family: Family, nlri: Nlri, path: Arc<Path>) -> bool {
        let t = self.tables.entry(family).or_default();
        match t.get(&nlri) {
            Some(old) if **old == *path => false,
            _ => {
                t.insert(nlri, path);
                true
            }
        }
    }

    /// Removes a path; returns true when it was there.
    pub fn remove(&mut self, family: Family, nlri: &Nlri) -> bool {
        self.tables
            .get_mut(&family)
            .map(|t| t.remove(nlri).is_some())
            .unwrap_or(false)
    }

    /// Number of paths across families.
    pub fn len(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops everything (session down).
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// Paths of one family.
    pub fn iter(&self, family: Family) -> impl Iterator<Item = (&Nlri, &Arc<Path>)> {
        self.tables.get(&family).into_iter().flat_map(|t| t.iter())
    }
}

/// The prefixes this speaker originates, each with its attributes (ORIGIN,
/// communities, MED...); AS_PATH, NEXT_HOP and LOCAL_PREF are filled per peer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Originated {
    routes: BTreeMap<Prefix, Arc<PathAttributes>>,
}

impl Originated {
    /// Adds or replaces prefixes; returns those that changed.
    pub fn add(&mut self, prefixes: &[Prefix], attrs: &Arc<PathAttributes>) -> Vec<Prefix> {
        let mut changed = Vec::new();
        for p in prefixes {
            if self.routes.get(p) != Some(attrs) {
                self.routes.insert(*p, attrs.clone());
                changed.push(*p);
            }
        }
        changed
    }

    /// Removes prefixes; returns those that were there.
    pub fn remove(&mut self, prefixes: &[Prefix]) -> Vec<Prefix> {
        prefixes
            .iter()
            .filter(|p| self.routes.remove(p).is_some())
            .copied()
            .collect()
    }

    /// Attributes of one prefix.
    pub fn get(&self, prefix: &Prefix) -> Option<&Arc<PathAttributes>> {
        self.routes.get(prefix)
    }

    /// All routes, in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &Arc<PathAttributes>)> {
        self.routes.iter()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(nh: &str) -> Arc<Path> {
        Arc::new(Path {
            next_hop: nh.parse().unwrap(),
            attrs: Arc::new(PathAttributes::default()),
        })
    }

    #[test]
    fn adj_rib_in_reports_only_real_changes() {
        let mut rib = AdjRibIn::default();
        let n = Nlri::new("10.0.0.0/24".parse().unwrap());
        assert!(rib.insert(Family::IPV4_UNICAST, n, path("10.0.0.1")));
        assert!(!rib.insert(Family::IPV4_UNICAST, n, path("10.0.0.1")));
        assert!(rib.insert(Family::IPV4_UNICAST, n, path("10.0.0.2")));
        assert_eq!(rib.len(), 1);
        assert!(rib.remove(Family::IPV4_UNICAST, &n));
        assert!(!rib.remove(Family::IPV4_UNICAST, &n));
        assert!(rib.is_empty());
    }

    #[test]
    fn add_path_ids_keep_paths_apart() {
        let mut rib = AdjRibIn::default();
        let p: Prefix = "10.0.0.0/24".parse().unwrap();
        rib.insert(
            Family::IPV4_UNICAST,
            Nlri::with_path_id(p, 1),
            path("10.0.0.1"),
        );
        rib.insert(
            Family::IPV4_UNICAST,
            Nlri::with_path_id(p, 2),
            path("10.0.0.2"),
        );
        assert_eq!(rib.len(), 2);
    }

    #[test]
    fn originated_set_reports_changes() {
        let mut o = Originated::default();
        let a = Arc::new(PathAttributes::default());
        let p: Prefix = "10.1.0.0/26".parse().unwrap();
        assert_eq!(o.add(&[p], &a), vec![p]);
        assert!(o.add(&[p], &a).is_empty());
        assert_eq!(o.remove(&[p, p]), vec![p]);
    }
}
