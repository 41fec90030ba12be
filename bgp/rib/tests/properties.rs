//! Property tests: whatever sequence of announcements, withdrawals, session
//! resets, graceful restarts (RFC 4724), End-of-RIB markers, timer ticks
//! and policy changes arrives, (1) applying every emitted UPDATE batch to a
//! model of each peer gives exactly what `adj_rib_out` says the peer holds,
//! and (2) applying every FIB update gives the multipath next hops the
//! Loc-RIB shows, and (3) the running sum of every batch's `adj_out_delta`
//! is the size of that Adj-RIB-Out. This checks the incremental export diff (update groups,
//! split horizon, ADD-PATH ids, merged batches) against the full computation.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use proptest::prelude::*;
use tortie_bgp_rib::{
    DownKind, ImportScope, LocalAddrs, Output, PeerInfo, PeerRole, PoolConfig, Rib, RibConfig,
};
use tortie_bgp_wire::{
    AsPath, Family, GracefulRestartCap, GracefulRestartFamily, Nlri, Origin, PathAttributes,
    Prefix, UpdateMsg,
};

const ASN: u32 = 64512;
const T0: Duration = Duration::ZERO;

fn peer(i: usize) -> PeerInfo {
    let a = Ipv4Addr::new(10, 0, 0, 10 + i as u8);
    let (asn, role) = match i {
        0 | 1 => (ASN, PeerRole::IbgpClient),
        2 => (ASN, PeerRole::IbgpNonClient),
        _ => (65001, PeerRole::Ebgp),
    };
    let mut p = PeerInfo::new(IpAddr::V4(a), asn, a, ASN);
    p.role = role;
    p.local = LocalAddrs {
        v4: Some("10.0.0.1".parse().unwrap()),
        v6: None,
    };
    p.import = ImportScope::External;
    if i == 1 {
        p.add_path_tx = vec![Family::IPV4_UNICAST];
    }
    p.graceful_restart = Some(GracefulRestartCap {
        restart_state: false,
        notification: false,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            family: Family::IPV4_UNICAST,
            forwarding_preserved: true,
        }],
    });
    p
}

fn block(i: u8) -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 244, i, 0)), 26).unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Announce {
        peer: usize,
        prefix: u8,
        local_pref: u32,
        as_len: usize,
        med: u32,
    },
    Withdraw {
        peer: usize,
        prefix: u8,
    },
    Bounce {
        peer: usize,
    },
    GracefulDown {
        peer: usize,
    },
    EndOfRib {
        peer: usize,
    },
    Wait {
        secs: u64,
    },
    /// Flips `disableBGPExport` of the pool.
    TogglePolicy,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..6u8, prop_oneof![Just(100u32), Just(200)], 0..3usize, 0..2u32).prop_map(
            |(peer, prefix, local_pref, as_len, med)| Op::Announce { peer, prefix, local_pref, as_len, med }
        ),
        2 => (0..4usize, 0..6u8).prop_map(|(peer, prefix)| Op::Withdraw { peer, prefix }),
        1 => (0..4usize).prop_map(|peer| Op::Bounce { peer }),
        1 => (0..4usize).prop_map(|peer| Op::GracefulDown { peer }),
        1 => (0..4usize).prop_map(|peer| Op::EndOfRib { peer }),
        1 => (1..200u64).prop_map(|secs| Op::Wait { secs }),
        1 => Just(Op::TogglePolicy),
    ]
}

fn announce(peer: usize, prefix: u8, local_pref: u32, as_len: usize, med: u32) -> UpdateMsg {
    let first = if peer == 3 { vec![65001] } else { vec![] };
    let asns = first
        .into_iter()
        .chain((0..as_len).map(|k| 65100 + k as u32));
    UpdateMsg {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(asns)),
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 10 + peer as u8)),
            local_pref: Some(local_pref),
            med: Some(med),
            ..Default::default()
        },
        nlri: vec![Nlri::new(block(prefix))],
        ..Default::default()
    }
}

/// Each peer's Adj-RIB-Out as its UPDATEs built it, and the running sum
/// of `adj_out_delta` (the speaker's `prefixes_sent`).
type AdjOut = HashMap<IpAddr, (BTreeMap<Nlri, PathAttributes>, i64)>;

fn apply(out: &Output, adj: &mut AdjOut, fib: &mut BTreeMap<Prefix, Vec<IpAddr>>) {
    for b in &out.updates {
        for p in &b.peers {
            let (table, sent) = adj.entry(*p).or_default();
            *sent += b.adj_out_delta;
            for w in &b.withdraw {
                table.remove(w);
            }
            for a in &b.announce {
                for n in &a.nlri {
                    table.insert(*n, (*a.attrs).clone());
                }
            }
        }
    }
    for f in &out.fib {
        match &f.route {
            Some(r) => fib.insert(f.prefix, r.next_hops.clone()),
            None => fib.remove(&f.prefix),
        };
    }
}

fn check(
    rib: &Rib,
    up: &[bool; 4],
    adj: &AdjOut,
    fib: &BTreeMap<Prefix, Vec<IpAddr>>,
) -> Result<(), TestCaseError> {
    for (i, is_up) in up.iter().enumerate() {
        let addr = peer(i).addr;
        if !is_up {
            continue;
        }
        let want: BTreeMap<Nlri, PathAttributes> = rib
            .adj_rib_out(addr, Family::IPV4_UNICAST)
            .unwrap()
            .into_iter()
            .map(|(n, a)| (n, (*a).clone()))
            .collect();
        let (got, sent) = adj.get(&addr).cloned().unwrap_or_default();
        prop_assert_eq!(sent, want.len() as i64, "running count of {}", addr);
        prop_assert_eq!(got, want, "Adj-RIB-Out of {}", addr);
    }
    let want: BTreeMap<Prefix, Vec<IpAddr>> = rib
        .query(None)
        .into_iter()
        .map(|e| {
            let hops = e
                .paths
                .iter()
                .filter(|p| p.multipath)
                .filter_map(|p| p.next_hop);
            let mut v: Vec<IpAddr> = Vec::new();
            for h in hops {
                if !v.contains(&h) {
                    v.push(h);
                }
            }
            (e.prefix, v)
        })
        .collect();
    prop_assert_eq!(fib, &want, "FIB");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn emitted_updates_and_fib_changes_always_match_the_full_computation(ops in prop::collection::vec(op(), 1..40)) {
        let mut cfg = RibConfig::new(ASN, "10.0.0.1".parse().unwrap());
        cfg.cluster_id = Some("1.1.1.1".parse().unwrap());
        cfg.policy.pools.push(PoolConfig { cidr: "10.244.0.0/16".parse().unwrap(), disable_bgp_export: false });
        let mut rib = Rib::new(cfg, T0);
        let (mut adj, mut fib) = (AdjOut::new(), BTreeMap::new());
        for i in 0..4 {
            let out = rib.peer_up(peer(i), T0).unwrap();
            apply(&out, &mut adj, &mut fib);
        }
        let mut up = [true; 4];
        let mut now = T0;
        for op in ops {
            let out = match op {
                Op::Announce { peer: p, .. } | Op::Withdraw { peer: p, .. } | Op::EndOfRib { peer: p }
                    if !up[p] => continue,
                Op::Announce { peer: p, prefix, local_pref, as_len, med } => {
                    rib.update(peer(p).addr, &announce(p, prefix, local_pref, as_len, med), now).unwrap()
                }
                Op::Withdraw { peer: p, prefix: x } => {
                    let msg = UpdateMsg { withdrawn: vec![Nlri::new(block(x))], ..Default::default() };
                    rib.update(peer(p).addr, &msg, now).unwrap()
                }
                Op::EndOfRib { peer: p } => {
                    rib.update(peer(p).addr, &UpdateMsg::end_of_rib(Family::IPV4_UNICAST), now).unwrap()
                }
                Op::Bounce { peer: p } => {
                    let addr = peer(p).addr;
                    if up[p] {
                        let down = rib.peer_down(addr, DownKind::Hard, now).unwrap();
                        apply(&down, &mut adj, &mut fib);
                    }
                    adj.remove(&addr);
                    up[p] = true;
                    rib.peer_up(peer(p), now).unwrap()
                }
                Op::GracefulDown { peer: p } if up[p] => {
                    up[p] = false;
                    adj.remove(&peer(p).addr);
                    rib.peer_down(peer(p).addr, DownKind::Graceful, now).unwrap()
                }
                Op::GracefulDown { .. } => continue,
                Op::TogglePolicy => {
                    let mut policy = rib.config().policy.clone();
                    policy.pools[0].disable_bgp_export = !policy.pools[0].disable_bgp_export;
                    rib.set_policy(policy)
                }
                Op::Wait { secs } => {
                    now += Duration::from_secs(secs);
                    rib.tick(now)
                }
            };
            // A down peer holds no session: nothing is delivered to it.
            for (i, is_up) in up.iter().enumerate() {
                if !is_up {
                    adj.remove(&peer(i).addr);
                }
            }
            apply(&out, &mut adj, &mut fib);
            check(&rib, &up, &adj, &fib)?;
        }
    }
}
