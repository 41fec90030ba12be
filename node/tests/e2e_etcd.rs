//! End to end, the lab on an etcd on the host's loopback: a real etcd
//! (`tortie_testkit::etcd::Etcd`, 127.0.0.1), `tortiectl --datastore
//! etcd://127.0.0.1:<port> lab up --nodes 3 --pods-per-node 2 --mode bgp`.
//! The agents and the CNI plugin run inside the lab's namespaces, where
//! that loopback is not the host's, so they get the relay's URL
//! (`etcd://10.0.1.1:<port>`, the router's address) from `lab status`;
//! every node settles, every pod pings every pod, and the host's etcd holds
//! the lab's Nodes and WorkloadEndpoints. `lab down` stops the relay with
//! the agents: no recorded PID is left running.
//!
//! Needs root and tortiectl, tortie and tortie-ipam next to tortie-node.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Lab;
use serde_json::Value;
use tortie_testkit::etcd::Etcd;

const SETTLE: Duration = Duration::from_secs(90);

/// True while `pid` runs (a zombie counts as gone).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// The names of the items of `tortiectl get KIND -o json`.
fn names(lab: &Lab, kind: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&lab.tortiectl(&["get", kind, "-o", "json"], "")).unwrap();
    let mut names: Vec<String> = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("get {kind}: no items: {v}"))
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "root: a real etcd, network namespaces, tortie-node and the CNI plugin in a lab"]
fn a_lab_on_an_etcd_on_the_host_loopback_works_through_the_relay() {
    let etcd = Etcd::start().expect("start etcd");
    let url = etcd.url();
    assert!(url.starts_with("etcd://127.0.0.1:"), "{url}");
    let port = url.rsplit(':').next().unwrap().to_string();
    let lab = Lab::on_datastore("etcd", &url);
    lab.up(&["--nodes", "3", "--pods-per-node", "2", "--mode", "bgp"]);

    // tortiectl keeps the host URL; the namespaces get the relay's.
    let st = lab.status();
    assert_eq!(st["datastore"], url.as_str(), "{st:#}");
    assert_eq!(
        st["agent_datastore"],
        format!("etcd://10.0.1.1:{port}"),
        "{st:#}"
    );
    let relay = st["relay_pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no relay pid: {st:#}"));
    assert!(alive(relay), "relay {relay} not running");
    let agents: Vec<u64> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(agents.len(), 4, "3 nodes and the router: {st:#}");

    lab.wait_all_settled(SETTLE);
    lab.assert_full_ping_matrix(6);

    // The host's etcd holds what the agents and the CNI plugin wrote
    // through the relay: each agent's Node, each pod's WorkloadEndpoint.
    assert_eq!(
        names(&lab, "nodes"),
        ["node1", "node2", "node3", "router"],
        "Nodes in {url}"
    );
    assert_eq!(
        names(&lab, "workloadendpoints").len(),
        6,
        "WorkloadEndpoints in {url}"
    );

    let down = lab.ctl_ok(&["lab", "down"]);
    // 4 agents, the relay, and each of the 6 pods' servers (ports 80/81).
    assert!(down.contains("11 processes stopped"), "{down}");
    for pid in agents.iter().chain([&relay]) {
        assert!(!alive(*pid), "process {pid} still runs after lab down");
    }
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let prefix = format!("{}-", lab.name);
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&prefix),
        "namespaces left: {}",
        String::from_utf8_lossy(&ns.stdout)
    );
}
