//! Routes learned over BGP, mirrored from the speaker's events: per peer,
//! per prefix, the path received. From it come the `bgp rib` rows and the
//! remote blocks felix installs (per prefix, the next hops of every
//! established peer = ECMP).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tortie_bgp_speaker::{Path, SpeakerEvent};
use tortie_bgp_wire::{Afi, Prefix};

#[derive(Debug, Default, Clone)]
struct PeerRoutes {
    end_of_rib: bool,
    routes: BTreeMap<Prefix, Arc<Path>>,
}

/// Every route learned, by peer.
#[derive(Debug, Default, Clone)]
pub struct Learned {
    peers: BTreeMap<IpAddr, PeerRoutes>,
}

/// One path of a `bgp rib -o json` row (field names are the contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibPath {
    /// The peer it came from.
    pub peer: IpAddr,
    /// Its next hop.
    pub next_hop: IpAddr,
    /// AS numbers of the AS_PATH, in order.
    pub as_path: Vec<u32>,
    /// LOCAL_PREF (100 when absent).
    pub local_pref: u32,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// Communities as `asn:value`.
    pub communities: Vec<String>,
    /// The best path of the prefix.
    pub best: bool,
}

/// One prefix of the Loc-RIB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibEntry {
    /// The prefix, e.g. `10.244.1.0/26`.
    pub prefix: String,
    /// Its paths, best first.
    pub paths: Vec<RibPath>,
}

fn rib_path(peer: IpAddr, p: &Path) -> RibPath {
    let a = &p.attrs;
    RibPath {
        peer,
        next_hop: p.next_hop,
        as_path: a
            .as_path
            .as_ref()
            .map(|ap| ap.segments.iter().flat_map(|s| s.asns.clone()).collect())
            .unwrap_or_default(),
        local_pref: a.local_pref.unwrap_or(100),
        med: a.med,
        communities: a.communities.iter().map(ToString::to_string).collect(),
        best: false,
    }
}

/// Best-path order among the paths kept: higher LOCAL_PREF, shorter
/// AS_PATH, lower MED, lower peer address (RFC 4271 §9.1.2.2, simplified).
fn rank(p: &RibPath) -> (std::cmp::Reverse<u32>, usize, u32, IpAddr) {
    (
        std::cmp::Reverse(p.local_pref),
        p.as_path.len(),
        p.med.unwrap_or(0),
        p.peer,
    )
}

fn to_ipnet(p: &Prefix) -> Option<IpNet> {
    IpNet::new(p.addr(), p.len()).ok()
}

impl Learned {
    /// Applies one speaker event.
    pub fn on_event(&mut self, ev: &SpeakerEvent) {
        match ev {
            SpeakerEvent::PeerUp { peer, .. } => {
                self.peers.insert(*peer, PeerRoutes::default());
            }
            SpeakerEvent::PeerDown { peer, .. } => {
                self.peers.remove(peer);
            }
            SpeakerEvent::Routes {
                peer,
                announced,
                withdrawn,
                ..
            } => {
                let t = self.peers.entry(*peer).or_default();
                for n in withdrawn {
                    t.routes.remove(&n.prefix);
                }
                for (n, p) in announced {
                    t.routes.insert(n.prefix, p.clone());
                }
            }
            SpeakerEvent::EndOfRib { peer, .. } => {
                self.peers.entry(*peer).or_default().end_of_rib = true;
            }
        }
    }

    /// Forgets a peer (it was removed from the configuration).
    pub fn forget(&mut self, peer: &IpAddr) {
        self.peers.remove(peer);
    }

    /// True once the peer sent End-of-RIB since it came up.
    pub fn end_of_rib(&self, peer: &IpAddr) -> bool {
        self.peers.get(peer).is_some_and(|p| p.end_of_rib)
    }

    /// The Loc-RIB rows, optionally of one address family.
    pub fn rib(&self, afi: Option<Afi>) -> Vec<RibEntry> {
        let mut by_prefix: BTreeMap<Prefix, Vec<RibPath>> = BTreeMap::new();
        for (peer, t) in &self.peers {
            for (prefix, path) in &t.routes {
                let is_v4 = prefix.addr().is_ipv4();
                match afi {
                    Some(Afi::Ipv4) if !is_v4 => continue,
                    Some(Afi::Ipv6) if is_v4 => continue,
                    _ => {}
                }
                by_prefix
                    .entry(*prefix)
                    .or_default()
                    .push(rib_path(*peer, path));
            }
        }
        by_prefix
            .into_iter()
            .map(|(prefix, mut paths)| {
                paths.sort_by_key(rank);
                if let Some(first) = paths.first_mut() {
                    first.best = true;
                }
                RibEntry {
                    prefix: prefix.to_string(),
                    paths,
                }
            })
            .collect()
    }

    /// Remote prefixes with the next hops of every path (ECMP), sorted.
    pub fn next_hops(&self) -> BTreeMap<IpNet, BTreeSet<IpAddr>> {
        let mut out: BTreeMap<IpNet, BTreeSet<IpAddr>> = BTreeMap::new();
        for t in self.peers.values() {
            for (prefix, path) in &t.routes {
                if let Some(net) = to_ipnet(prefix) {
                    out.entry(net).or_default().insert(path.next_hop);
                }
            }
        }
        out
    }

    /// Number of prefixes learned in total.
    pub fn len(&self) -> usize {
        self.peers.values().map(|p| p.routes.len()).sum()
    }

    /// True when nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_bgp_wire::{Family, Nlri, PathAttributes};

    fn routes(peer: &str, prefix: &str, hop: &str, lp: Option<u32>) -> SpeakerEvent {
        let net: IpNet = prefix.parse().unwrap();
        let p = Prefix::new(net.addr(), net.prefix_len()).unwrap();
        let attrs = PathAttributes {
            local_pref: lp,
            ..Default::default()
        };
        SpeakerEvent::Routes {
            peer: peer.parse().unwrap(),
            family: Family::IPV4_UNICAST,
            announced: vec![(
                Nlri::new(p),
                Arc::new(Path {
                    next_hop: hop.parse().unwrap(),
                    attrs: Arc::new(attrs),
                }),
            )],
            withdrawn: vec![],
        }
    }

    #[test]
    fn two_peers_with_the_same_prefix_make_ecmp_next_hops() {
        let mut l = Learned::default();
        l.on_event(&routes("10.0.1.2", "10.244.0.0/26", "10.0.1.2", None));
        l.on_event(&routes("10.0.1.3", "10.244.0.0/26", "10.0.1.3", None));
        let hops = l.next_hops();
        assert_eq!(hops.len(), 1);
        assert_eq!(hops.values().next().unwrap().len(), 2);
    }

    #[test]
    fn the_best_path_has_the_highest_local_pref() {
        let mut l = Learned::default();
        l.on_event(&routes("10.0.1.2", "10.244.0.0/26", "10.0.1.2", Some(100)));
        l.on_event(&routes("10.0.1.3", "10.244.0.0/26", "10.0.1.3", Some(200)));
        let rib = l.rib(None);
        assert_eq!(rib[0].prefix, "10.244.0.0/26");
        assert!(rib[0].paths[0].best);
        assert_eq!(rib[0].paths[0].peer.to_string(), "10.0.1.3");
        assert!(!rib[0].paths[1].best);
        assert!(l.rib(Some(Afi::Ipv6)).is_empty());
    }

    #[test]
    fn a_peer_going_down_takes_its_routes_and_end_of_rib_with_it() {
        let mut l = Learned::default();
        let peer: IpAddr = "10.0.1.2".parse().unwrap();
        l.on_event(&routes("10.0.1.2", "10.244.0.0/26", "10.0.1.2", None));
        l.on_event(&SpeakerEvent::EndOfRib {
            peer,
            family: Family::IPV4_UNICAST,
        });
        assert!(l.end_of_rib(&peer));
        l.on_event(&SpeakerEvent::PeerDown {
            peer,
            reason: "hold timer".into(),
        });
        assert!(l.is_empty());
        assert!(!l.end_of_rib(&peer));
    }
}
