//! Per-peer BGPFilter rules: tried before Calico's rules in both
//! directions, and replaced at run time without touching other peers.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tortie_bgp_rib::{
    FilterAction, FilterRule, FilterRules, ImportScope, LocalAddrs, MatchOperator, PeerFilters,
    PeerInfo, PoolConfig, PrefixMatch, Rib, RibConfig, RibEvent, UpdateBatch,
};
use tortie_bgp_wire::{AsPath, Nlri, Origin, PathAttributes, Prefix, UpdateMsg};

const ASN: u32 = 64512;
const T0: Duration = Duration::ZERO;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn rib() -> Rib {
    let mut cfg = RibConfig::new(ASN, "10.0.0.1".parse().unwrap());
    cfg.policy.pools.push(PoolConfig {
        cidr: pfx("10.244.0.0/16"),
        disable_bgp_export: false,
    });
    Rib::new(cfg, T0)
}

/// An external eBGP peer (a ToR) in AS 65000.
fn tor(addr: &str) -> PeerInfo {
    let a: Ipv4Addr = addr.parse().unwrap();
    let mut p = PeerInfo::new(IpAddr::V4(a), 65000, a, ASN);
    p.local = LocalAddrs {
        v4: Some("10.0.0.1".parse().unwrap()),
        v6: None,
    };
    p.import = ImportScope::External;
    p
}

fn rule(action: FilterAction, op: MatchOperator, cidr: &str) -> FilterRule {
    FilterRule {
        action,
        prefix: Some(PrefixMatch::new(op, pfx(cidr))),
        learned_only: false,
    }
}

fn export_only(rules: Vec<FilterRule>) -> PeerFilters {
    PeerFilters {
        import: FilterRules::default(),
        export: FilterRules {
            v4: rules,
            v6: vec![],
        },
    }
}

fn import_only(rules: Vec<FilterRule>) -> PeerFilters {
    PeerFilters {
        import: FilterRules {
            v4: rules,
            v6: vec![],
        },
        export: FilterRules::default(),
    }
}

fn from_as(next_hop: &str, prefixes: &[&str]) -> UpdateMsg {
    UpdateMsg {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([65000])),
            next_hop: Some(next_hop.parse().unwrap()),
            ..Default::default()
        },
        nlri: prefixes.iter().map(|p| Nlri::new(pfx(p))).collect(),
        ..Default::default()
    }
}

/// (announced, withdrawn) prefixes of the batches that reach `peer`.
fn seen_by(updates: &[UpdateBatch], peer: &str) -> (Vec<String>, Vec<String>) {
    let mut a = Vec::new();
    let mut w = Vec::new();
    for b in updates.iter().filter(|b| b.peers.contains(&ip(peer))) {
        for ann in &b.announce {
            a.extend(ann.nlri.iter().map(|n| n.prefix.to_string()));
        }
        w.extend(b.withdraw.iter().map(|n| n.prefix.to_string()));
    }
    a.sort();
    w.sort();
    (a, w)
}

fn originate_blocks(r: &mut Rib) {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        ..Default::default()
    };
    r.originate(&[pfx("10.244.1.0/26"), pfx("10.244.1.64/26")], attrs);
}

#[test]
fn an_export_reject_keeps_one_pool_prefix_from_that_peer_only() {
    let mut r = rib();
    originate_blocks(&mut r);
    let mut filtered = tor("10.0.0.2");
    filtered.filters = export_only(vec![rule(
        FilterAction::Reject,
        MatchOperator::Equal,
        "10.244.1.64/26",
    )]);
    let out = r.peer_up(filtered, T0).unwrap();
    assert_eq!(seen_by(&out.updates, "10.0.0.2").0, ["10.244.1.0/26"]);
    let out = r.peer_up(tor("10.0.0.3"), T0).unwrap();
    assert_eq!(
        seen_by(&out.updates, "10.0.0.3").0,
        ["10.244.1.0/26", "10.244.1.64/26"]
    );
}

#[test]
fn an_export_accept_lets_out_what_calicos_rules_would_not() {
    // confd calls the BGPFilter functions before calico_export_to_bgp_peers:
    // `source: RemotePeers` + Accept re-advertises a route learned from a
    // peer outside every pool.
    let mut r = rib();
    r.peer_up(tor("10.0.0.2"), T0).unwrap();
    let mut out_peer = tor("10.0.0.3");
    out_peer.filters = export_only(vec![FilterRule {
        action: FilterAction::Accept,
        prefix: Some(PrefixMatch::new(MatchOperator::In, pfx("77.0.0.0/16"))),
        learned_only: true,
    }]);
    r.peer_up(out_peer, T0).unwrap();
    r.peer_up(tor("10.0.0.4"), T0).unwrap();
    let out = r
        .update(
            ip("10.0.0.2"),
            &from_as("10.0.0.2", &["77.0.1.0/24", "88.0.0.0/24"]),
            T0,
        )
        .unwrap();
    assert_eq!(seen_by(&out.updates, "10.0.0.3").0, ["77.0.1.0/24"]);
    assert!(seen_by(&out.updates, "10.0.0.4").0.is_empty());
}

#[test]
fn an_import_reject_drops_the_prefix_and_keeps_the_others() {
    let mut r = rib();
    let mut p = tor("10.0.0.2");
    p.filters = import_only(vec![rule(
        FilterAction::Reject,
        MatchOperator::In,
        "192.0.2.0/24",
    )]);
    r.peer_up(p, T0).unwrap();
    let out = r
        .update(
            ip("10.0.0.2"),
            &from_as("10.0.0.2", &["192.0.2.0/25", "198.51.100.0/24"]),
            T0,
        )
        .unwrap();
    let fib: Vec<String> = out.fib.iter().map(|f| f.prefix.to_string()).collect();
    assert_eq!(fib, ["198.51.100.0/24"]);
    assert_eq!(r.paths_from(ip("10.0.0.2")), 1);
}

#[test]
fn changing_the_export_rules_sends_the_difference_to_that_peer_alone() {
    let mut r = rib();
    originate_blocks(&mut r);
    r.peer_up(tor("10.0.0.2"), T0).unwrap();
    r.peer_up(tor("10.0.0.3"), T0).unwrap();
    let reject = export_only(vec![rule(
        FilterAction::Reject,
        MatchOperator::Equal,
        "10.244.1.64/26",
    )]);
    let out = r.set_peer_filters(ip("10.0.0.2"), reject).unwrap();
    assert_eq!(
        seen_by(&out.updates, "10.0.0.2"),
        (vec![], vec!["10.244.1.64/26".into()])
    );
    assert_eq!(seen_by(&out.updates, "10.0.0.3"), (vec![], vec![]));
    assert!(out.events.is_empty(), "{:?}", out.events);
    // Filter removed: announced again.
    let out = r
        .set_peer_filters(ip("10.0.0.2"), PeerFilters::default())
        .unwrap();
    assert_eq!(
        seen_by(&out.updates, "10.0.0.2"),
        (vec!["10.244.1.64/26".into()], vec![])
    );
    // What a ROUTE-REFRESH from it would get follows the rules too.
    let sent = r
        .adj_rib_out(ip("10.0.0.2"), tortie_bgp_wire::Family::IPV4_UNICAST)
        .unwrap();
    assert_eq!(sent.len(), 2);
}

#[test]
fn changing_the_import_rules_drops_refused_paths_and_asks_for_a_refresh() {
    let mut r = rib();
    r.peer_up(tor("10.0.0.2"), T0).unwrap();
    r.update(
        ip("10.0.0.2"),
        &from_as("10.0.0.2", &["192.0.2.0/24", "198.51.100.0/24"]),
        T0,
    )
    .unwrap();
    let reject = import_only(vec![rule(
        FilterAction::Reject,
        MatchOperator::Equal,
        "192.0.2.0/24",
    )]);
    let out = r.set_peer_filters(ip("10.0.0.2"), reject).unwrap();
    let gone: Vec<String> = out
        .fib
        .iter()
        .filter(|f| f.route.is_none())
        .map(|f| f.prefix.to_string())
        .collect();
    assert_eq!(gone, ["192.0.2.0/24"]);
    assert_eq!(r.paths_from(ip("10.0.0.2")), 1);
    assert_eq!(
        out.events,
        vec![RibEvent::RouteRefreshNeeded {
            peer: ip("10.0.0.2")
        }]
    );
    // Lifting the filter takes nothing back by itself: the refresh brings
    // the refused route again, and it is accepted.
    let out = r
        .set_peer_filters(ip("10.0.0.2"), PeerFilters::default())
        .unwrap();
    assert!(out.fib.is_empty());
    assert_eq!(
        out.events,
        vec![RibEvent::RouteRefreshNeeded {
            peer: ip("10.0.0.2")
        }]
    );
    let out = r
        .update(
            ip("10.0.0.2"),
            &from_as("10.0.0.2", &["192.0.2.0/24", "198.51.100.0/24"]),
            T0,
        )
        .unwrap();
    assert_eq!(out.fib.len(), 1);
    assert_eq!(r.paths_from(ip("10.0.0.2")), 2);
}

#[test]
fn the_same_filters_again_change_nothing_and_unknown_peers_are_refused() {
    let mut r = rib();
    let mut p = tor("10.0.0.2");
    p.filters = import_only(vec![rule(
        FilterAction::Reject,
        MatchOperator::In,
        "0.0.0.0/0",
    )]);
    let same = p.filters.clone();
    r.peer_up(p, T0).unwrap();
    let out = r.set_peer_filters(ip("10.0.0.2"), same).unwrap();
    assert!(out.updates.is_empty() && out.events.is_empty() && out.fib.is_empty());
    assert!(r
        .set_peer_filters(ip("10.0.0.9"), PeerFilters::default())
        .is_err());
}
