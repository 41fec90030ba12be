//! Shared helpers of the speaker's integration tests.
#![allow(dead_code)]

pub mod bird_gr;
pub mod client;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    Establishment, PeerConfig, PeerStatus, PeerType, SpeakerHandle, TimersConfig,
};
use tortie_bgp_wire::Prefix;
use tortie_testkit::daemons::BgpDaemonSpec;
use tortie_testkit::{unique_prefix, Netns};

/// Runs `f` on a fresh multi-thread tokio runtime whose threads live in the
/// network namespace at `ns_path` (every socket the speaker opens is there).
pub fn run_in_netns<F, Fut>(ns_path: &str, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let path = ns_path.to_string();
    let t = std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f());
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `timeout`.
pub async fn poll_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`poll_until`] with an async condition.
pub async fn poll_async<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status of the only (or first) peer.
pub async fn first_peer(h: &SpeakerHandle) -> PeerStatus {
    h.peer_status()
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a peer")
}

/// Enables logs when `TORTIE_TEST_LOG` is set (e.g. `debug`).
pub fn init_log() {
    if let Ok(filter) = std::env::var("TORTIE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Two namespaces on one veth: `<prefix>d` for the speakers under test
/// (10.77.0.1 and 10.77.0.3 on `eth0`) and `<prefix>p` for a real peer
/// (10.77.0.2). Deleted on drop.
pub struct PeerLab {
    /// The [`unique_prefix`] the namespaces are named with.
    pub prefix: String,
    pub dut: Netns,
    pub peer: Netns,
}

impl PeerLab {
    pub fn new(tag: &str) -> PeerLab {
        let prefix = unique_prefix(tag);
        let dut = Netns::create(&format!("{prefix}d")).unwrap();
        let peer = Netns::create(&format!("{prefix}p")).unwrap();
        dut.veth_to("eth0", "10.77.0.1/24", &peer, "eth0", "10.77.0.2/24")
            .unwrap();
        dut.ip(&["addr", "add", "10.77.0.3/24", "dev", "eth0"])
            .unwrap();
        PeerLab { prefix, dut, peer }
    }
}

/// A hub namespace `<prefix>d` with a bridge `br0` carrying `hub_addrs`
/// (/24 each), and one namespace `<prefix>cN` per client address, joined to
/// the bridge through a veth (`eth0` in the client, `vN` on the bridge), so
/// every address is on one segment and reflected next hops are reachable.
pub struct BridgeLab {
    pub hub: Netns,
    pub clients: Vec<Netns>,
}

impl BridgeLab {
    pub fn new(tag: &str, hub_addrs: &[&str], client_addrs: &[IpAddr]) -> BridgeLab {
        let p = unique_prefix(tag);
        let hub = Netns::create(&format!("{p}d")).unwrap();
        hub.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
        for a in hub_addrs {
            hub.ip(&["addr", "add", &format!("{a}/24"), "dev", "br0"])
                .unwrap();
        }
        hub.ip(&["link", "set", "br0", "up"]).unwrap();
        let clients = client_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let ns = Netns::create(&format!("{p}c{i}")).unwrap();
                let ifname = format!("v{i}");
                let tmp = format!("10.78.{i}.1/30");
                hub.veth_to(&ifname, &tmp, &ns, "eth0", &format!("{a}/24"))
                    .unwrap();
                hub.ip(&["addr", "flush", "dev", &ifname]).unwrap();
                hub.ip(&["link", "set", &ifname, "master", "br0"]).unwrap();
                ns
            })
            .collect();
        BridgeLab { hub, clients }
    }
}

/// The testkit session of an iBGP daemon at `local` (listening on
/// `listen_port`) toward a speaker at `peer`:`peer_port`, IPv4 only, hold
/// time 9 s, originating `originate`.
pub fn ibgp_spec(
    asn: u32,
    local: Ipv4Addr,
    listen_port: u16,
    peer: &str,
    peer_port: u16,
    originate: &[&str],
) -> BgpDaemonSpec {
    BgpDaemonSpec {
        router_id: local,
        local_as: asn,
        local_addr: IpAddr::V4(local),
        local_v4: local,
        local_v6: None,
        listen_port,
        peer_addr: peer.parse().unwrap(),
        peer_port,
        peer_as: asn,
        password: None,
        hold_time: 9,
        ttl_security: false,
        originate: originate.iter().map(|p| p.to_string()).collect(),
    }
}

/// Hold time 9 s and short retries, so a test takes seconds.
pub fn timers(connect_retry: u16, idle_hold_max_ms: u64) -> TimersConfig {
    TimersConfig {
        hold_time: 9,
        connect_retry,
        idle_hold_ms: 250,
        idle_hold_max_ms,
        ..TimersConfig::default()
    }
}

/// An iBGP session to another cluster node (Calico's node-to-node mesh).
pub fn mesh_peer(
    asn: u32,
    addr: &str,
    port: u16,
    local: &str,
    establishment: Establishment,
    timers: TimersConfig,
) -> PeerConfig {
    let mut p = PeerConfig::new(addr.parse().unwrap(), asn);
    p.port = port;
    p.peer_type = PeerType::Mesh;
    p.local_address = Some(local.parse().unwrap());
    p.establishment = establishment;
    p.timers = timers;
    p
}

pub fn prefixes(v: &[&str]) -> Vec<Prefix> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// Prefixes in a speaker's Loc-RIB.
pub async fn rib(h: &SpeakerHandle) -> Vec<String> {
    h.rib_query(None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.prefix.to_string())
        .collect()
}

/// Does `have` hold every one of `want`?
pub fn has_all(have: &[String], want: &[&str]) -> bool {
    want.iter().all(|w| have.iter().any(|h| h == w))
}

/// The status of the session to `peer`; panics naming it when there is none.
pub async fn status_of(h: &SpeakerHandle, peer: &str) -> PeerStatus {
    let addr: IpAddr = peer.parse().unwrap();
    h.peer_status()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.address == addr)
        .unwrap_or_else(|| panic!("no peer {peer}"))
}

/// Are there exactly `n` sessions, all Established?
pub async fn all_established(h: &SpeakerHandle, n: usize) -> bool {
    let st = h.peer_status().await.unwrap();
    st.len() == n && st.iter().all(|s| s.state == State::Established)
}
