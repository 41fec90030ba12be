//! Kernel tests (root): the restart hold. A felix that starts over routes
//! of a previous run keeps the BGP routes (and the VXLAN state) the desired
//! state does not name yet, writes new and changed routes at once, removes
//! stale routes of other protocols, and sweeps what it kept on release.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tortie_felix::desired::mac_for_node;
use tortie_felix::input::{EncapMode, RemoteVtep};
use tortie_felix::{FelixConfig, FelixInput};
use tortie_testkit::Netns;

/// The node, its peer with a second address 10.0.1.7 (a next hop BGP may
/// move a block to), and the pod.
fn node_with_peers(tag: &str) -> NodeWithPod {
    let lab = NodeWithPod::new(tag);
    lab.peer
        .ip(&["addr", "add", "10.0.1.7/24", "dev", "eth0"])
        .unwrap();
    lab
}

/// The first run: two BGP blocks via 10.0.1.6 written, then a route of a
/// block that goes away while felix is down. (After a restart the input is
/// what the datastore alone gives, [`node_input`] with the BGP routes known
/// so far.)
fn run_before_the_crash(n: &Netns, cfg: &FelixConfig) {
    let mut f = felix(n, cfg);
    let before = node_input(vec![
        bgp_block("10.244.2.0/26", "10.0.1.6"),
        bgp_block("10.244.3.0/26", "10.0.1.6"),
    ]);
    assert_eq!(apply(&mut f, cfg, before).failed, 0);
    // A route of a block that went away while felix was down.
    add_route(n, "10.244.9.0/26", "10.0.1.6", "80");
}

#[test]
#[ignore = "root: creates network namespaces and routes"]
fn held_bgp_routes_stay_until_release_while_new_ones_are_written_at_once() {
    let lab = node_with_peers("hr");
    let (n, cfg) = (&lab.n, &lab.cfg);
    run_before_the_crash(n, cfg);

    let mut f = felix(n, cfg);
    f.hold(&[cfg.proto_bgp], Instant::now() + Duration::from_secs(600));
    let rep = apply(&mut f, cfg, node_input(vec![]));
    assert_eq!((rep.held, rep.deleted, rep.failed), (2, 1, 0), "{rep:?}");
    let bgp = routes(n, &["proto", "84"]);
    assert!(
        bgp.contains("10.244.2.0/26 via 10.0.1.6") && bgp.contains("10.244.3.0/26 via 10.0.1.6"),
        "kept: {bgp}"
    );
    let felix_routes = routes(n, &["proto", "80"]);
    assert!(!felix_routes.contains("10.244.9.0"), "{felix_routes}");
    assert!(
        felix_routes.contains("10.244.1.5 dev calia"),
        "{felix_routes}"
    );
    assert!(!f.in_sync(), "kept routes are not the desired state");
    assert!(f.holding());

    // BGP resyncs: 10.244.2.0/26 now via .7 — written during the hold.
    let rep = apply(
        &mut f,
        cfg,
        node_input(vec![bgp_block("10.244.2.0/26", "10.0.1.7")]),
    );
    assert_eq!((rep.replaced, rep.held, rep.deleted), (1, 1, 0), "{rep:?}");
    assert!(routes(n, &["10.244.2.0/26"]).contains("via 10.0.1.7"));

    f.release_hold();
    let rep = f.apply(Instant::now()).unwrap();
    assert_eq!((rep.deleted, rep.held), (1, 0), "{rep:?}");
    let bgp = routes(n, &["proto", "84"]);
    assert_eq!(bgp.trim(), "10.244.2.0/26 via 10.0.1.7 dev eth0", "{bgp}");
    assert!(f.in_sync());
    assert!(!f.holding());
}

#[test]
#[ignore = "root: creates network namespaces and routes"]
fn a_hold_that_is_never_released_ends_at_its_bound() {
    let lab = node_with_peers("hb");
    let (n, cfg) = (&lab.n, &lab.cfg);
    run_before_the_crash(n, cfg);

    let mut f = felix(n, cfg);
    let t0 = Instant::now();
    f.hold(&[cfg.proto_bgp], t0 + Duration::from_secs(30));
    apply(&mut f, cfg, node_input(vec![]));
    assert_eq!(routes(n, &["proto", "84"]).lines().count(), 2);
    let rep = f.apply(t0 + Duration::from_secs(30)).unwrap();
    assert_eq!(rep.deleted, 2, "{rep:?}");
    assert!(routes(n, &["proto", "84"]).trim().is_empty());
    assert!(!f.holding());
}

fn vxlan_input(vteps: bool) -> FelixInput {
    let mac = mac_for_node("n2")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let mut i = node_input(vec![]);
    i.pools = vec![pool(
        "10.244.0.0/16",
        EncapMode::Never,
        EncapMode::Always,
        false,
    )];
    i.vxlan_tunnel_addr = Some(ip("10.244.1.0"));
    if vteps {
        i.remote_vteps = vec![RemoteVtep {
            node: "n2".into(),
            node_ip: ip("10.0.1.6"),
            vtep_ip: ip("10.244.2.0"),
            vtep_mac: mac,
        }];
        i.remote_blocks = vec![bgp_block("10.244.2.0/26", "10.0.1.6")];
    }
    i
}

fn vxlan_state(n: &Netns) -> (String, String) {
    let fdb = n
        .exec(&["bridge", "fdb", "show", "dev", "vxlan.calico"])
        .unwrap();
    let neigh = n
        .ip_out(&["neigh", "show", "dev", "vxlan.calico"])
        .unwrap_or_default();
    (String::from_utf8_lossy(&fdb.stdout).into_owned(), neigh)
}

#[test]
#[ignore = "root: creates network namespaces and VXLAN devices"]
fn the_vxlan_device_and_vtep_entries_stay_while_held_and_go_after() {
    let lab = node_with_peers("hv");
    let (n, cfg) = (&lab.n, &lab.cfg);
    let mut f = felix(n, cfg);
    assert_eq!(apply(&mut f, cfg, vxlan_input(true)).failed, 0);
    let (fdb, neigh) = vxlan_state(n);
    assert!(fdb.contains("dst 10.0.1.6"), "{fdb}");
    assert!(neigh.contains("10.244.2.0"), "{neigh}");
    drop(f);

    // Restarted without the VTEP (and, below, without VXLAN at all) known yet.
    let mut f = felix(n, cfg);
    f.hold(&[cfg.proto_bgp], Instant::now() + Duration::from_secs(600));
    apply(&mut f, cfg, vxlan_input(false));
    let (fdb, neigh) = vxlan_state(n);
    assert!(fdb.contains("dst 10.0.1.6"), "kept: {fdb}");
    assert!(neigh.contains("10.244.2.0"), "kept: {neigh}");
    let mut plain = node_input(vec![]);
    plain.host_interfaces = f.host_interfaces().unwrap();
    f.set_desired(tortie_felix::compute(&plain, cfg));
    f.apply(Instant::now()).unwrap();
    assert!(n.ip_out(&["link", "show", "vxlan.calico"]).is_ok());
    assert!(routes(n, &["10.244.2.0/26"]).contains("vxlan.calico"));

    f.release_hold();
    f.apply(Instant::now()).unwrap();
    assert!(n.ip_out(&["link", "show", "vxlan.calico"]).is_err());
    assert!(routes(n, &["proto", "84"]).trim().is_empty());
}
