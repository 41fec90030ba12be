//! Two speakers on loopback (127.0.0.1 and 127.0.0.2), no root: Calico's
//! mesh rule, and RFC 4271 §6.8 collision resolution when both connect.

mod support;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{first_peer, init_log, poll_async, poll_until};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    transport, AfiName, Establishment, PeerConfig, PeerType, Speaker, SpeakerConfig, SpeakerEvent,
    SpeakerHandle, TimersConfig,
};
use tortie_bgp_wire::{PathAttributes, Prefix};

const WAIT: Duration = Duration::from_secs(15);

struct Node {
    handle: SpeakerHandle,
    learned: Arc<Mutex<HashSet<String>>>,
    addr: SocketAddr,
}

fn bind(ip: &str) -> tokio::net::TcpListener {
    transport::listen(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap()
}

fn node(ip: &str, router_id: &str) -> Node {
    start(bind(ip), router_id, vec![])
}

/// Starts a speaker on `l` with `peers` configured from the start.
fn start(l: tokio::net::TcpListener, router_id: &str, peers: Vec<PeerConfig>) -> Node {
    let addr = l.local_addr().unwrap();
    let cfg = SpeakerConfig {
        asn: 64512,
        router_id: router_id.parse().unwrap(),
        listen: None,
        peers,
    };
    let (handle, mut rx) = Speaker::start_with_listener(cfg, Some(l));
    let learned: Arc<Mutex<HashSet<String>>> = Arc::default();
    let l2 = learned.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let SpeakerEvent::Routes { announced, .. } = ev {
                let mut s = l2.lock().unwrap();
                s.extend(announced.iter().map(|(n, _)| n.prefix.to_string()));
            }
        }
    });
    Node {
        handle,
        learned,
        addr,
    }
}

fn peer_of(me: &Node, other: &Node, how: Establishment) -> PeerConfig {
    peer_between(me.addr, other.addr, how)
}

fn peer_between(me: SocketAddr, other: SocketAddr, how: Establishment) -> PeerConfig {
    let mut p = PeerConfig::new(other.ip(), 64512);
    p.port = other.port();
    p.local_address = Some(me.ip());
    p.peer_type = PeerType::Mesh;
    p.establishment = how;
    p.families = vec![AfiName::Ipv4];
    p.timers = TimersConfig {
        connect_retry: 1,
        idle_hold_ms: 100,
        idle_hold_max_ms: 400,
        ..TimersConfig::default()
    };
    p
}

async fn pair(how: Establishment) -> (Node, Node) {
    init_log();
    // Both listeners are bound and both peers configured from the start, so
    // two active sides really do connect to each other at the same time.
    let (la, lb) = (bind("127.0.0.1"), bind("127.0.0.2"));
    let (aa, ba) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    let a = start(la, "10.0.0.1", vec![peer_between(aa, ba, how)]);
    let b = start(lb, "10.0.0.2", vec![peer_between(ba, aa, how)]);
    let block: Prefix = "10.244.1.0/26".parse().unwrap();
    a.handle
        .originate(vec![block], PathAttributes::default())
        .await
        .unwrap();
    for n in [&a, &b] {
        poll_async("Established", WAIT, || async {
            first_peer(&n.handle).await.state == State::Established
        })
        .await;
    }
    poll_until("b learned a's block", WAIT, || {
        b.learned.lock().unwrap().contains("10.244.1.0/26")
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn mesh_rule_makes_the_lower_address_passive_and_the_session_comes_up() {
    let (a, b) = pair(Establishment::Mesh).await;
    // "127.0.0.2" > "127.0.0.1": a waits, b connects: one connection, no collision.
    for n in [&a, &b] {
        let st = first_peer(&n.handle).await;
        assert_eq!((st.sent.open, st.received.open), (1, 1), "{st:?}");
        assert_eq!(st.sent.notification + st.received.notification, 0, "{st:?}");
        assert_eq!(st.peer_type, PeerType::Mesh);
    }
    assert_eq!(first_peer(&b.handle).await.prefixes_received, 1);
    assert_eq!(first_peer(&a.handle).await.prefixes_sent, 1);
}

#[tokio::test]
async fn two_active_sides_resolve_their_collision_into_one_session() {
    let (a, b) = pair(Establishment::Active).await;
    let (sa, sb) = (first_peer(&a.handle).await, first_peer(&b.handle).await);
    assert_eq!(
        (sa.state, sb.state),
        (State::Established, State::Established)
    );
    assert_eq!(sa.flaps + sb.flaps, 0, "{sa:?} {sb:?}");
    match (sa.sent.open, sb.sent.open) {
        // Both OPENs went out on both connections: 10.0.0.1 < 10.0.0.2, so
        // both keep the connection 10.0.0.2 opened (RFC 4271 §6.8) and
        // close the other with Cease/7, each side on its own or one after
        // the other's NOTIFICATION.
        (2, 2) => {
            let dumped = sa.sent.notification + sb.sent.notification;
            assert!((1..=2).contains(&dumped), "{sa:?} {sb:?}");
            assert_eq!(
                sa.received.notification + sb.received.notification + dumped,
                2,
                "every Cease/7 is either read or crossed by the other's: {sa:?} {sb:?}"
            );
        }
        // One side got the peer's OPEN before its own connect was seen to
        // complete and abandoned that attempt (as BIRD does) before any
        // OPEN of its own went out on it: no collision, the other side's
        // Cease/7 on that connection (if the socket was still open) is the
        // only NOTIFICATION, and nobody reads one.
        (1, 2) | (2, 1) | (1, 1) => {
            let extra = sa.sent.open + sb.sent.open - 2;
            assert!(
                sa.sent.notification + sb.sent.notification <= extra,
                "{sa:?} {sb:?}"
            );
            assert_eq!(
                sa.received.notification + sb.received.notification,
                0,
                "{sa:?} {sb:?}"
            );
        }
        _ => panic!("one OPEN per connection at most: {sa:?} {sb:?}"),
    }
}

#[tokio::test]
async fn updating_one_peer_leaves_the_other_alone() {
    let a = node("127.0.0.1", "10.0.0.1");
    let b = node("127.0.0.2", "10.0.0.2");
    let c = node("127.0.0.3", "10.0.0.3");
    for (x, y) in [(&a, &b), (&b, &a), (&a, &c), (&c, &a)] {
        x.handle
            .add_peer(peer_of(x, y, Establishment::Mesh))
            .await
            .unwrap();
    }
    let all_up = || async {
        let st = a.handle.peer_status().await.unwrap();
        st.len() == 2 && st.iter().all(|p| p.state == State::Established)
    };
    poll_async("a's two sessions Established", WAIT, all_up).await;
    let mut changed = peer_of(&a, &c, Establishment::Mesh);
    changed.timers.hold_time = 30;
    a.handle.update_peer(changed).await.unwrap();
    poll_async("a's sessions Established again", WAIT, all_up).await;
    let b_ip: IpAddr = b.addr.ip();
    let st = a.handle.peer_status().await.unwrap();
    let to_b = st.iter().find(|p| p.address == b_ip).unwrap();
    assert_eq!(to_b.flaps, 0, "the session to b was touched: {to_b:?}");
    assert_eq!(first_peer(&b.handle).await.flaps, 0);
}

#[tokio::test]
async fn a_learned_route_shows_in_the_rib_query_and_the_fib_stream_and_leaves_both() {
    let (a, b) = pair(Establishment::Mesh).await;
    let mut fib = b.handle.subscribe_fib().await.unwrap();
    // The first event is the whole table: a's block via a.
    let Some(tortie_bgp_speaker::FibEvent::Routes(all)) = fib.recv().await else {
        panic!("no table")
    };
    assert_eq!(all.len(), 1, "{all:?}");
    let route = all[0].route.as_ref().unwrap();
    assert_eq!(
        route.next_hops,
        vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
    );
    assert!(!route.stale);
    let rib = b.handle.rib_query(None).await.unwrap();
    assert_eq!(rib.len(), 1);
    assert_eq!(rib[0].prefix.to_string(), "10.244.1.0/26");
    assert!(rib[0].paths[0].best);
    // A withdrawal reaches the FIB stream as a removal.
    let block: Prefix = "10.244.1.0/26".parse().unwrap();
    a.handle.withdraw(vec![block]).await.unwrap();
    let ev = tokio::time::timeout(WAIT, fib.recv())
        .await
        .unwrap()
        .unwrap();
    let tortie_bgp_speaker::FibEvent::Routes(gone) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(gone.len(), 1);
    assert!(gone[0].route.is_none(), "{gone:?}");
    assert!(b.handle.rib_query(None).await.unwrap().is_empty());
}
