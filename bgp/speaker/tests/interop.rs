//! Interop with real BIRD 2, FRR bgpd and GoBGP (root: network namespaces).
//!
//! Layout per test: namespace `<prefix>d` runs the speaker in-process (a
//! runtime whose threads joined it), `<prefix>p` runs the daemon; a veth
//! joins them (10.77.0.1/24 + fd77::1/64 ↔ 10.77.0.2/24 + fd77::2/64). One
//! session carries IPv4 and IPv6 unicast. Each test checks: Established,
//! prefixes both ways, a withdrawal each way, and a daemon restart that the
//! speaker reconnects to.

mod support;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{first_peer, init_log, poll_async, poll_until, run_in_netns};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    PeerConfig, Speaker, SpeakerConfig, SpeakerEvent, SpeakerHandle, TimersConfig,
};
use tortie_bgp_wire::{PathAttributes, Prefix};
use tortie_testkit::daemons::{BgpDaemon, BgpDaemonSpec, Bird, Frr, Gobgp};
use tortie_testkit::{unique_prefix, Netns};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Bird,
    Frr,
    Gobgp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ibgp {
    Yes,
    No,
}

const DUT_AS: u32 = 65001;
const WAIT: Duration = Duration::from_secs(30);

fn daemon_spec(ibgp: Ibgp, password: Option<&str>) -> BgpDaemonSpec {
    let asn = if ibgp == Ibgp::Yes { DUT_AS } else { 65002 };
    BgpDaemonSpec {
        router_id: "10.77.0.2".parse().unwrap(),
        local_as: asn,
        local_addr: "10.77.0.2".parse().unwrap(),
        local_v4: "10.77.0.2".parse().unwrap(),
        local_v6: Some("fd77::2".parse().unwrap()),
        listen_port: 17900,
        peer_addr: "10.77.0.1".parse().unwrap(),
        peer_port: 17901,
        peer_as: DUT_AS,
        password: password.map(str::to_string),
        hold_time: 9,
        ttl_security: false,
        originate: vec!["10.2.0.0/24".into(), "fd02::/64".into()],
    }
}

fn peer_config(spec: &BgpDaemonSpec) -> PeerConfig {
    let mut p = PeerConfig::new(spec.local_addr, spec.local_as);
    p.port = spec.listen_port;
    p.local_address = Some(match spec.local_addr {
        IpAddr::V4(_) => "10.77.0.1".parse().unwrap(),
        IpAddr::V6(_) => "fd77::1".parse().unwrap(),
    });
    p.next_hop_v4 = Some("10.77.0.1".parse().unwrap());
    p.password = spec.password.clone();
    p.ttl_security = spec.ttl_security.then_some(1);
    p.next_hop_v6 = Some("fd77::1".parse().unwrap());
    p.timers = TimersConfig {
        hold_time: 9,
        connect_retry: 2,
        idle_hold_ms: 250,
        idle_hold_max_ms: 2_000,
        ..TimersConfig::default()
    };
    p
}

/// Our Adj-RIB-In as seen through the event stream.
type Learned = Arc<Mutex<HashSet<String>>>;

fn track(mut rx: tortie_bgp_speaker::EventRx) -> Learned {
    let learned: Learned = Arc::default();
    let l = learned.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let mut set = l.lock().unwrap();
            match ev {
                SpeakerEvent::Routes {
                    announced,
                    withdrawn,
                    ..
                } => {
                    for n in withdrawn {
                        set.remove(&n.prefix.to_string());
                    }
                    for (n, _) in announced {
                        set.insert(n.prefix.to_string());
                    }
                }
                SpeakerEvent::PeerDown { .. } => set.clear(),
                _ => {}
            }
        }
    });
    learned
}

fn start_daemon(kind: Kind, ns: &Netns, spec: BgpDaemonSpec) -> Box<dyn BgpDaemon + Send> {
    match kind {
        Kind::Bird => Box::new(Bird::start(ns, spec).unwrap()),
        Kind::Frr => Box::new(Frr::start(ns, spec).unwrap()),
        Kind::Gobgp => Box::new(Gobgp::start(ns, spec).unwrap()),
    }
}

fn has(d: &Daemon, prefixes: &[&str]) -> bool {
    let r = d.received();
    prefixes.iter().all(|p| r.iter().any(|x| x == p))
}

type Daemon = dyn BgpDaemon + Send;

async fn established(h: &SpeakerHandle) -> bool {
    first_peer(h).await.state == State::Established
}

/// Established, then both prefixes each way; returns the time to Established.
async fn exchange(h: &SpeakerHandle, d: &Daemon, learned: &Learned) -> Duration {
    let up = poll_async("speaker Established", WAIT, || established(h)).await;
    poll_until("daemon has our v4 and v6 prefixes", WAIT, || {
        has(d, &["10.1.0.0/24", "fd01::/64"])
    })
    .await;
    poll_until("we have the daemon's v4 and v6 prefixes", WAIT, || {
        let s = learned.lock().unwrap();
        s.contains("10.2.0.0/24") && s.contains("fd02::/64")
    })
    .await;
    let st = first_peer(h).await;
    assert_eq!((st.prefixes_received, st.prefixes_sent), (2, 2), "{st:?}");
    up
}

/// A withdrawal each way propagates.
async fn withdrawals(h: &SpeakerHandle, d: &mut Daemon, learned: &Learned, ours: Prefix) {
    h.withdraw(vec![ours]).await.unwrap();
    poll_until("daemon lost our withdrawn prefix", WAIT, || {
        !d.received().iter().any(|p| p == "10.1.0.0/24") && has(d, &["fd01::/64"])
    })
    .await;
    d.withdraw("fd02::/64").unwrap();
    poll_until("our withdrawn-by-peer prefix is gone", WAIT, || {
        let s = learned.lock().unwrap();
        !s.contains("fd02::/64") && s.contains("10.2.0.0/24")
    })
    .await;
}

/// The daemon restarts: the session drops and comes back with its routes;
/// returns the time from the daemon's start to Established.
async fn restart(h: &SpeakerHandle, d: &mut Daemon, learned: &Learned) -> Duration {
    d.stop();
    poll_async("session down after the daemon stopped", WAIT, || async {
        !established(h).await
    })
    .await;
    let t1 = Instant::now();
    d.start().unwrap();
    poll_async("session back after the restart", WAIT, || established(h)).await;
    let back = t1.elapsed();
    poll_until("routes back after the restart", WAIT, || {
        learned.lock().unwrap().contains("10.2.0.0/24")
    })
    .await;
    let st = first_peer(h).await;
    assert!(st.flaps >= 1, "{st:?}");
    back
}

fn interop(kind: Kind, ibgp: Ibgp, password: Option<&'static str>) {
    interop_with(kind, daemon_spec(ibgp, password));
}

fn interop_with(kind: Kind, spec: BgpDaemonSpec) {
    let (ibgp, password, spec_gtsm) = (
        spec.local_as == DUT_AS,
        spec.password.is_some(),
        spec.ttl_security,
    );
    init_log();
    let p = unique_prefix("bgp");
    let dut = Netns::create(&format!("{p}d")).unwrap();
    let peer_ns = Netns::create(&format!("{p}p")).unwrap();
    dut.veth_to("eth0", "10.77.0.1/24", &peer_ns, "eth0", "10.77.0.2/24")
        .unwrap();
    dut.ip(&["addr", "add", "fd77::1/64", "dev", "eth0", "nodad"])
        .unwrap();
    peer_ns
        .ip(&["addr", "add", "fd77::2/64", "dev", "eth0", "nodad"])
        .unwrap();
    let mut daemon = start_daemon(kind, &peer_ns, spec.clone());
    run_in_netns(&dut.path(), move || async move {
        let cfg = SpeakerConfig {
            asn: DUT_AS,
            router_id: "10.77.0.1".parse().unwrap(),
            // Dual-stack: IPv4 peers arrive as v4-mapped addresses.
            listen: Some("[::]:17901".parse().unwrap()),
            peers: vec![],
        };
        let (h, rx) = Speaker::start(cfg).unwrap();
        let learned = track(rx);
        let ours: Vec<Prefix> = ["10.1.0.0/24", "fd01::/64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        h.originate(ours.clone(), PathAttributes::default())
            .await
            .unwrap();
        h.add_peer(peer_config(&spec)).await.unwrap();
        let d = &mut daemon;
        let up = exchange(&h, d.as_ref(), &learned).await;
        withdrawals(&h, d.as_mut(), &learned, ours[0]).await;
        let back = restart(&h, d.as_mut(), &learned).await;
        let gtsm = spec_gtsm;
        eprintln!("{kind:?} ibgp={ibgp} md5={password} gtsm={gtsm}: up in {up:?}, back after restart in {back:?}");
        h.shutdown().await.unwrap();
    });
}

#[test]
#[ignore = "root: BIRD in network namespaces"]
fn bird_ibgp_with_md5() {
    interop(Kind::Bird, Ibgp::Yes, Some("tortie-md5"));
}

#[test]
#[ignore = "root: BIRD in network namespaces"]
fn bird_ebgp_without_md5() {
    interop(Kind::Bird, Ibgp::No, None);
}

#[test]
#[ignore = "root: FRR in network namespaces"]
fn frr_ibgp_with_md5() {
    interop(Kind::Frr, Ibgp::Yes, Some("tortie-md5"));
}

#[test]
#[ignore = "root: FRR in network namespaces"]
fn frr_ebgp_without_md5() {
    interop(Kind::Frr, Ibgp::No, None);
}

#[test]
#[ignore = "root: GoBGP in network namespaces"]
fn gobgp_ibgp_with_md5() {
    interop(Kind::Gobgp, Ibgp::Yes, Some("tortie-md5"));
}

#[test]
#[ignore = "root: GoBGP in network namespaces"]
fn gobgp_ebgp_without_md5() {
    interop(Kind::Gobgp, Ibgp::No, None);
}

#[test]
#[ignore = "root: BIRD in network namespaces"]
fn bird_ebgp_with_gtsm_and_md5() {
    let mut spec = daemon_spec(Ibgp::No, Some("tortie-md5"));
    spec.ttl_security = true;
    interop_with(Kind::Bird, spec);
}

#[test]
#[ignore = "root: FRR in network namespaces"]
fn frr_ebgp_with_gtsm() {
    let mut spec = daemon_spec(Ibgp::No, None);
    spec.ttl_security = true;
    interop_with(Kind::Frr, spec);
}

#[test]
#[ignore = "root: BIRD in network namespaces"]
fn bird_ebgp_over_ipv6_transport_with_md5() {
    let mut spec = daemon_spec(Ibgp::No, Some("tortie-md5"));
    spec.local_addr = "fd77::2".parse().unwrap();
    spec.peer_addr = "fd77::1".parse().unwrap();
    interop_with(Kind::Bird, spec);
}
