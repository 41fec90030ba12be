//! Route reflection and graceful restart with real daemons (root: network
//! namespaces).
//!
//! Layout: namespace `<prefix>d` runs the speaker in-process; each client
//! namespace `<prefix>cN` joins a bridge `br0` in `<prefix>d` through a veth,
//! so everyone shares 10.77.0.0/24 (tortie 10.77.0.1, clients .2, .3, .4) and
//! reflected next hops are reachable.

mod support;

use std::net::IpAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{
    all_established, ibgp_spec, init_log, poll_async, poll_until, run_in_netns, timers, BridgeLab,
};
use tortie_bgp_speaker::{
    FibEvent, FibUpdate, GracefulRestartConfig, PeerConfig, Speaker, SpeakerConfig, SpeakerOptions,
};
use tortie_bgp_wire::Prefix;
use tortie_testkit::daemons::{BgpDaemon, BgpDaemonSpec, Bird, Frr, Gobgp};
use tortie_testkit::{unique_prefix, ChildGuard, Netns};

const AS: u32 = 65001;
const WAIT: Duration = Duration::from_secs(20);
const CLUSTER: &str = "10.99.0.1";

/// The DUT namespace (10.77.0.1 on its bridge) and `clients` client namespaces.
fn lab(clients: usize) -> BridgeLab {
    let addrs: Vec<IpAddr> = (0..clients).map(client_addr).collect();
    BridgeLab::new("rr", &["10.77.0.1"], &addrs)
}

fn client_addr(i: usize) -> IpAddr {
    format!("10.77.0.{}", i + 2).parse().unwrap()
}

fn spec(i: usize, originate: &str) -> BgpDaemonSpec {
    let local = format!("10.77.0.{}", i + 2).parse().unwrap();
    ibgp_spec(AS, local, 17900, "10.77.0.1", 17901, &[originate])
}

fn client_peer(i: usize) -> PeerConfig {
    let mut p = PeerConfig::new(client_addr(i), AS);
    p.port = 17900;
    p.local_address = Some("10.77.0.1".parse().unwrap());
    p.families = vec![tortie_bgp_speaker::AfiName::Ipv4];
    p.route_reflector_client = true;
    p.timers = timers(2, 2_000);
    p
}

fn rr_options() -> SpeakerOptions {
    SpeakerOptions {
        cluster_id: Some(CLUSTER.parse().unwrap()),
        ..SpeakerOptions::default()
    }
}

fn dut_config() -> SpeakerConfig {
    SpeakerConfig {
        asn: AS,
        router_id: "10.77.0.1".parse().unwrap(),
        listen: Some("10.77.0.1:17901".parse().unwrap()),
        peers: vec![],
    }
}

#[test]
#[ignore = "root: BIRD, FRR and GoBGP in network namespaces"]
fn tortie_reflects_routes_between_bird_frr_and_gobgp_clients() {
    init_log();
    let lab = lab(3);
    let prefixes = ["10.2.1.0/24", "10.2.2.0/24", "10.2.3.0/24"];
    let bird = Arc::new(Bird::start(&lab.clients[0], spec(0, prefixes[0])).unwrap());
    let frr = Arc::new(Frr::start(&lab.clients[1], spec(1, prefixes[1])).unwrap());
    let gobgp = Arc::new(Gobgp::start(&lab.clients[2], spec(2, prefixes[2])).unwrap());
    let d: Vec<Arc<dyn BgpDaemon + Sync>> = vec![bird.clone(), frr.clone(), gobgp.clone()];
    let (frr2, gobgp2) = (frr.clone(), gobgp.clone());
    run_in_netns(&lab.hub.path(), move || async move {
        let (h, _rx) = Speaker::start_with(dut_config(), rr_options()).unwrap();
        for i in 0..3 {
            h.add_peer(client_peer(i)).await.unwrap();
        }
        let up = poll_async("3 clients Established", WAIT, || all_established(&h, 3)).await;
        let t = poll_until("every client has the other two's prefixes", WAIT, || {
            d.iter().enumerate().all(|(i, c)| {
                let r = c.received();
                prefixes
                    .iter()
                    .enumerate()
                    .all(|(j, p)| i == j || r.iter().any(|x| x == p))
            })
        })
        .await;
        eprintln!("tortie RR: 3 clients up in {up:?}, reflected in {t:?}");
        let rib = h.rib_query(None).await.unwrap();
        assert_eq!(rib.len(), 3, "{rib:?}");
        check_reflection_attributes(&frr2, &gobgp2, prefixes[0]);
        h.shutdown().await.unwrap();
    });
    drop((bird, frr, gobgp));
}

/// FRR and GoBGP show the reflection attributes of BIRD's route (RFC 4456 §8).
fn check_reflection_attributes(frr: &Frr, gobgp: &Gobgp, prefix: &str) {
    let cmd = format!("show bgp ipv4 unicast {prefix}");
    let frr_view = frr.vtysh(&[&cmd]).unwrap();
    assert!(frr_view.contains("Originator: 10.77.0.2"), "{frr_view}");
    assert!(
        frr_view.contains(&format!("Cluster list: {CLUSTER}")),
        "{frr_view}"
    );
    let gobgp_view = gobgp
        .gobgp(&["global", "rib", "-a", "ipv4", prefix, "-j"])
        .unwrap();
    assert!(
        gobgp_view.contains("10.77.0.2") && gobgp_view.contains(CLUSTER),
        "{gobgp_view}"
    );
}

/// A BIRD 2 run directly from a config text (graceful restart, ADD-PATH:
/// what the testkit launcher does not configure); SIGKILL on drop.
struct RawBird {
    dir: Dir,
    child: Option<ChildGuard>,
    ns: String,
}

/// BIRD client 10.77.0.2 with graceful restart on (restart time 4 s).
fn gr_bird_config() -> String {
    format!(
            "router id 10.77.0.2;\n\
             protocol device {{ scan time 1; }}\n\
             protocol direct {{ ipv4; }}\n\
             protocol static s4 {{ ipv4; route 10.2.0.0/24 blackhole; route 10.2.9.0/24 blackhole; }}\n\
             protocol bgp peer {{\n\
               local 10.77.0.2 port 17900 as {AS}; neighbor 10.77.0.1 port 17901 as {AS}; direct;\n\
               hold time 9; keepalive time 3;\n\
               connect delay time 1; connect retry time 1; error wait time 1, 4;\n\
               graceful restart on; graceful restart time 4;\n\
               ipv4 {{ import all; export where source = RTS_STATIC; next hop self; gateway direct; }};\n\
             }}\n"
    )
}

impl RawBird {
    fn start(ns: &Netns, conf: &str) -> RawBird {
        let dir = Dir(std::env::temp_dir().join(unique_prefix("rawbird")));
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path().join("bird.conf"), conf).unwrap();
        let mut g = RawBird {
            dir,
            child: None,
            ns: ns.name().to_string(),
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "bird", "-f", "-c"])
            .arg(d.join("bird.conf"))
            .arg("-s")
            .arg(d.join("bird.ctl"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.child = Some(ChildGuard::spawn("bird", &mut cmd).unwrap());
    }

    fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.path().join("bird.ctl"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A directory removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Fib = Arc<Mutex<std::collections::HashMap<Prefix, FibUpdate>>>;

fn track_fib(mut rx: tortie_bgp_speaker::FibRx) -> Fib {
    let fib: Fib = Arc::default();
    let f = fib.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let FibEvent::Routes(v) = ev {
                let mut m = f.lock().unwrap();
                for u in v {
                    match u.route {
                        Some(_) => m.insert(u.prefix, u),
                        None => m.remove(&u.prefix),
                    };
                }
            }
        }
    });
    fib
}

fn stale_of(fib: &Fib, p: &Prefix) -> Option<bool> {
    fib.lock()
        .unwrap()
        .get(p)
        .and_then(|u| u.route.as_ref().map(|r| r.stale))
}

#[test]
#[ignore = "root: BIRD in network namespaces"]
fn routes_of_a_killed_bird_stay_stale_until_its_restart_time_then_go() {
    init_log();
    let lab = lab(1);
    let mut bird = RawBird::start(&lab.clients[0], &gr_bird_config());
    let ns = lab.hub.path();
    run_in_netns(&ns, move || async move {
        let (h, _rx) = Speaker::start_with(dut_config(), SpeakerOptions::default()).unwrap();
        let fib = track_fib(h.subscribe_fib().await.unwrap());
        let mut p = client_peer(0);
        p.route_reflector_client = false;
        p.graceful_restart = Some(GracefulRestartConfig::default());
        h.add_peer(p).await.unwrap();
        let route: Prefix = "10.2.0.0/24".parse().unwrap();
        poll_until("BIRD's route in the FIB", WAIT, || {
            stale_of(&fib, &route) == Some(false)
        })
        .await;
        // kill -9: no NOTIFICATION; the hold timer (9 s) or the TCP reset ends the session.
        if let Some(c) = bird.child.as_mut() {
            c.kill();
        }
        let stale = poll_until("route marked stale", WAIT, || {
            stale_of(&fib, &route) == Some(true)
        })
        .await;
        let gone = poll_until(
            "stale route swept after the restart time (4 s)",
            WAIT,
            || stale_of(&fib, &route).is_none(),
        )
        .await;
        eprintln!("GR: stale after {stale:?}, swept {gone:?} later");
        assert!(gone >= Duration::from_secs(3), "swept too early: {gone:?}");
        // BIRD comes back: the route is fresh again.
        bird.spawn();
        poll_until("route back after BIRD restarted", WAIT, || {
            stale_of(&fib, &route) == Some(false)
        })
        .await;
        drop(bird);
        h.shutdown().await.unwrap();
    });
}

/// BIRD client 10.77.0.4 that takes several paths per prefix (RFC 7911).
fn add_path_bird_config() -> String {
    format!(
        "router id 10.77.0.4;\n\
         protocol device {{ scan time 1; }}\n\
         protocol direct {{ ipv4; }}\n\
         protocol bgp reflector {{\n\
           local 10.77.0.4 port 17900 as {AS}; neighbor 10.77.0.1 port 17901 as {AS}; direct;\n\
           hold time 9; keepalive time 3;\n\
           connect delay time 1; connect retry time 1; error wait time 1, 4;\n\
           ipv4 {{ import all; export none; add paths rx; gateway direct; }};\n\
         }}\n"
    )
}

#[test]
#[ignore = "root: BIRD in network namespaces"]
fn two_equal_paths_reach_an_add_path_client_through_tortie_rr() {
    init_log();
    let lab = lab(3);
    let anycast = "10.5.0.0/24";
    let _a = Bird::start(&lab.clients[0], spec(0, anycast)).unwrap();
    let _b = Bird::start(&lab.clients[1], spec(1, anycast)).unwrap();
    let rx = Arc::new(RawBird::start(&lab.clients[2], &add_path_bird_config()));
    let rx2 = rx.clone();
    run_in_netns(&lab.hub.path(), move || async move {
        let (h, _ev) = Speaker::start_with(dut_config(), rr_options()).unwrap();
        for i in 0..3 {
            let mut p = client_peer(i);
            if i == 2 {
                p.add_path = Some(tortie_bgp_speaker::AddPathConfig::Send);
            }
            h.add_peer(p).await.unwrap();
        }
        poll_async("3 clients Established", WAIT, || all_established(&h, 3)).await;
        let t = poll_until("the ADD-PATH client holds both paths", WAIT, || {
            let out = rx2.birdc(&["show", "route", "for", anycast, "all"]);
            out.contains("10.77.0.2") && out.contains("10.77.0.3")
        })
        .await;
        eprintln!("ADD-PATH: both paths at the client after {t:?}");
        let rib = h.rib_query(None).await.unwrap();
        let multipath = rib[0]
            .paths
            .iter()
            .filter(|p| p.best || p.multipath)
            .count();
        assert_eq!(multipath, 2, "{rib:?}");
        h.shutdown().await.unwrap();
    });
}

/// BIRD 2 as route reflector at 10.77.0.1 for two tortie clients (.2, .3).
fn bird_rr_config() -> String {
    let mut c = String::from("router id 10.77.0.1;\nprotocol device { scan time 1; }\n");
    for i in 0..2 {
        c.push_str(&format!(
            "protocol bgp client{i} {{\n\
               local 10.77.0.1 port 17900 as {AS}; neighbor {} port 17901 as {AS}; direct;\n\
               rr client; rr cluster id {CLUSTER}; hold time 9; keepalive time 3;\n\
               connect delay time 1; connect retry time 1; error wait time 1, 4;\n\
               ipv4 {{ import all; export all; gateway direct; }};\n\
             }}\n",
            client_addr(i)
        ));
    }
    c
}

/// The `speakerd` example next to this test binary (cargo test builds examples).
fn speakerd_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("speakerd");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p tortie-bgp-speaker --examples` (a plain `cargo test` builds it)",
        p.display()
    );
    p
}

#[test]
#[ignore = "root: BIRD in network namespaces"]
fn bird_reflects_between_two_tortie_clients() {
    init_log();
    let lab = lab(2);
    let _rr = RawBird::start(&lab.hub, &bird_rr_config());
    // Client B: speakerd in its own namespace, originating 10.3.2.0/24.
    let dir = Dir(std::env::temp_dir().join(unique_prefix("spkd")));
    std::fs::create_dir_all(dir.path()).unwrap();
    let status = dir.path().join("status.json");
    let conf = serde_json::json!({
        "speaker": {"asn": AS, "router_id": "10.77.0.3", "listen": "10.77.0.3:17901",
            "peers": [{"address": "10.77.0.1", "asn": AS, "port": 17900, "families": ["ipv4"],
                       "timers": {"hold_time": 9, "connect_retry": 1, "idle_hold_ms": 250}}]},
        "originate": ["10.3.2.0/24"],
        "status_file": status,
        // prefixes_received from the RIB (paths it accepted).
        "options": {"route_events": false},
    });
    std::fs::write(dir.path().join("b.json"), conf.to_string()).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.clients[1].name()])
        .arg(speakerd_path())
        .arg(dir.path().join("b.json"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _b = ChildGuard::spawn("speakerd", &mut cmd).unwrap();
    // Client A: in-process, originating 10.3.1.0/24.
    run_in_netns(&lab.clients[0].path(), move || async move {
        let cfg = SpeakerConfig {
            asn: AS,
            router_id: "10.77.0.2".parse().unwrap(),
            listen: None,
            peers: vec![],
        };
        let (h, _ev) = Speaker::start_with_listener(cfg, None);
        let mut p = PeerConfig::new("10.77.0.1".parse().unwrap(), AS);
        p.port = 17900;
        p.local_address = Some(client_addr(0));
        p.families = vec![tortie_bgp_speaker::AfiName::Ipv4];
        p.timers = client_peer(0).timers;
        h.add_peer(p).await.unwrap();
        h.originate(vec!["10.3.1.0/24".parse().unwrap()], Default::default())
            .await
            .unwrap();
        let t = poll_async("A learned B's route via BIRD", WAIT, || async {
            h.rib_query(None).await.unwrap().iter().any(|e| {
                e.prefix.to_string() == "10.3.2.0/24"
                    && e.paths[0].next_hop == "10.77.0.3".parse().ok()
                    && e.paths[0].peer == "10.77.0.1".parse().ok()
            })
        })
        .await;
        poll_until("B learned A's route via BIRD", WAIT, || {
            std::fs::read_to_string(&status).is_ok_and(|s| s.contains("\"prefixes_received\": 1"))
        })
        .await;
        eprintln!("BIRD RR: both tortie clients have each other's route after {t:?}");
        h.shutdown().await.unwrap();
    });
}
