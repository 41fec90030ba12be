//! Behaviours of the public API that the golden scenarios do not show in
//! detail: wire compatibility of the output, RFC 7606 handling, IPv6 next
//! hops, restart completion by End-of-RIB, and the `tortiectl bgp rib` JSON.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tortie_bgp_rib::{
    BestPathReason, DownKind, LocalAddrs, PeerInfo, PeerRole, PoolConfig, RestartConfig, Rib,
    RibConfig, RibEvent,
};
use tortie_bgp_wire::{
    check, encode_announcements, parse, AsPath, DecodeContext, ErrorAction, Family,
    GracefulRestartCap, GracefulRestartFamily, Message, Nlri, Origin, PathAttributes, Prefix,
    UpdateError, UpdateMsg,
};

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
    cfg.policy.pools.push(PoolConfig {
        cidr: pfx("fd00:244::/48"),
        disable_bgp_export: false,
    });
    Rib::new(cfg, T0)
}

fn mesh_peer(addr: &str) -> PeerInfo {
    let a: Ipv4Addr = addr.parse().unwrap();
    let mut p = PeerInfo::new(IpAddr::V4(a), ASN, a, ASN);
    p.local = LocalAddrs {
        v4: Some("10.0.0.1".parse().unwrap()),
        v6: Some("fd00::1".parse().unwrap()),
    };
    p
}

fn announce(next_hop: &str, local_pref: u32, prefixes: &[&str]) -> UpdateMsg {
    UpdateMsg {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(next_hop.parse().unwrap()),
            local_pref: Some(local_pref),
            ..Default::default()
        },
        nlri: prefixes.iter().map(|p| Nlri::new(pfx(p))).collect(),
        ..Default::default()
    }
}

#[test]
fn announcements_encode_with_the_wire_codec_and_decode_back() {
    let mut cfg = rib().config().clone();
    cfg.cluster_id = Some("1.1.1.1".parse().unwrap());
    let mut r = Rib::new(cfg, T0);
    r.peer_up(mesh_peer_client("10.0.0.2"), T0).unwrap();
    r.peer_up(mesh_peer_client("10.0.0.3"), T0).unwrap();
    let out = r
        .update(
            ip("10.0.0.2"),
            &announce("10.0.0.2", 100, &["10.244.2.0/26", "10.244.2.64/26"]),
            T0,
        )
        .unwrap();
    // Split horizon: the sender's own route is not reflected back to it.
    assert_eq!(out.updates.len(), 1);
    let batch = &out.updates[0];
    assert_eq!(batch.peers, vec![ip("10.0.0.3")]);
    let ctx = DecodeContext::four_octet();
    let mut wire = Vec::new();
    for a in &batch.announce {
        encode_announcements(&a.attrs, &a.nlri, &ctx, &mut wire).unwrap();
    }
    let len = check(&wire, &ctx).unwrap().unwrap();
    let Message::Update(u) = parse(&wire[..len], &ctx).unwrap() else {
        panic!("not an UPDATE");
    };
    assert_eq!(u.nlri.len(), 2);
    assert_eq!(
        u.attributes.originator_id,
        Some("10.0.0.2".parse().unwrap())
    );
    assert_eq!(
        u.attributes.cluster_list,
        vec!["1.1.1.1".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(u.attributes.next_hop, Some("10.0.0.2".parse().unwrap()));
}

fn mesh_peer_client(addr: &str) -> PeerInfo {
    let mut p = mesh_peer(addr);
    p.role = PeerRole::IbgpClient;
    p
}

#[test]
fn treat_as_withdraw_removes_the_route_the_peer_had_sent() {
    let mut r = rib();
    r.peer_up(mesh_peer("10.0.0.2"), T0).unwrap();
    r.update(
        ip("10.0.0.2"),
        &announce("10.0.0.2", 100, &["10.244.2.0/26"]),
        T0,
    )
    .unwrap();
    let mut bad = announce("10.0.0.2", 100, &["10.244.2.0/26"]);
    bad.errors.push(UpdateError {
        action: ErrorAction::TreatAsWithdraw,
        type_code: 2,
        family: None,
        error: tortie_bgp_wire::DecodeError::MalformedAsPath,
    });
    let out = r.update(ip("10.0.0.2"), &bad, T0).unwrap();
    assert_eq!(out.fib.len(), 1);
    assert_eq!(out.fib[0].route, None);
    assert_eq!(r.prefix_count(), 0);
}

#[test]
fn higher_local_pref_wins_and_the_reason_is_shown_in_the_rib_json() {
    let mut r = rib();
    r.peer_up(mesh_peer("10.0.0.2"), T0).unwrap();
    r.peer_up(mesh_peer("10.0.0.3"), T0).unwrap();
    r.update(
        ip("10.0.0.2"),
        &announce("10.0.0.2", 100, &["10.244.9.0/26"]),
        T0,
    )
    .unwrap();
    let out = r
        .update(
            ip("10.0.0.3"),
            &announce("10.0.0.3", 200, &["10.244.9.0/26"]),
            T0,
        )
        .unwrap();
    assert_eq!(
        out.fib[0].route.as_ref().unwrap().next_hops,
        vec![ip("10.0.0.3")]
    );
    let json = serde_json::to_value(r.query(Some(Family::IPV4_UNICAST))).unwrap();
    let best = &json[0]["paths"][0];
    assert_eq!(json[0]["prefix"], "10.244.9.0/26");
    assert_eq!(best["peer"], "10.0.0.3");
    assert_eq!(best["next_hop"], "10.0.0.3");
    assert_eq!(best["as_path"], serde_json::json!([]));
    assert_eq!(best["local_pref"], 200);
    assert_eq!(best["med"], serde_json::Value::Null);
    assert_eq!(best["communities"], serde_json::json!([]));
    assert_eq!(best["best"], true);
    assert_eq!(best["reason"], "local_pref");
    assert_eq!(json[0]["paths"][1]["best"], false);
    assert_eq!(
        r.query(None)[0].paths[0].reason,
        Some(BestPathReason::LocalPref)
    );
}

#[test]
fn ipv6_routes_are_exported_with_our_ipv6_next_hop_in_mp_reach() {
    let mut r = rib();
    let mut peer = mesh_peer("10.0.0.2");
    peer.families.push(Family::IPV6_UNICAST);
    r.peer_up(peer, T0).unwrap();
    let out = r.originate(
        &[pfx("fd00:244:0:1::/122")],
        PathAttributes {
            origin: Some(Origin::Igp),
            ..Default::default()
        },
    );
    assert_eq!(out.updates.len(), 1);
    let b = &out.updates[0];
    assert_eq!(b.family, Family::IPV6_UNICAST);
    let reach = b.announce[0].attrs.mp_reach.as_ref().unwrap();
    assert_eq!(
        reach.next_hop,
        tortie_bgp_wire::NextHop::V6 {
            global: "fd00::1".parse().unwrap(),
            link_local: None
        }
    );
    assert_eq!(b.announce[0].attrs.next_hop, None);
}

fn gr_cap(restart_time: u16, forwarding_preserved: bool) -> GracefulRestartCap {
    GracefulRestartCap {
        restart_state: false,
        notification: false,
        restart_time,
        families: vec![GracefulRestartFamily {
            family: Family::IPV4_UNICAST,
            forwarding_preserved,
        }],
    }
}

#[test]
fn stale_routes_go_at_once_when_the_returning_peer_did_not_preserve_forwarding() {
    let mut r = rib();
    let mut p = mesh_peer("10.0.0.2");
    p.graceful_restart = Some(gr_cap(120, true));
    r.peer_up(p.clone(), T0).unwrap();
    r.update(
        ip("10.0.0.2"),
        &announce("10.0.0.2", 100, &["10.244.2.0/26"]),
        T0,
    )
    .unwrap();
    let out = r.peer_down(ip("10.0.0.2"), DownKind::Graceful, T0).unwrap();
    assert!(out.fib[0].route.as_ref().unwrap().stale);
    assert_eq!(out.next_deadline, Some(Duration::from_secs(120)));
    // RFC 4724 §4.2: F bit clear on the new session → delete stale routes now.
    p.graceful_restart = Some(gr_cap(120, false));
    let out = r.peer_up(p, Duration::from_secs(5)).unwrap();
    assert_eq!(out.fib.len(), 1);
    assert_eq!(out.fib[0].route, None);
    assert_eq!(out.next_deadline, None);
}

/// A RIB in its own restart (RFC 4724 §4.1) expecting peer 10.0.0.2.
fn restarting_rib(selection_deferral_s: u64, peer_wait_s: u64) -> Rib {
    let mut cfg = rib().config().clone();
    cfg.restart = Some(RestartConfig {
        expected_peers: vec![ip("10.0.0.2")],
        selection_deferral: Duration::from_secs(selection_deferral_s),
        peer_wait: Duration::from_secs(peer_wait_s),
    });
    Rib::new(cfg, T0)
}

#[test]
fn own_restart_ends_as_soon_as_every_expected_peer_sent_end_of_rib() {
    let mut r = restarting_rib(120, 60);
    assert!(r.is_restarting());
    let mut p = mesh_peer("10.0.0.2");
    p.graceful_restart = Some(gr_cap(120, true));
    r.peer_up(p, T0).unwrap();
    let out = r
        .update(
            ip("10.0.0.2"),
            &announce("10.0.0.2", 100, &["10.244.2.0/26"]),
            T0,
        )
        .unwrap();
    assert!(out.fib.is_empty(), "selection is deferred");
    assert_eq!(out.next_deadline, Some(Duration::from_secs(60)));
    let out = r
        .update(
            ip("10.0.0.2"),
            &UpdateMsg::end_of_rib(Family::IPV4_UNICAST),
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(out.events, vec![RibEvent::RestartComplete]);
    assert_eq!(out.fib.len(), 1);
    assert!(out
        .updates
        .iter()
        .any(|b| b.end_of_rib && b.peers == vec![ip("10.0.0.2")]));
    assert!(!r.is_restarting());
}

#[test]
fn own_restart_does_not_wait_for_a_peer_without_graceful_restart() {
    let mut r = restarting_rib(120, 60);
    // RFC 4724 §4.1: no capability, so no End-of-RIB to wait for.
    let out = r.peer_up(mesh_peer("10.0.0.2"), T0).unwrap();
    assert_eq!(out.events, vec![RibEvent::RestartComplete]);
}

#[test]
fn own_restart_never_waits_longer_than_the_selection_deferral_timer() {
    let mut r = restarting_rib(30, 300);
    let mut p = mesh_peer("10.0.0.2");
    p.graceful_restart = Some(gr_cap(120, true));
    r.peer_up(p, T0).unwrap();
    assert!(r.tick(Duration::from_secs(29)).events.is_empty());
    assert_eq!(
        r.tick(Duration::from_secs(30)).events,
        vec![RibEvent::RestartComplete]
    );
}

#[test]
fn updates_from_unknown_or_down_peers_are_refused() {
    let mut r = rib();
    let msg = announce("10.0.0.9", 100, &["10.244.2.0/26"]);
    assert!(r.update(ip("10.0.0.9"), &msg, T0).is_err());
    let mut p = mesh_peer("10.0.0.9");
    p.graceful_restart = Some(gr_cap(60, true));
    r.peer_up(p, T0).unwrap();
    r.peer_down(ip("10.0.0.9"), DownKind::Graceful, T0).unwrap();
    let e = r.update(ip("10.0.0.9"), &msg, T0).unwrap_err();
    assert!(e.to_string().contains("not established"), "{e}");
}

#[test]
fn the_adj_rib_out_query_shows_what_a_peer_was_sent() {
    let mut r = rib();
    r.peer_up(mesh_peer("10.0.0.2"), T0).unwrap();
    r.originate(
        &[pfx("10.244.1.0/26"), pfx("192.0.2.0/24")],
        PathAttributes {
            origin: Some(Origin::Igp),
            ..Default::default()
        },
    );
    let sent = r.adj_rib_out(ip("10.0.0.2"), Family::IPV4_UNICAST).unwrap();
    assert_eq!(sent.len(), 1, "192.0.2.0/24 is outside the pools");
    assert_eq!(sent[0].0, Nlri::new(pfx("10.244.1.0/26")));
    assert_eq!(r.paths_from(ip("10.0.0.2")), 0);
}

#[test]
fn a_returning_peer_is_not_sent_its_own_stale_routes_but_others_are() {
    let mut r = rib();
    let tor = |addr: &str| {
        let a: Ipv4Addr = addr.parse().unwrap();
        let mut p = PeerInfo::new(IpAddr::V4(a), 65000, a, ASN);
        p.import = tortie_bgp_rib::ImportScope::External;
        p.local.v4 = Some("192.168.0.100".parse().unwrap());
        p.graceful_restart = Some(gr_cap(120, true));
        p
    };
    r.peer_up(tor("192.168.0.1"), T0).unwrap();
    let mut msg = announce("192.168.0.1", 100, &["10.244.7.0/26"]);
    msg.attributes.as_path = Some(AsPath::from_sequence([65000]));
    r.update(ip("192.168.0.1"), &msg, T0).unwrap();
    r.peer_down(ip("192.168.0.1"), DownKind::Graceful, T0)
        .unwrap();
    let back = r
        .peer_up(tor("192.168.0.1"), Duration::from_secs(1))
        .unwrap();
    let other = r
        .peer_up(tor("192.168.0.2"), Duration::from_secs(1))
        .unwrap();
    let sent = |out: &tortie_bgp_rib::Output| out.updates.iter().flat_map(|b| &b.announce).count();
    assert_eq!(sent(&back), 0, "split horizon");
    assert_eq!(sent(&other), 1);
    assert!(back.updates[0].end_of_rib && other.updates[0].end_of_rib);
}

#[test]
fn a_newly_lent_address_asks_cluster_nodes_for_a_refresh_and_is_then_accepted() {
    let mut r = rib();
    let mut policy = tortie_bgp_rib::PolicyConfig {
        pools: vec![PoolConfig {
            cidr: pfx("10.244.0.0/16"),
            disable_bgp_export: false,
        }],
        local_blocks: vec![pfx("10.244.1.0/26")],
        ..Default::default()
    };
    r.set_policy(policy.clone());
    r.peer_up(mesh_peer("10.0.0.2"), T0).unwrap();
    // The holder's /32 arrives before our snapshot says it is lent: refused.
    let borrowed = announce("10.0.0.2", 100, &["10.244.1.9/32"]);
    r.update(ip("10.0.0.2"), &borrowed, T0).unwrap();
    assert_eq!(r.prefix_count(), 0);
    // Same rules again: nothing to ask for.
    let out = r.set_policy(policy.clone());
    assert!(!out
        .events
        .iter()
        .any(|e| matches!(e, RibEvent::RouteRefreshNeeded { .. })));
    policy.lent.push(pfx("10.244.1.9/32"));
    let out = r.set_policy(policy);
    assert!(out.events.contains(&RibEvent::RouteRefreshNeeded {
        peer: ip("10.0.0.2")
    }));
    // The refresh brings it again, and now it is kept.
    r.update(ip("10.0.0.2"), &borrowed, T0).unwrap();
    assert_eq!(r.prefix_count(), 1);
}
