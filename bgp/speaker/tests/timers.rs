//! Session timers through the whole speaker, on paused tokio time: no test
//! here sleeps for real.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tortie_bgp_speaker::{
    transport, Establishment, PeerConfig, Speaker, SpeakerConfig, TimersConfig,
};
use tortie_bgp_wire::{decode, encode, Capability, DecodeContext, Family, Message, OpenMsg};

async fn silent_peer(hold: u16) -> (TcpStream, tortie_bgp_speaker::SpeakerHandle) {
    let l = transport::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = l.local_addr().unwrap();
    let mut p = PeerConfig::new("127.0.0.4".parse().unwrap(), 65002);
    p.establishment = Establishment::Passive;
    p.timers = TimersConfig {
        hold_time: hold,
        ..TimersConfig::default()
    };
    let cfg = SpeakerConfig {
        asn: 65001,
        router_id: "10.0.0.1".parse().unwrap(),
        listen: None,
        peers: vec![p],
    };
    let (h, _ev) = Speaker::start_with_listener(cfg, Some(l));
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new("127.0.0.4".parse().unwrap(), 0))
        .unwrap();
    let mut c = s.connect(to).await.unwrap();
    let caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::FourOctetAs(65002),
    ];
    let mut b = Vec::new();
    let ctx = DecodeContext::default();
    encode(
        &Message::Open(OpenMsg::new(65002, hold, "10.0.0.4".parse().unwrap(), caps)),
        &ctx,
        &mut b,
    )
    .unwrap();
    encode(&Message::Keepalive, &ctx, &mut b).unwrap();
    c.write_all(&b).await.unwrap();
    (c, h)
}

/// Every message the speaker sends until it closes, with the (virtual) time it arrived.
async fn record(c: &mut TcpStream) -> Vec<(Duration, Message)> {
    let start = tokio::time::Instant::now();
    let ctx = DecodeContext::four_octet();
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    loop {
        while let Ok(Some((m, used))) = decode(&buf, &ctx) {
            buf.drain(..used);
            out.push((start.elapsed(), m));
        }
        let mut chunk = [0u8; 4096];
        match c.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return out,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_gets_keepalives_every_hold_third_then_hold_timer_expired() {
    let (mut c, h) = silent_peer(6).await;
    let msgs = record(&mut c).await;
    let kinds: Vec<String> = msgs
        .iter()
        .map(|(t, m)| match m {
            Message::Open(_) => "OPEN".to_string(),
            Message::Keepalive => format!("KEEPALIVE@{}", t.as_secs()),
            Message::Update(u) if u.end_of_rib_family() == Some(Family::IPV4_UNICAST) => {
                format!("END-OF-RIB@{}", t.as_secs())
            }
            Message::Notification(n) => format!(
                "NOTIFICATION {}/{}@{}",
                n.code.code(),
                n.subcode,
                t.as_secs()
            ),
            other => format!("{other:?}"),
        })
        .collect();
    // OPEN, the confirming KEEPALIVE and End-of-RIB (empty table) at once,
    // then a KEEPALIVE every 2 s, then the hold timer (6 s after the peer's
    // KEEPALIVE) expires: RFC 4271 §6.5.
    assert_eq!(
        kinds,
        [
            "OPEN",
            "KEEPALIVE@0",
            "END-OF-RIB@0",
            "KEEPALIVE@2",
            "KEEPALIVE@4",
            "NOTIFICATION 4/0@6"
        ],
        "{msgs:?}"
    );
    let st = h.peer_status().await.unwrap();
    assert!(
        st[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("Hold Timer Expired"),
        "{st:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn hold_time_zero_keeps_a_silent_session_up() {
    let (mut c, h) = silent_peer(0).await;
    let read = tokio::time::timeout(Duration::from_secs(3600), record(&mut c)).await;
    assert!(read.is_err(), "the session ended: {read:?}");
    let st = h.peer_status().await.unwrap();
    assert_eq!(
        st[0].state,
        tortie_bgp_session::State::Established,
        "{st:?}"
    );
}
