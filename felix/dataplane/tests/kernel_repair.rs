//! Kernel tests (root): a running felix (`FelixDataplane::run` with its
//! monitors) puts back what someone else removes or changes — routes of
//! each kind, a route's next hop, the VXLAN device, its address, FDB and
//! neighbour entries, the nftables table, a workload sysctl, the MTU file —
//! leaves foreign routes alone across several resyncs, does not spin when
//! nothing changes, and `cleanup` takes felix's state away and nothing else.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use tortie_felix::desired::mac_for_node;
use tortie_felix::input::{EncapMode, PathSource, RemoteBlock, RemoteVtep};
use tortie_felix::{FelixConfig, FelixInput};
use tortie_felix_dataplane::cleanup::{cleanup, CleanupPlan};
use tortie_felix_dataplane::FelixDataplane;
use tortie_testkit::{wait_until, Netns};

fn mac(node: &str) -> String {
    mac_for_node(node)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Node n1 (VXLAN Always, NAT outgoing) with node n2 (10.0.1.6, VTEP
/// 10.244.2.0) behind the veth.
fn input() -> FelixInput {
    let mut i = node_input(vec![RemoteBlock {
        cidr: "10.244.2.0/26".parse().unwrap(),
        next_hops: vec![ip("10.0.1.6")],
        source: PathSource::Datastore,
    }]);
    i.pools = vec![pool(
        "10.244.0.0/16",
        EncapMode::Never,
        EncapMode::Always,
        true,
    )];
    i.vxlan_tunnel_addr = Some(ip("10.244.1.0"));
    i.remote_vteps = vec![RemoteVtep {
        node: "n2".into(),
        node_ip: ip("10.0.1.6"),
        vtep_ip: ip("10.244.2.0"),
        vtep_mac: mac("n2"),
    }];
    i
}

/// felix running on its own thread until stopped.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<FelixDataplane>,
}

impl Running {
    fn start(mut f: FelixDataplane) -> Self {
        let (monitors, events) = f.watch(4096).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            f.run(&events, &s2);
            drop(monitors);
            f
        });
        Self { stop, thread }
    }

    fn stop(self) -> FelixDataplane {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn back(what: &str, cond: impl FnMut() -> bool) {
    wait_until(
        what,
        Duration::from_secs(5),
        Duration::from_millis(10),
        cond,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
}

/// A command's output in the namespace; empty when it fails (e.g. `nft
/// list` of a table that is not there yet).
fn out(ns: &Netns, args: &[&str]) -> String {
    ns.exec(args)
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn fdb(ns: &Netns) -> String {
    out(ns, &["bridge", "fdb", "show", "dev", "vxlan.calico"])
}

fn vxlan_route(ns: &Netns) -> bool {
    routes(ns, &["10.244.2.0/26"]).contains("via 10.244.2.0 dev vxlan.calico proto 80 onlink")
}

fn foreign_routes(ns: &Netns) {
    add_route(ns, "10.244.7.0/26", "10.0.1.6", "186");
    add_route(ns, "10.244.6.0/26", "10.0.1.6", "bird");
    add_route(ns, "10.244.5.0/26", "10.0.1.6", "static");
    add_route(ns, "192.0.2.0/24", "10.0.1.6", "84");
}

const FOREIGN: [&str; 4] = [
    "10.244.7.0/26 via 10.0.1.6 dev eth0 proto bgp",
    "10.244.6.0/26 via 10.0.1.6 dev eth0 proto bird",
    "10.244.5.0/26 via 10.0.1.6 dev eth0 proto static",
    "192.0.2.0/24 via 10.0.1.6 dev eth0 proto 84",
];

fn assert_foreign_kept(ns: &Netns) {
    let all = routes(ns, &[]);
    for r in FOREIGN {
        assert!(all.contains(r), "{r} is gone: {all}");
    }
}

fn started(lab: &NodeWithPod) -> FelixDataplane {
    let (n, cfg) = (&lab.n, &lab.cfg);
    foreign_routes(n);
    let mut f = felix(n, cfg);
    let rep = apply(&mut f, cfg, input());
    assert_eq!(rep.failed, 0, "{rep:?}");
    assert!(vxlan_route(n), "{}", routes(n, &[]));
    f
}

#[test]
#[ignore = "root: creates network namespaces, VXLAN devices and nftables tables"]
fn routes_removed_or_changed_by_someone_else_come_back() {
    let lab = NodeWithPod::new("rr");
    let n = &lab.n;
    let run = Running::start(started(&lab));
    n.ip(&["route", "del", "10.244.2.0/26"]).unwrap();
    back("the VXLAN route", || vxlan_route(n));
    n.ip(&["route", "replace", "10.244.2.0/26", "via", "10.0.1.6"])
        .unwrap();
    back("the VXLAN route after its next hop changed", || {
        vxlan_route(n)
    });
    n.ip(&[
        "route",
        "replace",
        "10.244.2.0/26",
        "via",
        "10.0.1.6",
        "proto",
        "80",
    ])
    .unwrap();
    back("the VXLAN route after a change in our name", || {
        vxlan_route(n)
    });
    n.ip(&["route", "del", "10.244.1.5"]).unwrap();
    back("the workload route", || {
        routes(n, &["10.244.1.5"]).contains("dev calia proto 80 scope link")
    });
    n.ip(&["route", "del", "blackhole", "10.244.1.0/26"])
        .unwrap();
    back("the blackhole", || {
        routes(n, &["10.244.1.0/26"]).contains("blackhole")
    });
    let f = run.stop();
    assert!(f.in_sync());
    assert_foreign_kept(n);
}

#[test]
#[ignore = "root: creates network namespaces, VXLAN devices and nftables tables"]
fn devices_entries_nat_and_sysctls_removed_by_someone_else_come_back() {
    let lab = NodeWithPod::new("rd");
    let n = &lab.n;
    let run = Running::start(started(&lab));
    n.ip(&["addr", "flush", "dev", "vxlan.calico"]).unwrap();
    back("the VXLAN device's address", || {
        n.ip_out(&["addr", "show", "dev", "vxlan.calico"])
            .unwrap()
            .contains("10.244.1.0/32")
    });
    let fdb_entry = format!("{} dst 10.0.1.6", mac("n2"));
    n.exec(&[
        "bridge",
        "fdb",
        "del",
        &mac("n2"),
        "dev",
        "vxlan.calico",
        "dst",
        "10.0.1.6",
    ])
    .unwrap();
    back("the FDB entry", || fdb(n).contains(&fdb_entry));
    n.ip(&["neigh", "del", "10.244.2.0", "dev", "vxlan.calico"])
        .unwrap();
    back("the VTEP neighbour", || {
        n.ip_out(&["neigh", "show", "dev", "vxlan.calico"])
            .unwrap()
            .contains("10.244.2.0 lladdr")
    });
    n.ip(&["link", "del", "vxlan.calico"]).unwrap();
    back("the VXLAN device and its route", || {
        vxlan_route(n) && fdb(n).contains(&fdb_entry)
    });
    n.exec(&["nft", "delete", "table", "ip", "tortie-nat"])
        .unwrap();
    back("the NAT table", || {
        out(n, &["nft", "list", "table", "ip", "tortie-nat"]).contains("masquerade")
    });
    n.exec(&["nft", "flush", "chain", "ip", "tortie-nat", "postrouting"])
        .unwrap();
    back("the NAT rule", || {
        out(n, &["nft", "list", "table", "ip", "tortie-nat"]).contains("masquerade")
    });
    n.exec(&["sysctl", "-qw", "net.ipv4.conf.calia.proxy_arp=0"])
        .unwrap();
    back("proxy_arp on the workload interface", || {
        out(n, &["cat", "/proc/sys/net/ipv4/conf/calia/proxy_arp"]).trim() == "1"
    });
    let mtu = lab.dir.path().join("mtu");
    std::fs::remove_file(&mtu).unwrap();
    back("the MTU file", || mtu.exists());
    let f = run.stop();
    assert_foreign_kept(n);
    drop(f);
}

#[test]
#[ignore = "root: creates network namespaces, VXLAN devices and nftables tables"]
fn foreign_routes_stay_across_resyncs_and_an_idle_felix_does_nothing() {
    let lab = NodeWithPod::new("rf");
    let n = &lab.n;
    let mut f = started(&lab);
    f.set_resync_interval(Duration::from_millis(200));
    let before = f.stats();
    let run = Running::start(f);
    // Poll until the resyncs have happened (stats are read after a stop).
    let mut f = run.stop();
    let mut rounds = 0;
    while f.stats().route_resyncs < before.route_resyncs + 3 {
        rounds += 1;
        assert!(rounds < 100, "no resyncs: {:?}", f.stats());
        let run = Running::start(f);
        std::thread::park_timeout(Duration::from_millis(100));
        f = run.stop();
    }
    assert_foreign_kept(n);
    assert!(f.in_sync());
    // Idle with the default period: no pass writes anything and the device
    // step does not run again and again.
    f.set_resync_interval(Duration::from_secs(90));
    let idle = f.stats();
    let run = Running::start(f);
    std::thread::park_timeout(Duration::from_secs(1));
    let f = run.stop();
    let s = f.stats();
    assert!(
        s.device_steps <= idle.device_steps + 1 && s.route_resyncs <= idle.route_resyncs + 1,
        "busy while idle: {idle:?} -> {s:?}"
    );
}

#[test]
#[ignore = "root: creates network namespaces, VXLAN devices and nftables tables"]
fn cleanup_removes_felix_state_and_leaves_the_rest() {
    let lab = NodeWithPod::new("rc");
    let (n, cfg) = (&lab.n, &lab.cfg);
    let f = started(&lab);
    drop(f);
    let plan = CleanupPlan {
        config: FelixConfig {
            mtu_file: cfg.mtu_file.clone(),
            ..FelixConfig::default()
        },
        netns: Some(PathBuf::from(n.path())),
        protocols: vec![80, 84],
        prefixes: vec![
            "10.244.0.0/16".parse().unwrap(),
            "10.0.1.5/32".parse().unwrap(),
        ],
        nat: true,
    };
    let rep = cleanup(&plan).unwrap();
    assert_eq!(rep.routes_removed, 3, "{rep:?}");
    assert_eq!(rep.routes_left, vec!["192.0.2.0/24".parse().unwrap()]);
    assert!(
        rep.vxlan_removed && rep.nat_removed && rep.mtu_file_removed,
        "{rep:?}"
    );
    let all = routes(n, &[]);
    assert!(!all.contains("proto 80"), "{all}");
    assert_foreign_kept(n);
    assert!(n.ip_out(&["link", "show", "vxlan.calico"]).is_err());
    assert!(n
        .exec(&["nft", "list", "table", "ip", "tortie-nat"])
        .is_err());
    assert!(n
        .exec(&["nft", "list", "table", "ip6", "tortie-nat"])
        .is_err());
}
