//! Connection handling against peers unlike us (root: network namespaces).
//!
//! Layout: `<prefix>d` runs the speaker in-process (10.77.0.1, listening on
//! 17901), `<prefix>p` is the peer side (10.77.0.2, plus 10.77.0.4-6 for
//! more clients), joined by a veth. Clients are the test's own code with
//! sockets made inside the peer namespace (`support::client`): they only
//! connect, never listen.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::client::{bytes, connect_in, open, Client};
use support::{init_log, poll_async, run_in_netns, status_of, PeerLab};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{PeerConfig, Speaker, SpeakerConfig, SpeakerHandle, TimersConfig};
use tortie_bgp_wire::{Family, Message, PathAttributes, Prefix};

const DUT: &str = "10.77.0.1";
const PEER: &str = "10.77.0.2";
const WAIT: Duration = Duration::from_secs(20);

fn listen() -> SocketAddr {
    format!("{DUT}:17901").parse().unwrap()
}

fn peer(addr: &str, asn: u32, connect_retry: u16) -> PeerConfig {
    let mut p = PeerConfig::new(addr.parse().unwrap(), asn);
    p.port = 17900;
    p.local_address = Some(DUT.parse().unwrap());
    p.families = vec![tortie_bgp_speaker::AfiName::Ipv4];
    p.timers = TimersConfig {
        hold_time: 9,
        connect_retry,
        idle_hold_ms: 100,
        idle_hold_max_ms: 100,
        ..TimersConfig::default()
    };
    p
}

fn start(peers: Vec<PeerConfig>) -> SpeakerHandle {
    let cfg = SpeakerConfig {
        asn: 65001,
        router_id: DUT.parse().unwrap(),
        listen: Some(listen()),
        peers,
    };
    Speaker::start(cfg).unwrap().0
}

async fn in_state(h: &SpeakerHandle, peer: &str, want: State) {
    poll_async(&format!("{peer} in {want}"), WAIT, || async {
        status_of(h, peer).await.state == want
    })
    .await;
}

/// (what, bytes, expected NOTIFICATION (code, subcode), expected data).
type Hostile = (&'static str, Vec<u8>, (u8, u8), Option<Vec<u8>>);

/// The BGP messages of the issue, each the first thing sent on a new
/// connection.
fn hostile_first_messages() -> Vec<Hostile> {
    let good = bytes(&[open(65002, 9, PEER)]);
    let mut bad_marker = good.clone();
    bad_marker[3] = 0;
    let mut bad_length = bytes(&[Message::Keepalive]);
    bad_length[17] = 18;
    let mut bad_type = bytes(&[Message::Keepalive]);
    bad_type[18] = 9;
    let mut version_3 = good.clone();
    version_3[19] = 3;
    let mut id_zero = good.clone();
    id_zero[24..28].copy_from_slice(&[0, 0, 0, 0]);
    // Optional parameter 9 (neither 2 = capabilities nor 255 = extended).
    let mut unknown_param = good[..29].to_vec();
    unknown_param.extend_from_slice(&[9, 2, 0xab, 0xcd]);
    unknown_param[28] = 4;
    unknown_param[17] = unknown_param.len() as u8;
    let update = bytes(&[Message::Update(Default::default())]);
    vec![
        ("bad marker", bad_marker, (1, 1), None),
        ("bad length", bad_length, (1, 2), Some(vec![0, 18])),
        ("unknown type", bad_type, (1, 3), Some(vec![9])),
        ("OPEN version 3", version_3, (2, 1), Some(vec![0, 4])),
        ("BGP identifier 0", id_zero, (2, 3), None),
        ("unknown optional parameter", unknown_param, (2, 4), None),
        ("hold time 1", bytes(&[open(65002, 1, PEER)]), (2, 6), None),
        ("bad peer AS", bytes(&[open(65099, 9, PEER)]), (2, 2), None),
        ("UPDATE before OPEN", update, (5, 1), None),
    ]
}

/// The peer's port drops our SYNs (nft in its namespace), so our own
/// connect hangs in Connect; meanwhile the peer connects to us and sends
/// a malformed first message. It must get our OPEN at once, then the
/// NOTIFICATION RFC 4271 §6 names, before the close.
#[test]
#[ignore = "root: network namespaces and nftables"]
fn malformed_first_messages_on_an_incoming_connection_while_our_connect_hangs() {
    init_log();
    let lab = PeerLab::new("smal");
    drop_syns_to(&lab, 17900);
    let ns = lab.peer.path();
    run_in_netns(&lab.dut.path(), move || async move {
        // ConnectRetryTime 60 s: our SYNs are dropped, the connect hangs.
        let h = start(vec![peer(PEER, 65002, 60)]);
        for (what, hostile, want, data) in hostile_first_messages() {
            in_state(&h, PEER, State::Connect).await;
            let s = connect_in(&ns, PEER.parse().unwrap(), listen()).unwrap();
            let mut c = Client::new(s);
            let first = c.next(WAIT).await;
            assert!(
                matches!(first, Some(Message::Open(_))),
                "{what}: first {first:?}"
            );
            c.send(&hostile).await;
            let n = match c
                .until(WAIT, |m| matches!(m, Message::Notification(_)))
                .await
            {
                Some(Message::Notification(n)) => n,
                other => panic!("{what}: no NOTIFICATION, got {other:?}"),
            };
            assert_eq!((n.code.code(), n.subcode), want, "{what}: {n:?}");
            if let Some(d) = data {
                assert_eq!(n.data, d, "{what}: data");
            }
            assert!(
                c.next(WAIT).await.is_none(),
                "{what}: the connection stays open"
            );
        }
        let st = status_of(&h, PEER).await;
        assert_eq!(st.sent.notification, 9, "{st:?}");
        assert_eq!(st.sent.open, 9, "{st:?}");
        h.shutdown().await.unwrap();
    });
}

/// Our connects to the peer's port vanish: SYNs dropped in its namespace.
fn drop_syns_to(lab: &PeerLab, port: u16) {
    let ns = &lab.peer;
    ns.nft("add table inet tt").unwrap();
    ns.nft("add chain inet tt in { type filter hook input priority 0 ; }")
        .unwrap();
    ns.nft(&format!(
        "add rule inet tt in tcp dport {port} tcp flags & (syn | ack) == syn drop"
    ))
    .unwrap();
}

/// Clients that connect but never listen (monitoring tools, test harnesses,
/// some speakers): our connects to them are refused, theirs to us must be
/// taken at once, in every state but Established.
#[test]
#[ignore = "root: network namespaces"]
fn connect_only_clients_in_their_own_namespace_come_up_and_get_our_routes() {
    init_log();
    let lab = PeerLab::new("scon");
    let clients = ["10.77.0.2", "10.77.0.4", "10.77.0.5", "10.77.0.6"];
    for a in &clients[1..] {
        lab.peer
            .ip(&["addr", "add", &format!("{a}/24"), "dev", "eth0"])
            .unwrap();
    }
    let ns = lab.peer.path();
    run_in_netns(&lab.dut.path(), move || async move {
        // iBGP route reflector clients, active on our side (as tortie-node
        // configures them), ConnectRetryTime 5 s as tortie-node's.
        let peers = clients
            .iter()
            .map(|a| {
                let mut p = peer(a, 65001, 5);
                p.route_reflector_client = true;
                p
            })
            .collect();
        let cfg = SpeakerConfig {
            asn: 65001,
            router_id: DUT.parse().unwrap(),
            listen: Some(listen()),
            peers,
        };
        let opts = tortie_bgp_speaker::SpeakerOptions {
            cluster_id: Some("10.99.0.1".parse().unwrap()),
            ..Default::default()
        };
        let (h, _ev) = Speaker::start_with(cfg, opts).unwrap();
        let ours: Prefix = "10.244.1.0/26".parse().unwrap();
        h.originate(vec![ours], PathAttributes::default())
            .await
            .unwrap();
        // Our first connects are refused: every session waits in Active.
        for a in clients {
            in_state(&h, a, State::Active).await;
        }
        let mut conns = Vec::new();
        for a in clients {
            let ip: IpAddr = a.parse().unwrap();
            let mut c = Client::new(connect_in(&ns, ip, listen()).unwrap());
            assert!(c.handshake(open(65001, 9, a), WAIT).await, "{a} not up");
            conns.push(c);
        }
        for (a, c) in clients.iter().zip(&mut conns) {
            let got = c
                .until(WAIT, |m| match m {
                    Message::Update(u) => u.nlri.iter().any(|n| n.prefix == ours),
                    _ => false,
                })
                .await;
            assert!(got.is_some(), "{a} never got our route");
            let eor = c
                .until(WAIT, |m| {
                    matches!(m, Message::Update(u) if u.end_of_rib_family() == Some(Family::IPV4_UNICAST))
                })
                .await;
            assert!(eor.is_some(), "{a}: no End-of-RIB");
        }
        for a in clients {
            let st = status_of(&h, a).await;
            assert_eq!((st.state, st.flaps), (State::Established, 0), "{st:?}");
            assert_eq!(st.prefixes_sent, 1, "{st:?}");
        }
        h.shutdown().await.unwrap();
    });
}
