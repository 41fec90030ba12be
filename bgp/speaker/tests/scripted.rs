//! A scripted peer on loopback (no root): max-prefix limit, ROUTE-REFRESH
//! answer, End-of-RIB and the Adj-RIB-In fed by UPDATEs.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::{first_peer, init_log, poll_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    transport, AfiName, Establishment, PeerConfig, Speaker, SpeakerConfig, SpeakerHandle,
};
use tortie_bgp_wire::{
    decode, encode, encode_announcements, AsPath, Capability, DecodeContext, Family, Message, Nlri,
    OpenMsg, Origin, PathAttributes, Prefix, RouteRefreshMsg,
};

const WAIT: Duration = Duration::from_secs(10);

struct Scripted {
    s: TcpStream,
    buf: Vec<u8>,
    ctx: DecodeContext,
}

impl Scripted {
    async fn send(&mut self, m: &Message) {
        let mut b = Vec::new();
        encode(m, &self.ctx, &mut b).unwrap();
        self.s.write_all(&b).await.unwrap();
    }

    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Ok(Some((m, used))) = decode(&self.buf, &self.ctx) {
                self.buf.drain(..used);
                return Some(m);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, self.s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    async fn until(&mut self, want: impl Fn(&Message) -> bool) -> Message {
        loop {
            let m = self.next().await.expect("a message before EOF");
            if want(&m) {
                return m;
            }
        }
    }

    async fn announce(&mut self, prefixes: &[&str]) {
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([65002])),
            next_hop: Some("127.0.0.5".parse().unwrap()),
            ..Default::default()
        };
        let nlri: Vec<Nlri> = prefixes
            .iter()
            .map(|p| Nlri::new(p.parse().unwrap()))
            .collect();
        let mut b = Vec::new();
        encode_announcements(&attrs, &nlri, &self.ctx, &mut b).unwrap();
        self.s.write_all(&b).await.unwrap();
    }
}

async fn setup(max_prefixes: Option<u32>) -> (SpeakerHandle, Scripted) {
    init_log();
    let l = transport::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = l.local_addr().unwrap();
    let mut p = PeerConfig::new("127.0.0.5".parse().unwrap(), 65002);
    p.establishment = Establishment::Passive;
    p.max_prefixes = max_prefixes;
    p.families = vec![AfiName::Ipv4];
    let cfg = SpeakerConfig {
        asn: 65001,
        router_id: "10.0.0.1".parse().unwrap(),
        listen: None,
        peers: vec![p],
    };
    let (h, _ev) = Speaker::start_with_listener(cfg, Some(l));
    let ours: Prefix = "10.1.0.0/24".parse().unwrap();
    h.originate(vec![ours], PathAttributes::default())
        .await
        .unwrap();
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new("127.0.0.5".parse().unwrap(), 0))
        .unwrap();
    let s = sock.connect(to).await.unwrap();
    let mut sc = Scripted {
        s,
        buf: Vec::new(),
        ctx: DecodeContext::four_octet(),
    };
    let caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(65002),
    ];
    sc.send(&Message::Open(OpenMsg::new(
        65002,
        0,
        "10.0.0.5".parse().unwrap(),
        caps,
    )))
    .await;
    sc.send(&Message::Keepalive).await;
    (h, sc)
}

fn is_our_route(m: &Message) -> bool {
    matches!(m, Message::Update(u) if u.nlri.iter().any(|n| n.prefix.to_string() == "10.1.0.0/24"))
}

#[tokio::test]
async fn initial_table_then_end_of_rib_then_route_refresh_answered() {
    let (h, mut sc) = setup(None).await;
    let first = sc.until(|m| matches!(m, Message::Update(_))).await;
    assert!(is_our_route(&first), "{first:?}");
    let eor = sc.until(|m| matches!(m, Message::Update(_))).await;
    assert!(
        matches!(&eor, Message::Update(u) if u.end_of_rib_family() == Some(Family::IPV4_UNICAST)),
        "{eor:?}"
    );
    // RFC 2918: a ROUTE-REFRESH gets the table again.
    sc.send(&Message::RouteRefresh(RouteRefreshMsg::request(
        Family::IPV4_UNICAST,
    )))
    .await;
    let again = sc.until(|m| matches!(m, Message::Update(_))).await;
    assert!(is_our_route(&again), "{again:?}");
    sc.announce(&["10.9.0.0/24", "10.9.1.0/24"]).await;
    poll_async("two prefixes received", WAIT, || async {
        first_peer(&h).await.prefixes_received == 2
    })
    .await;
    let st = first_peer(&h).await;
    assert_eq!(
        (st.received.route_refresh, st.prefixes_sent),
        (1, 1),
        "{st:?}"
    );
}

#[tokio::test]
async fn more_prefixes_than_allowed_close_the_session_with_cease_1() {
    let (h, mut sc) = setup(Some(2)).await;
    sc.until(|m| matches!(m, Message::Keepalive)).await;
    sc.announce(&["10.9.0.0/24", "10.9.1.0/24", "10.9.2.0/24"])
        .await;
    let n = sc.until(|m| matches!(m, Message::Notification(_))).await;
    let Message::Notification(n) = n else {
        unreachable!()
    };
    // RFC 4486 §4: data = AFI 1, SAFI 1, the limit 2.
    assert_eq!(
        (n.code.code(), n.subcode, n.data.clone()),
        (6, 1, vec![0, 1, 1, 0, 0, 0, 2])
    );
    poll_async("session down", WAIT, || async {
        first_peer(&h).await.state != State::Established
    })
    .await;
    let st = first_peer(&h).await;
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("Maximum Number of Prefixes"),
        "{st:?}"
    );
    assert_eq!(st.prefixes_received, 0);
}
