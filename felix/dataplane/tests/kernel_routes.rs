//! Kernel tests (root): routes of each kind, repair after an external
//! delete, foreign routes left alone. Each test makes its own namespaces.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tortie_felix::input::{EncapMode, PathSource, RemoteBlock};
use tortie_felix::FelixInput;
use tortie_testkit::wait_until;

fn input() -> FelixInput {
    node_input(vec![
        bgp_block("10.244.2.0/26", "10.0.1.6"),
        RemoteBlock {
            cidr: "10.244.3.0/26".parse().unwrap(),
            next_hops: vec![ip("10.0.1.6"), ip("10.0.1.8")],
            source: PathSource::Datastore,
        },
    ])
}

#[test]
#[ignore = "root: creates network namespaces and routes"]
fn routes_of_each_kind_appear_with_the_right_attributes() {
    let lab = NodeWithPod::new("rk");
    let (n, cfg) = (&lab.n, &lab.cfg);
    let mut f = felix(n, cfg);
    let rep = apply(&mut f, cfg, input());
    assert_eq!((rep.replaced, rep.failed), (4, 0));
    assert!(f.in_sync());

    let felix_routes = routes(n, &["proto", "80"]);
    assert!(
        felix_routes.contains("10.244.1.5 dev calia scope link"),
        "{felix_routes}"
    );
    assert!(
        felix_routes.contains("blackhole 10.244.1.0/26"),
        "{felix_routes}"
    );
    let ecmp = routes(n, &["10.244.3.0/26"]);
    assert!(
        ecmp.contains("nexthop via 10.0.1.6") && ecmp.contains("nexthop via 10.0.1.8"),
        "{ecmp}"
    );
    let bgp = routes(n, &["proto", "84"]);
    assert_eq!(bgp.trim(), "10.244.2.0/26 via 10.0.1.6 dev eth0", "{bgp}");

    // A second apply with nothing to do writes nothing.
    let rep = f.apply(Instant::now()).unwrap();
    assert_eq!((rep.replaced, rep.deleted), (0, 0));
    assert_eq!(
        std::fs::read_to_string(lab.dir.path().join("mtu"))
            .unwrap()
            .trim(),
        "1500"
    );
    let proxy_arp = n
        .exec(&["cat", "/proc/sys/net/ipv4/conf/calia/proxy_arp"])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&proxy_arp.stdout).trim(), "1");
}

#[test]
#[ignore = "root: creates network namespaces and routes"]
fn foreign_routes_are_left_alone_and_stale_ones_of_ours_removed() {
    let lab = NodeWithPod::new("fr");
    let (n, cfg) = (&lab.n, &lab.cfg);
    add_route(n, "10.9.0.0/24", "10.0.1.6", "static");
    add_route(n, "10.8.0.0/24", "10.0.1.6", "bird");
    // Stale routes of ours (our numbers, inside the pool): removed.
    add_route(n, "10.244.9.0/26", "10.0.1.6", "80");
    add_route(n, "10.244.8.0/26", "10.0.1.6", "84");
    // Inside the pool but not ours: FRR's zebra BGP (186), BIRD (12), a
    // static route, and our number with a metric (FRR installs with 20).
    add_route(n, "10.244.7.0/26", "10.0.1.6", "186");
    add_route(n, "10.244.6.0/26", "10.0.1.6", "bird");
    add_route(n, "10.244.5.0/26", "10.0.1.6", "static");
    n.ip(&[
        "route",
        "add",
        "10.244.4.0/26",
        "via",
        "10.0.1.6",
        "proto",
        "84",
        "metric",
        "20",
    ])
    .unwrap();
    // Our number outside every prefix tortie owns.
    add_route(n, "192.0.2.0/24", "10.0.1.6", "84");
    let mut f = felix(n, cfg);
    let rep = apply(&mut f, cfg, input());
    assert_eq!(rep.deleted, 2, "{rep:?}");
    let all = routes(n, &[]);
    for kept in [
        "10.9.0.0/24 via 10.0.1.6 dev eth0 proto static",
        "10.8.0.0/24 via 10.0.1.6 dev eth0 proto bird",
        "10.244.7.0/26 via 10.0.1.6 dev eth0 proto bgp",
        "10.244.6.0/26 via 10.0.1.6 dev eth0 proto bird",
        "10.244.5.0/26 via 10.0.1.6 dev eth0 proto static",
        "10.244.4.0/26 via 10.0.1.6 dev eth0 proto 84 metric 20",
        "192.0.2.0/24 via 10.0.1.6 dev eth0 proto 84",
    ] {
        assert!(all.contains(kept), "{kept} is gone: {all}");
    }
    assert!(
        !all.contains("10.244.9.0") && !all.contains("10.244.8.0"),
        "{all}"
    );
}

#[test]
#[ignore = "root: creates network namespaces and routes"]
fn an_external_delete_or_change_of_our_route_is_repaired_within_a_second() {
    let lab = NodeWithPod::new("rp");
    let (n, cfg) = (&lab.n, &lab.cfg);
    let mut f = felix(n, cfg);
    apply(&mut f, cfg, input());
    let (monitors, events) = f.watch(4096).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let runner = std::thread::spawn(move || {
        f.run(&events, &stop2);
        drop(monitors);
        f
    });
    let has = |what: &str| routes(n, &[]).contains(what);
    n.ip(&["route", "del", "10.244.2.0/26"]).unwrap();
    wait_until(
        "deleted route back",
        Duration::from_secs(1),
        Duration::from_millis(10),
        || routes(n, &["proto", "84"]).contains("10.244.2.0/26 via 10.0.1.6"),
    )
    .unwrap();
    n.ip(&[
        "route",
        "replace",
        "10.244.1.0/26",
        "via",
        "10.0.1.6",
        "proto",
        "80",
    ])
    .unwrap();
    wait_until(
        "changed route restored",
        Duration::from_secs(1),
        Duration::from_millis(10),
        || has("blackhole 10.244.1.0/26"),
    )
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let f = runner.join().unwrap();
    assert!(f.in_sync());
}

#[test]
#[ignore = "root: creates network namespaces and routes"]
fn without_ipip_in_the_kernel_the_error_says_so_and_other_routes_still_apply() {
    if std::path::Path::new("/sys/module/ipip").exists() {
        return; // this kernel has IPIP: the VM suite covers tunl0
    }
    let lab = NodeWithPod::new("ni");
    let (n, cfg) = (&lab.n, &lab.cfg);
    let mut f =
        tortie_felix_dataplane::FelixDataplane::open(tortie_felix_dataplane::DataplaneOptions {
            config: cfg.clone(),
            netns: Some(n.path().into()),
            resync_interval: Duration::from_secs(90),
            ipip: tortie_felix_dataplane::IpipSupport::Manage,
            nat: tortie_felix_dataplane::NatSupport::Manage,
        })
        .unwrap();
    let mut i = input();
    i.pools[0].ipip_mode = EncapMode::Always;
    i.ipip_tunnel_addr = Some(ip("10.244.1.0"));
    f.set_desired(tortie_felix::compute(&i, cfg));
    let err = f.apply(Instant::now()).unwrap_err().to_string();
    assert!(err.contains("no IPIP support"), "{err}");
    let r = routes(n, &[]);
    assert!(r.contains("10.244.1.5 dev calia"), "{r}");
    assert!(r.contains("blackhole 10.244.1.0/26"), "{r}");
    assert!(!r.contains("tunl0"), "{r}");
}
