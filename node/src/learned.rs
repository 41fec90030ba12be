//! What tortie-node keeps of the speaker's output: per peer, whether it
//! sent End-of-RIB since it came up (readiness), and the forwarding table
//! of the speaker's Loc-RIB (its FIB stream: per prefix the best/ECMP next
//! hops, after the import policy), which becomes the remote blocks felix
//! installs. The `bgp rib` rows are the speaker's Loc-RIB rows as the RIB
//! made them (INTERFACES.md shape plus the best-path reason), our own
//! originations left out. Routes a peer sent but the import policy refused
//! are in neither.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_bgp_speaker::{FibEvent, SpeakerEvent};

/// End-of-RIB per peer and the Loc-RIB's forwarding table.
#[derive(Debug, Default, Clone)]
pub struct Learned {
    end_of_rib: BTreeMap<IpAddr, bool>,
    fib: BTreeMap<IpNet, BTreeSet<IpAddr>>,
}

pub use tortie_node_api::{RibEntry, RibPath};

/// The speaker's Loc-RIB rows as `bgp rib` shows them: the RIB's own typed
/// rows (prefix, attributes, best flag and best-path reason) unchanged,
/// minus our own originations (no peer, no next hop) and the prefixes left
/// without any other path.
pub fn rib_rows(mut entries: Vec<RibEntry>) -> Vec<RibEntry> {
    entries.retain_mut(|e| {
        e.paths.retain(|p| p.peer.is_some() && p.next_hop.is_some());
        !e.paths.is_empty()
    });
    entries
}

impl Learned {
    /// Applies one speaker event (End-of-RIB bookkeeping).
    pub fn on_event(&mut self, ev: &SpeakerEvent) {
        match ev {
            SpeakerEvent::PeerUp { peer, .. } | SpeakerEvent::PeerDown { peer, .. } => {
                self.end_of_rib.insert(*peer, false);
            }
            SpeakerEvent::EndOfRib { peer, .. } => {
                self.end_of_rib.insert(*peer, true);
            }
            SpeakerEvent::Routes { .. } => {}
        }
    }

    /// Applies one FIB event; true when the forwarding table changed.
    pub fn on_fib(&mut self, ev: &FibEvent) -> bool {
        let FibEvent::Routes(updates) = ev else {
            return false;
        };
        let mut changed = false;
        for u in updates {
            let net = IpNet::from(u.prefix);
            match &u.route {
                Some(r) => {
                    let hops: BTreeSet<IpAddr> = r.next_hops.iter().copied().collect();
                    changed |= self.fib.insert(net, hops.clone()).as_ref() != Some(&hops);
                }
                None => changed |= self.fib.remove(&net).is_some(),
            }
        }
        changed
    }

    /// Forgets everything (the speaker was replaced).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Forgets a peer (it was removed from the configuration).
    pub fn forget(&mut self, peer: &IpAddr) {
        self.end_of_rib.remove(peer);
    }

    /// True once the peer sent End-of-RIB since it came up.
    pub fn end_of_rib(&self, peer: &IpAddr) -> bool {
        self.end_of_rib.get(peer).copied().unwrap_or(false)
    }

    /// Remote prefixes of the Loc-RIB with their next hops (ECMP), sorted.
    pub fn next_hops(&self) -> BTreeMap<IpNet, BTreeSet<IpAddr>> {
        self.fib.clone()
    }

    /// Number of prefixes in the forwarding table.
    pub fn len(&self) -> usize {
        self.fib.len()
    }

    /// True when the forwarding table is empty.
    pub fn is_empty(&self) -> bool {
        self.fib.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_bgp_speaker::{FibRoute, FibUpdate};
    use tortie_bgp_wire::{Family, Prefix};

    fn update(prefix: &str, hops: &[&str]) -> FibUpdate {
        FibUpdate {
            prefix: prefix.parse::<Prefix>().unwrap(),
            route: (!hops.is_empty()).then(|| FibRoute {
                next_hops: hops.iter().map(|h| h.parse().unwrap()).collect(),
                stale: false,
            }),
        }
    }

    #[test]
    fn the_fib_stream_gives_ecmp_next_hops_and_removals() {
        let mut l = Learned::default();
        let ev = FibEvent::Routes(vec![
            update("10.244.0.0/26", &["10.0.1.2", "10.0.1.3"]),
            update("10.244.0.64/26", &["10.0.1.2"]),
        ]);
        assert!(l.on_fib(&ev));
        assert!(!l.on_fib(&ev), "the same table again changes nothing");
        let hops = l.next_hops();
        assert_eq!(hops.len(), 2);
        assert_eq!(hops.values().next().unwrap().len(), 2);
        assert!(l.on_fib(&FibEvent::Routes(vec![update("10.244.0.64/26", &[])])));
        assert_eq!(l.len(), 1);
        assert!(!l.on_fib(&FibEvent::RestartComplete));
    }

    fn path(peer: Option<&str>, best: bool) -> RibPath {
        RibPath {
            peer: peer.map(|p| p.parse().unwrap()),
            next_hop: peer.map(|p| p.parse().unwrap()),
            as_path: vec![65002],
            local_pref: 100,
            med: None,
            origin: Some(tortie_bgp_wire::Origin::Igp),
            communities: vec![],
            large_communities: vec![],
            best,
            multipath: best,
            stale: false,
            reason: best.then_some(tortie_node_api::BestPathReason::AsPathLength),
            path_id: None,
        }
    }

    #[test]
    fn rib_rows_keep_learned_paths_as_the_rib_made_them_and_drop_our_own() {
        let learned = RibEntry {
            prefix: "10.244.0.64/26".parse().unwrap(),
            paths: vec![path(Some("10.0.1.2"), true), path(Some("10.0.1.3"), false)],
        };
        let entries = vec![
            RibEntry {
                prefix: "10.244.0.0/26".parse().unwrap(),
                paths: vec![path(None, true)],
            },
            learned.clone(),
        ];
        assert_eq!(rib_rows(entries), vec![learned]);
    }

    #[test]
    fn a_learned_path_beside_our_own_stays_without_a_reason() {
        let rows = rib_rows(vec![RibEntry {
            prefix: "10.244.0.0/26".parse().unwrap(),
            paths: vec![path(None, true), path(Some("10.0.1.2"), false)],
        }]);
        assert_eq!(rows[0].paths, vec![path(Some("10.0.1.2"), false)]);
        assert_eq!(rows[0].paths[0].reason, None);
    }

    #[test]
    fn a_peer_going_down_loses_its_end_of_rib() {
        let mut l = Learned::default();
        let peer: IpAddr = "10.0.1.2".parse().unwrap();
        l.on_event(&SpeakerEvent::EndOfRib {
            peer,
            family: Family::IPV4_UNICAST,
        });
        assert!(l.end_of_rib(&peer));
        l.on_event(&SpeakerEvent::PeerDown {
            peer,
            reason: "hold timer".into(),
        });
        assert!(!l.end_of_rib(&peer));
    }
}
