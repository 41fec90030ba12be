//! End to end: `tortiectl lab up` builds nodes in namespaces on two subnets,
//! every node runs tortie-node, pods come from the CNI plugin, and every pod
//! pings every pod — in BGP mode (same subnet and across the router) and in
//! VXLAN cross-subnet mode. Needs root and the workspace's binaries
//! (tortiectl, tortie, tortie-ipam) next to tortie-node.

mod common;

use common::Lab;

fn every_pod_reaches_every_pod(tag: &str, extra: &[&str]) {
    let lab = Lab::new(tag);
    let mut args = vec!["--nodes", "3", "--pods-per-node", "2"];
    args.extend_from_slice(extra);
    lab.up(&args);
    let v = lab.status();
    for n in v["nodes"].as_array().unwrap() {
        assert!(n["status"].is_object(), "{n}");
    }
    // 6 pods: 30 pings, all answered.
    lab.assert_full_ping_matrix(6);
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn bgp_mode_pods_reach_each_other_on_one_subnet_and_across_the_router() {
    every_pod_reaches_every_pod("labb", &["--mode", "bgp"]);
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn vxlan_crosssubnet_pods_reach_each_other() {
    every_pod_reaches_every_pod("labv", &["--mode", "vxlan-crosssubnet"]);
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn bgp_mode_with_two_route_reflectors_instead_of_the_mesh() {
    every_pod_reaches_every_pod("labr", &["--mode", "bgp", "--route-reflectors", "2"]);
}

#[test]
#[ignore = "root: network namespaces and a tortie-node process"]
fn ipip_mode_says_clearly_when_the_kernel_has_no_ipip() {
    if std::path::Path::new("/sys/module/ipip").exists() {
        return;
    }
    let lab = Lab::new("labi");
    let out = lab.ctl(&["lab", "up", "--mode", "ipip-crosssubnet"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ipip kernel module"), "{err}");
}
