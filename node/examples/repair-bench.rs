//! `repair-bench`: how fast the running agent puts back a route someone
//! deleted, next to felix's library loop in the same run; and how long a
//! SIGTERM takes to stop an agent.
//!
//! ```text
//! cargo build --release -p tortiectl -p tortie-cni -p tortie-node --example repair-bench
//! sudo target/release/examples/repair-bench [DELETIONS]
//! ```
//! Agent: a `tortiectl lab up --nodes 3 --pods-per-node 1 --mode bgp` lab
//! of the release binaries next to this example (its namespaces named
//! `tt…`, torn down at the end, also on a panic). In node1's namespace the
//! agent's routes (the workload /32, the blackhole of its block, node2's
//! block learned over BGP, on node1's subnet) are deleted in turn over
//! netlink, DELETIONS
//! times (default 100); each is timed from the delete request to the
//! agent's RTM_NEWROUTE for the same prefix, read on a monitor socket.
//! Library: felix's `FelixDataplane::run` with its monitors in a fresh
//! namespace holding the same three kinds of route, timed the same way.
//! Stop: SIGTERM to node2's agent until its process is gone (lab state).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::RouteNetlinkMessage;
use serde_json::Value;
use tortie_felix::{RouteKey, RouteSpec};
use tortie_felix_dataplane::nl::NlSocket;
use tortie_felix_dataplane::routes::{delete_msg, NetlinkRoutes};
use tortie_testkit::{unique_prefix, Netns};

/// `RTNLGRP_IPV4_ROUTE`.
const V4_ROUTES: u32 = 7;

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A lab that is taken down when dropped.
struct Lab {
    ctl: PathBuf,
    name: String,
}

impl Lab {
    fn run(&self, args: &[&str]) -> Value {
        let out = Command::new(&self.ctl)
            .args(args)
            .args(["--name", &self.name])
            .env_remove("TORTIE_DATASTORE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tortiectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(&self.ctl)
            .args(["lab", "down", "--name", &self.name])
            .output();
    }
}

fn settled(lab: &Lab) -> bool {
    let v = lab.run(&["lab", "status", "-o", "json"]);
    v["nodes"].as_array().is_some_and(|ns| {
        ns.iter().all(|n| {
            let s = &n["status"];
            s["ready"] == true
                && s["fib"]["in_sync"] == true
                && s["peers"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["state"] == "Established"))
        })
    })
}

fn is_key(r: &RouteMessage, key: &RouteKey) -> bool {
    let dst = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(*d),
        _ => None,
    });
    let dst = dst.unwrap_or(Ipv4Addr::UNSPECIFIED);
    IpNet::new(IpAddr::V4(dst), r.header.destination_prefix_length).ok() == Some(key.dst)
}

/// Deletes `routes` in turn `n` times in the namespace at `ns`; the time of
/// each from the delete to the RTM_NEWROUTE that puts it back, in ms.
fn time_repairs(ns: &Path, routes: &[(RouteKey, RouteSpec)], n: usize) -> Vec<f64> {
    let mut sock = NlSocket::open(Some(ns)).unwrap();
    let mut events = NlSocket::open_groups(Some(ns), &[V4_ROUTES]).unwrap();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (key, spec) = &routes[i % routes.len()];
        let t = Instant::now();
        sock.request(
            RouteNetlinkMessage::DelRoute(delete_msg(key, spec.protocol)),
            0,
        )
        .unwrap();
        let mut deleted = false;
        'wait: loop {
            for m in events.recv_events().unwrap() {
                match m {
                    RouteNetlinkMessage::DelRoute(r) if is_key(&r, key) => deleted = true,
                    RouteNetlinkMessage::NewRoute(r) if deleted && is_key(&r, key) => break 'wait,
                    _ => {}
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{key:?} never came back"
            );
        }
        out.push(t.elapsed().as_secs_f64() * 1e3);
        // Let the agent settle before the next deletion (its own write's echo).
        std::thread::park_timeout(Duration::from_millis(20));
    }
    out
}

fn our_routes(ns: &Path) -> Vec<(RouteKey, RouteSpec)> {
    let mut r = NetlinkRoutes::open(Some(ns), 254, &[80, 84]).unwrap();
    let all = tortie_felix::RouteDataplane::dump_routes(&mut r).unwrap();
    all.into_iter()
        .filter(|(k, _)| k.dst.to_string().starts_with("10.244."))
        .collect()
}

fn agent(n: usize) -> (Vec<f64>, f64) {
    let lab = Lab {
        ctl: bin_dir().join("tortiectl"),
        name: unique_prefix("rb").trim_end_matches('-').to_string(),
    };
    lab.run(&[
        "lab",
        "up",
        "--nodes",
        "3",
        "--pods-per-node",
        "1",
        "--mode",
        "bgp",
    ]);
    let t = Instant::now();
    while !settled(&lab) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the lab never settled"
        );
        std::thread::park_timeout(Duration::from_millis(200));
    }
    let ns = PathBuf::from(format!("/run/netns/{}-node1", lab.name));
    let mut routes = our_routes(&ns);
    while routes.len() < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "node1 never got node2's block: {routes:?}"
        );
        std::thread::park_timeout(Duration::from_millis(200));
        routes = our_routes(&ns);
    }
    println!(
        "agent: node1 holds {} routes of ours: {:?}",
        routes.len(),
        routes.iter().map(|(k, _)| k.dst).collect::<Vec<_>>()
    );
    assert!(
        routes.len() >= 3,
        "expected a workload route, a blackhole and a remote block"
    );
    let times = time_repairs(&ns, &routes, n);
    (times, stop_time(&lab))
}

/// SIGTERM to node2's agent until it is gone, in seconds.
fn stop_time(lab: &Lab) -> f64 {
    let state = Path::new("/run/tortie-lab")
        .join(&lab.name)
        .join("state.json");
    let v: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    let pid = v["pids"]["node2"].as_u64().unwrap();
    let alive =
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    let t = Instant::now();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    while alive() {
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::park_timeout(Duration::from_millis(5));
    }
    t.elapsed().as_secs_f64()
}

/// felix's library loop in a fresh namespace: a workload route, a
/// blackhole and a remote block, as node1 holds them.
fn library(n: usize) -> Vec<f64> {
    use tortie_felix::input::{LocalWorkload, PathSource, Pool, RemoteBlock};
    let ns = Netns::create(&format!("{}l", unique_prefix("rb"))).unwrap();
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "cali0",
    ])
    .unwrap();
    ns.ip(&["addr", "add", "10.0.1.5/24", "dev", "eth0"])
        .unwrap();
    for d in ["eth0", "cali0"] {
        ns.ip(&["link", "set", d, "up"]).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = tortie_felix::FelixConfig {
        mtu_file: dir.path().join("mtu").display().to_string(),
        ..Default::default()
    };
    let path = PathBuf::from(ns.path());
    let mut f =
        tortie_felix_dataplane::FelixDataplane::open(tortie_felix_dataplane::DataplaneOptions {
            config: cfg.clone(),
            netns: Some(path.clone()),
            resync_interval: Duration::from_secs(90),
            ipip: tortie_felix_dataplane::IpipSupport::Skip,
            nat: tortie_felix_dataplane::NatSupport::Skip,
        })
        .unwrap();
    let input = tortie_felix::FelixInput {
        node_name: "n1".into(),
        node_ip: Some("10.0.1.5/24".parse().unwrap()),
        pools: vec![Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            ipip_mode: Default::default(),
            vxlan_mode: Default::default(),
            nat_outgoing: false,
        }],
        workloads: vec![LocalWorkload {
            interface: "cali0".into(),
            addresses: vec!["10.244.1.5".parse().unwrap()],
        }],
        local_blocks: vec!["10.244.1.0/26".parse().unwrap()],
        remote_blocks: vec![RemoteBlock {
            cidr: "10.244.2.0/26".parse().unwrap(),
            next_hops: vec!["10.0.1.6".parse().unwrap()],
            source: PathSource::Bgp,
        }],
        ..Default::default()
    };
    f.set_desired(tortie_felix::compute(&input, &cfg));
    f.apply(Instant::now()).unwrap();
    let (monitors, events) = f.watch(4096).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let th = std::thread::spawn(move || {
        f.run(&events, &s2);
        drop(monitors);
    });
    let routes = our_routes(&path);
    let times = time_repairs(&path, &routes, n);
    stop.store(true, Ordering::Relaxed);
    th.join().unwrap();
    times
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[i.clamp(1, s.len()) - 1]
}

fn line(what: &str, v: &[f64]) {
    println!(
        "{what:<28} p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} deletions)",
        pct(v, 50.0),
        pct(v, 90.0),
        pct(v, 99.0),
        pct(v, 100.0),
        v.len()
    );
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100, |s| s.parse().unwrap());
    let lib = library(n);
    let (agent, stop) = agent(n);
    line("repair, felix library", &lib);
    line("repair, running tortie-node", &agent);
    println!("SIGTERM -> agent gone         {:.3} s", stop);
}
