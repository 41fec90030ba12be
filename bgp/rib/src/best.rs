//! Best path selection (RFC 4271 §9.1.2.2, RFC 4456 §9) as a chain of small
//! elimination steps in the manner of GoBGP's `destination.go`: each step keeps
//! the candidates it prefers, and the step that leaves one candidate is the
//! [`BestPathReason`] shown by `tortiectl bgp rib`.
//!
//! Elimination over the whole set (instead of sorting with a pairwise
//! comparison) is what RFC 4271 §9.1.2.2 describes, and it stays correct with
//! MED, which only compares routes from the same neighbour AS and so is not a
//! total order.
//!
//! The multipath (ECMP) set is what is left after the steps up to and
//! including "eBGP over iBGP" (BIRD's `merge paths`: same LOCAL_PREF, AS_PATH
//! length, ORIGIN, MED and eBGP/iBGP); the remaining steps only break ties.

use std::cmp::Reverse;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Why the best path won: the first selection step that left only it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestPathReason {
    /// There was no other path.
    OnlyPath,
    /// Originated by this speaker: preferred before any BGP comparison, as
    /// BIRD's protocol preference and FRR's weight do, so a peer can never
    /// take over a block this node owns.
    LocalOrigin,
    /// Highest LOCAL_PREF (RFC 4271 §9.1.2.2, via §9.1.1).
    LocalPref,
    /// Shortest AS_PATH (RFC 4271 §9.1.2.2 a).
    AsPathLength,
    /// Lowest ORIGIN (RFC 4271 §9.1.2.2 b).
    Origin,
    /// Lowest MED among routes from the same neighbour AS (RFC 4271 §9.1.2.2 c).
    Med,
    /// eBGP-learned over iBGP-learned (RFC 4271 §9.1.2.2 d).
    EbgpOverIbgp,
    /// Shortest CLUSTER_LIST (RFC 4456 §9).
    ClusterListLength,
    /// Lowest BGP Identifier, ORIGINATOR_ID standing in for it (RFC 4271 §9.1.2.2 f, RFC 4456 §9).
    RouterId,
    /// Lowest peer address (RFC 4271 §9.1.2.2 g).
    PeerAddress,
    /// Lowest received ADD-PATH path id (RFC 7911: several paths from one peer).
    PathId,
}

impl BestPathReason {
    /// The name shown to operators (also the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            BestPathReason::OnlyPath => "only_path",
            BestPathReason::LocalPref => "local_pref",
            BestPathReason::LocalOrigin => "local_origin",
            BestPathReason::AsPathLength => "as_path_length",
            BestPathReason::Origin => "origin",
            BestPathReason::Med => "med",
            BestPathReason::EbgpOverIbgp => "ebgp_over_ibgp",
            BestPathReason::ClusterListLength => "cluster_list_length",
            BestPathReason::RouterId => "router_id",
            BestPathReason::PeerAddress => "peer_address",
            BestPathReason::PathId => "path_id",
        }
    }
}

/// What best path selection needs to know about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// LOCAL_PREF, 100 when absent or from eBGP.
    pub(crate) local_pref: u32,
    /// Originated by us.
    pub(crate) local: bool,
    /// AS_PATH length per RFC 4271 §9.1.2.2 a.
    pub(crate) as_path_len: usize,
    /// ORIGIN code (IGP 0 < EGP 1 < INCOMPLETE 2).
    pub(crate) origin: u8,
    /// MED, 0 when absent (RFC 4271 §9.1.2.2 c).
    pub(crate) med: u32,
    /// The neighbour AS the MED is compared within.
    pub(crate) neighbor_as: u32,
    /// Learned over eBGP.
    pub(crate) ebgp: bool,
    /// CLUSTER_LIST length.
    pub(crate) cluster_list_len: usize,
    /// ORIGINATOR_ID or the peer's BGP Identifier.
    pub(crate) router_id: u32,
    /// The peer's address (unspecified for our own routes).
    pub(crate) peer_addr: IpAddr,
    /// Received path id.
    pub(crate) path_id: u32,
}

/// The result of selection: candidate indices, multipath set first, best first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selection {
    /// All indices: `order[0]` is the best, `order[..ecmp]` the multipath set.
    pub(crate) order: Vec<usize>,
    /// Size of the multipath set (≥ 1).
    pub(crate) ecmp: usize,
    /// Why `order[0]` won.
    pub(crate) reason: BestPathReason,
}

type Step = fn(&[Candidate], &mut Vec<usize>);

/// Steps that decide preference; paths tied after them form the multipath set.
const PREFERENCE: [(BestPathReason, Step); 6] = [
    (BestPathReason::LocalOrigin, by_local_origin),
    (BestPathReason::LocalPref, by_local_pref),
    (BestPathReason::AsPathLength, by_as_path_len),
    (BestPathReason::Origin, by_origin),
    (BestPathReason::Med, by_med),
    (BestPathReason::EbgpOverIbgp, by_ebgp),
];

/// Tie breakers among equally good paths.
const TIE_BREAK: [(BestPathReason, Step); 4] = [
    (BestPathReason::ClusterListLength, by_cluster_list_len),
    (BestPathReason::RouterId, by_router_id),
    (BestPathReason::PeerAddress, by_peer_addr),
    (BestPathReason::PathId, by_path_id),
];

fn keep_min<K: Ord>(cands: &[Candidate], live: &mut Vec<usize>, key: impl Fn(&Candidate) -> K) {
    let Some(min) = live.iter().map(|&i| key(&cands[i])).min() else {
        return;
    };
    live.retain(|&i| key(&cands[i]) == min);
}

fn by_local_pref(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| Reverse(x.local_pref));
}

fn by_local_origin(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| !x.local);
}

fn by_as_path_len(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| x.as_path_len);
}

fn by_origin(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| x.origin);
}

/// RFC 4271 §9.1.2.2 c: a route is removed when another route from the same
/// neighbour AS has a lower MED; routes of different neighbour ASes do not compete.
fn by_med(c: &[Candidate], live: &mut Vec<usize>) {
    let snapshot = live.clone();
    live.retain(|&i| {
        !snapshot
            .iter()
            .any(|&j| c[j].neighbor_as == c[i].neighbor_as && c[j].med < c[i].med)
    });
}

fn by_ebgp(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| !x.ebgp);
}

fn by_cluster_list_len(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| x.cluster_list_len);
}

fn by_router_id(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| x.router_id);
}

fn by_peer_addr(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| x.peer_addr);
}

fn by_path_id(c: &[Candidate], live: &mut Vec<usize>) {
    keep_min(c, live, |x| x.path_id);
    live.truncate(1);
}

/// Runs the chain over `cands` (never empty in practice; an empty input gives
/// an empty order) and returns the order, the multipath set size (at most
/// `max_paths`) and the reason.
pub(crate) fn select(cands: &[Candidate], max_paths: usize) -> Selection {
    let mut live: Vec<usize> = (0..cands.len()).collect();
    let mut reason = BestPathReason::OnlyPath;
    let mut decided = live.len() <= 1;
    for (why, step) in PREFERENCE.iter() {
        if decided {
            break;
        }
        step(cands, &mut live);
        if live.len() == 1 {
            reason = *why;
            decided = true;
        }
    }
    let mut multipath = live.clone();
    for (why, step) in TIE_BREAK.iter() {
        if decided {
            break;
        }
        step(cands, &mut live);
        if live.len() == 1 {
            reason = *why;
            decided = true;
        }
    }
    let best = live.first().copied();
    let mut order: Vec<usize> = best.into_iter().collect();
    multipath.retain(|i| Some(*i) != best);
    multipath.truncate(max_paths.max(1) - 1);
    order.extend(&multipath);
    let ecmp = order.len().max(1);
    let rest: Vec<usize> = (0..cands.len()).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    Selection {
        order,
        ecmp,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(peer: &str) -> Candidate {
        Candidate {
            local_pref: 100,
            local: false,
            as_path_len: 1,
            origin: 0,
            med: 0,
            neighbor_as: 65001,
            ebgp: false,
            cluster_list_len: 0,
            router_id: u32::from(peer.parse::<std::net::Ipv4Addr>().unwrap()),
            peer_addr: peer.parse().unwrap(),
            path_id: 0,
        }
    }

    fn winner(cands: &[Candidate]) -> (usize, BestPathReason) {
        let s = select(cands, 1);
        (s.order[0], s.reason)
    }

    #[test]
    fn a_single_path_wins_as_the_only_path() {
        assert_eq!(winner(&[cand("10.0.0.1")]), (0, BestPathReason::OnlyPath));
    }

    #[test]
    fn each_step_decides_in_rfc_order() {
        let a = cand("10.0.0.1");
        let mut b = cand("10.0.0.2");
        b.local_pref = 200;
        assert_eq!(winner(&[a.clone(), b]), (1, BestPathReason::LocalPref));
        let mut b = cand("10.0.0.2");
        b.as_path_len = 0;
        assert_eq!(winner(&[a.clone(), b]), (1, BestPathReason::AsPathLength));
        let mut b = cand("10.0.0.2");
        b.origin = 2;
        assert_eq!(winner(&[b, a.clone()]), (1, BestPathReason::Origin));
        let mut b = cand("10.0.0.2");
        b.med = 10;
        assert_eq!(winner(&[b, a.clone()]), (1, BestPathReason::Med));
        let mut b = cand("10.0.0.2");
        b.ebgp = true;
        assert_eq!(winner(&[a.clone(), b]), (1, BestPathReason::EbgpOverIbgp));
        let mut b = cand("10.0.0.2");
        b.cluster_list_len = 1;
        assert_eq!(
            winner(&[b, a.clone()]),
            (1, BestPathReason::ClusterListLength)
        );
        let b = cand("10.0.0.2");
        assert_eq!(winner(&[b, a.clone()]), (1, BestPathReason::RouterId));
        let mut b = cand("10.0.0.2");
        b.router_id = a.router_id;
        assert_eq!(winner(&[b, a]), (1, BestPathReason::PeerAddress));
    }

    #[test]
    fn our_own_route_beats_any_learned_one() {
        let mut ours = cand("0.0.0.0");
        ours.local = true;
        let mut learned = cand("10.0.0.2");
        learned.local_pref = 1000;
        assert_eq!(winner(&[learned, ours]), (1, BestPathReason::LocalOrigin));
    }

    #[test]
    fn local_preference_beats_a_shorter_as_path() {
        let mut a = cand("10.0.0.1");
        a.as_path_len = 5;
        a.local_pref = 300;
        let b = cand("10.0.0.2");
        assert_eq!(winner(&[b, a]), (1, BestPathReason::LocalPref));
    }

    #[test]
    fn med_only_competes_within_one_neighbour_as() {
        // a (AS 1, MED 50) loses to c (AS 1, MED 10); b (AS 2, MED 90) is not
        // compared with them by MED and wins on router id.
        let mut a = cand("10.0.0.3");
        a.med = 50;
        a.neighbor_as = 1;
        let mut b = cand("10.0.0.1");
        b.med = 90;
        b.neighbor_as = 2;
        let mut c = cand("10.0.0.2");
        c.med = 10;
        c.neighbor_as = 1;
        let s = select(&[a, b, c], 8);
        assert_eq!(s.order[0], 1);
        assert_eq!(s.reason, BestPathReason::RouterId);
        assert_eq!(s.ecmp, 2, "b and c are equally good");
    }

    #[test]
    fn equal_paths_form_a_multipath_set_capped_by_max_paths() {
        let cands = [cand("10.0.0.3"), cand("10.0.0.1"), cand("10.0.0.2")];
        let s = select(&cands, 8);
        assert_eq!((s.order.clone(), s.ecmp), (vec![1, 0, 2], 3));
        let s = select(&cands, 2);
        assert_eq!((s.order, s.ecmp), (vec![1, 0, 2], 2));
        let mut worse = cand("10.0.0.0");
        worse.origin = 1;
        let s = select(&[worse, cand("10.0.0.9")], 8);
        assert_eq!(
            (s.order, s.ecmp, s.reason),
            (vec![1, 0], 1, BestPathReason::Origin)
        );
    }

    #[test]
    fn several_paths_from_one_peer_are_told_apart_by_path_id() {
        let mut a = cand("10.0.0.1");
        a.path_id = 7;
        let mut b = cand("10.0.0.1");
        b.path_id = 3;
        assert_eq!(winner(&[a, b]), (1, BestPathReason::PathId));
    }
}
