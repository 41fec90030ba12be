//! Black-box: hostile bytes over TCP get the NOTIFICATION RFC 4271 §6
//! names, the other session stays Established and the speaker keeps
//! answering. Runs on loopback (127.0.0.2 hostile, 127.0.0.3 well-behaved),
//! no root needed.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::{init_log, poll_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    transport, Establishment, PeerConfig, PeerStatus, Speaker, SpeakerConfig, SpeakerHandle,
    TimersConfig,
};
use tortie_bgp_wire::{decode, encode, Capability, DecodeContext, Family, Message, OpenMsg};

const HOSTILE: &str = "127.0.0.2";
const GOOD: &str = "127.0.0.3";
const WAIT: Duration = Duration::from_secs(10);

fn peer(addr: &str) -> PeerConfig {
    let mut p = PeerConfig::new(addr.parse().unwrap(), 65002);
    p.establishment = Establishment::Passive;
    p.timers = TimersConfig {
        idle_hold_ms: 10,
        idle_hold_max_ms: 20,
        ..TimersConfig::default()
    };
    p
}

fn open_bytes(asn: u32, hold: u16, families: &[Family]) -> Vec<u8> {
    let mut caps: Vec<Capability> = families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    caps.push(Capability::FourOctetAs(asn));
    let m = Message::Open(OpenMsg::new(asn, hold, "10.0.0.9".parse().unwrap(), caps));
    let mut b = Vec::new();
    encode(&m, &DecodeContext::default(), &mut b).unwrap();
    b
}

fn good_open() -> Vec<u8> {
    open_bytes(65002, 0, &[Family::IPV4_UNICAST, Family::IPV6_UNICAST])
}

fn keepalive() -> Vec<u8> {
    let mut b = Vec::new();
    encode(&Message::Keepalive, &DecodeContext::default(), &mut b).unwrap();
    b
}

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// Reads messages until `want` matches one; None on EOF or timeout.
async fn read_until(s: &mut TcpStream, want: impl Fn(&Message) -> bool) -> Option<Message> {
    let ctx = DecodeContext::four_octet();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Ok(Some((m, used))) = decode(&buf, &ctx) {
            buf.drain(..used);
            if want(&m) {
                return Some(m);
            }
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

async fn status_of(h: &SpeakerHandle, addr: &str) -> PeerStatus {
    let a: IpAddr = addr.parse().unwrap();
    h.peer_status()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.address == a)
        .unwrap()
}

/// Sends `prelude` then `bytes` from the hostile address; returns (code, subcode) of the NOTIFICATION.
async fn attempt(h: &SpeakerHandle, to: SocketAddr, prelude: &[Vec<u8>], bytes: &[u8]) -> (u8, u8) {
    poll_async("hostile peer back in Active", WAIT, || async {
        status_of(h, HOSTILE).await.state == State::Active
    })
    .await;
    let mut s = connect_from(HOSTILE, to).await;
    for p in prelude {
        s.write_all(p).await.unwrap();
    }
    if !prelude.is_empty() {
        // Wait until the speaker is Established before the hostile part.
        read_until(&mut s, |m| matches!(m, Message::Keepalive))
            .await
            .expect("keepalive");
    }
    s.write_all(bytes).await.unwrap();
    match read_until(&mut s, |m| matches!(m, Message::Notification(_))).await {
        Some(Message::Notification(n)) => (n.code.code(), n.subcode),
        other => panic!("no NOTIFICATION, got {other:?}"),
    }
}

type Case = (&'static str, Vec<Vec<u8>>, Vec<u8>, (u8, u8));

/// (what, bytes before (a handshake), hostile bytes, expected code/subcode).
fn cases() -> Vec<Case> {
    let mut bad_marker = good_open();
    bad_marker[0] = 0;
    let mut bad_len = keepalive();
    bad_len[17] = 18;
    let mut bad_version = good_open();
    bad_version[19] = 3;
    // UPDATE whose total path attribute length (50) runs past the message.
    let mut bad_attrs = vec![0xff; 16];
    bad_attrs.extend_from_slice(&[0, 27, 2, 0, 0, 0, 50, 0x40, 1, 1, 0]);
    vec![
        ("bad marker", vec![], bad_marker, (1, 1)),
        ("bad length", vec![], bad_len, (1, 2)),
        ("bad version", vec![], bad_version, (2, 1)),
        (
            "bad peer AS",
            vec![],
            open_bytes(65099, 0, &[Family::IPV4_UNICAST]),
            (2, 2),
        ),
        (
            "hold time 1",
            vec![],
            open_bytes(65002, 1, &[Family::IPV4_UNICAST]),
            (2, 6),
        ),
        (
            "no common family",
            vec![],
            open_bytes(65002, 0, &[Family::new(25, 65)]),
            (2, 7),
        ),
        (
            "malformed attributes",
            vec![good_open(), keepalive()],
            bad_attrs,
            (3, 1),
        ),
    ]
}

#[tokio::test]
async fn malformed_input_gets_the_rfc_notification_and_hurts_no_one_else() {
    init_log();
    let l = transport::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = l.local_addr().unwrap();
    let cfg = SpeakerConfig {
        asn: 65001,
        router_id: "10.0.0.1".parse().unwrap(),
        listen: None,
        peers: vec![peer(HOSTILE), peer(GOOD)],
    };
    let (h, _events) = Speaker::start_with_listener(cfg, Some(l));

    // The well-behaved peer: hold time 0, so it needs no KEEPALIVEs.
    let mut good = connect_from(GOOD, to).await;
    good.write_all(&[good_open(), keepalive()].concat())
        .await
        .unwrap();
    read_until(&mut good, |m| matches!(m, Message::Keepalive))
        .await
        .expect("good session up");
    poll_async("good peer Established", WAIT, || async {
        status_of(&h, GOOD).await.state == State::Established
    })
    .await;

    for (what, prelude, bytes, want) in cases() {
        assert_eq!(attempt(&h, to, &prelude, &bytes).await, want, "{what}");
    }

    // Everyone else is fine and the speaker still answers.
    let g = status_of(&h, GOOD).await;
    assert_eq!(g.state, State::Established, "{g:?}");
    assert_eq!(g.flaps, 0);
    let bad = status_of(&h, HOSTILE).await;
    assert!(
        bad.last_error
            .as_deref()
            .unwrap_or("")
            .contains("Malformed Attribute List"),
        "{bad:?}"
    );
    assert_eq!(bad.sent.notification, 7, "{bad:?}");
    h.shutdown().await.unwrap();
    let bye = read_until(&mut good, |m| matches!(m, Message::Notification(_))).await;
    assert!(
        matches!(bye, Some(Message::Notification(n)) if n.subcode == 2),
        "Cease/Admin Shutdown on shutdown"
    );
}
