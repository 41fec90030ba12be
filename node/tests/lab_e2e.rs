//! End to end: `tortiectl lab up` builds nodes in namespaces on two subnets,
//! every node runs tortie-node, pods come from the CNI plugin, and every pod
//! pings every pod — in BGP mode (same subnet and across the router) and in
//! VXLAN cross-subnet mode. Needs root and the workspace's binaries
//! (tortiectl, tortie, tortie-ipam) next to tortie-node.

use std::path::PathBuf;
use std::process::{Command, Output};

struct Lab {
    ctl: PathBuf,
    name: String,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let node = PathBuf::from(env!("CARGO_BIN_EXE_tortie-node"));
        let dir = node.parent().unwrap().to_path_buf();
        for b in ["tortiectl", "tortie", "tortie-ipam"] {
            assert!(
                dir.join(b).exists(),
                "{b} is missing in {}: build with `cargo build -p tortiectl -p tortie-cni` first",
                dir.display()
            );
        }
        let name = tortie_testkit::unique_prefix(tag)
            .trim_end_matches('-')
            .to_string();
        Self {
            ctl: dir.join("tortiectl"),
            name,
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.ctl)
            .args(args)
            .args(["--name", &self.name])
            .env_remove("TORTIE_DATASTORE")
            .output()
            .unwrap()
    }

    fn up(&self, extra: &[&str]) {
        let mut args = vec!["lab", "up", "--nodes", "3", "--pods-per-node", "2"];
        args.extend_from_slice(extra);
        let out = self.ctl(&args);
        assert!(
            out.status.success(),
            "lab up failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ping(&self) -> serde_json::Value {
        let out = self.ctl(&["lab", "ping", "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "lab ping printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.ctl(&["lab", "down"]);
    }
}

fn every_pod_reaches_every_pod(tag: &str, extra: &[&str]) {
    let lab = Lab::new(tag);
    lab.up(extra);
    let status = lab.ctl(&["lab", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for n in v["nodes"].as_array().unwrap() {
        assert!(n["status"].is_object(), "{n}");
    }
    let r = lab.ping();
    assert_eq!(r["total"], 30, "{r}");
    assert_eq!(r["failed"], serde_json::json!([]), "{r}");
    assert_eq!(r["ok"], 30, "{r}");
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
