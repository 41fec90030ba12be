//! The data of `tortiectl bgp rib -o json`: every prefix with its paths, the
//! best flag and the reason the best path won (INTERFACES.md shape plus
//! `origin`, `large_communities`, `multipath`, `stale`, `reason` and
//! `path_id`). The rows are typed (the wire crate's [`Prefix`] and
//! [`Origin`], addresses, [`BestPathReason`]) and serialize as they are:
//! tortie-node's status API carries them to `tortiectl` unchanged.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tortie_bgp_wire::{Family, Nlri, Origin, PathAttributes, Prefix};

use crate::adj_out;
use crate::best::BestPathReason;
use crate::error::RibError;
use crate::input::UNICAST;
use crate::rib::Rib;
use crate::table::{Dest, Path, LOCAL_SLOT};

/// One prefix of the Loc-RIB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibEntry {
    /// The prefix (serialized as its text, e.g. `10.244.1.0/26`).
    pub prefix: Prefix,
    /// Its paths, best first.
    pub paths: Vec<RibPath>,
}

/// One path of a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibPath {
    /// The peer it came from; `None` (`null`) for our own routes.
    pub peer: Option<IpAddr>,
    /// Its next hop; `None` (`null`) for our own routes.
    pub next_hop: Option<IpAddr>,
    /// AS numbers of the AS_PATH, in order (sets flattened).
    pub as_path: Vec<u32>,
    /// LOCAL_PREF as used by selection (100 when absent).
    pub local_pref: u32,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// ORIGIN (`igp`, `egp`, `incomplete`; selection takes an absent one
    /// as `incomplete`).
    pub origin: Option<Origin>,
    /// Communities as `asn:value`.
    pub communities: Vec<String>,
    /// Large communities as `global:local1:local2`.
    pub large_communities: Vec<String>,
    /// The best path.
    pub best: bool,
    /// Member of the multipath (ECMP) set.
    pub multipath: bool,
    /// Kept for a restarting peer (RFC 4724).
    pub stale: bool,
    /// Why this path is best: the first selection step that left only it
    /// (only on the best path, `None` on the others).
    pub reason: Option<BestPathReason>,
    /// RFC 7911 path id as received, when ADD-PATH is in use.
    pub path_id: Option<u32>,
}

impl Rib {
    /// The Loc-RIB in prefix order, one family or both.
    pub fn query(&self, family: Option<Family>) -> Vec<RibEntry> {
        let mut entries = Vec::new();
        for f in UNICAST
            .into_iter()
            .filter(|f| family.is_none_or(|x| x == *f))
        {
            let mut prefixes = self.tables.prefixes(f);
            prefixes.sort();
            for p in prefixes {
                if let Some(d) = self.tables.get(&p) {
                    entries.push(RibEntry {
                        prefix: p,
                        paths: self.describe(d, f),
                    });
                }
            }
        }
        entries
    }

    fn describe(&self, d: &Dest, family: Family) -> Vec<RibPath> {
        let ecmp = d.ecmp().len();
        d.paths()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut r = self.describe_path(p, family);
                r.best = i == 0;
                r.multipath = i < ecmp;
                r.reason = (i == 0).then_some(d.reason());
                r
            })
            .collect()
    }

    fn describe_path(&self, p: &Path, family: Family) -> RibPath {
        let a = &p.attrs.attrs;
        let peer = self.peers.get(usize::from(p.peer)).and_then(|s| s.as_ref());
        let with_ids = peer.is_some_and(|s| s.info.add_path_rx.contains(&family));
        RibPath {
            peer: match (p.peer, peer) {
                (LOCAL_SLOT, _) | (_, None) => None,
                (_, Some(s)) => Some(s.info.addr),
            },
            next_hop: p.attrs.next_hop,
            as_path: a
                .as_path
                .iter()
                .flat_map(|x| &x.segments)
                .flat_map(|s| s.asns.iter().copied())
                .collect(),
            local_pref: a.local_pref.unwrap_or(100),
            med: a.med,
            origin: a.origin,
            communities: a.communities.iter().map(ToString::to_string).collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(ToString::to_string)
                .collect(),
            best: false,
            multipath: false,
            stale: p.is_stale(),
            reason: None,
            path_id: with_ids.then_some(p.rx_id),
        }
    }

    /// What `peer` has been sent for `family` (its Adj-RIB-Out), computed
    /// from the Loc-RIB and the export rules.
    pub fn adj_rib_out(
        &self,
        peer: IpAddr,
        family: Family,
    ) -> Result<Vec<(Nlri, Arc<PathAttributes>)>, RibError> {
        let slot = self.slot_index(peer)?;
        Ok(adj_out::adj_rib_out(self, slot, family))
    }
}
