//! What tortie-node keeps of the speaker's output: per peer, whether it
//! sent End-of-RIB since it came up (readiness), and the forwarding table
//! of the speaker's Loc-RIB (its FIB stream: per prefix the best/ECMP next
//! hops, after the import policy), which becomes the remote blocks felix
//! installs. The `bgp rib` rows are the speaker's Loc-RIB converted to the
//! INTERFACES.md shape. Routes a peer sent but the import policy refused
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

fn rib_path(p: &tortie_bgp_speaker::RibPath) -> Option<RibPath> {
    Some(RibPath {
        peer: p.peer.parse().ok()?,
        next_hop: p.next_hop.as_deref()?.parse().ok()?,
        as_path: p.as_path.clone(),
        local_pref: p.local_pref,
        med: p.med,
        communities: p.communities.clone(),
        best: p.best,
    })
}

/// The speaker's Loc-RIB as `bgp rib` rows: paths learned from peers only
/// (our own originations have no peer and no next hop), prefixes without
/// such a path left out.
pub fn rib_rows(entries: &[tortie_bgp_speaker::RibEntry]) -> Vec<RibEntry> {
    entries
        .iter()
        .filter_map(|e| {
            let paths: Vec<RibPath> = e.paths.iter().filter_map(rib_path).collect();
            (!paths.is_empty()).then(|| RibEntry {
                prefix: e.prefix.clone(),
                paths,
            })
        })
        .collect()
}

fn to_ipnet(p: &tortie_bgp_wire::Prefix) -> Option<IpNet> {
    IpNet::new(p.addr(), p.len()).ok()
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
            let Some(net) = to_ipnet(&u.prefix) else {
                continue;
            };
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

    #[test]
    fn rib_rows_keep_learned_paths_and_drop_our_own() {
        let path = |peer: &str, hop: Option<&str>, best: bool| tortie_bgp_speaker::RibPath {
            peer: peer.into(),
            next_hop: hop.map(Into::into),
            as_path: vec![],
            local_pref: 100,
            med: None,
            communities: vec![],
            large_communities: vec![],
            best,
            multipath: best,
            stale: false,
            reason: None,
            path_id: None,
        };
        let entries = vec![
            tortie_bgp_speaker::RibEntry {
                prefix: "10.244.0.0/26".into(),
                paths: vec![path("local", None, true)],
            },
            tortie_bgp_speaker::RibEntry {
                prefix: "10.244.0.64/26".into(),
                paths: vec![path("10.0.1.2", Some("10.0.1.2"), true)],
            },
        ];
        let rows = rib_rows(&entries);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].prefix, "10.244.0.64/26");
        assert!(rows[0].paths[0].best);
        assert_eq!(rows[0].paths[0].next_hop.to_string(), "10.0.1.2");
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
