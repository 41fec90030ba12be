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
//! Does not use `common` (shared by the other e2e tests); it copies the
//! few pieces it needs.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use tortie_node::api::NodeStatus;
use tortie_testkit::etcd::Etcd;

const SETTLE: Duration = Duration::from_secs(90);

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab on `datastore`, torn down (`lab down`) when dropped.
struct EtcdLab {
    bin: PathBuf,
    name: String,
    datastore: String,
}

impl EtcdLab {
    fn new(tag: &str, datastore: String) -> Self {
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
            bin: dir.join("tortiectl"),
            name,
            datastore,
        }
    }

    /// `tortiectl --datastore <etcd> ARGS`.
    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(["--datastore", &self.datastore])
            .args(args)
            .env_remove("TORTIE_DATASTORE")
            .output()
            .unwrap()
    }

    /// `tortiectl --datastore <etcd> ARGS`, which must succeed.
    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "tortiectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `tortiectl lab CMD ARGS --name LAB -o json` as JSON.
    fn lab_json(&self, cmd: &str) -> Value {
        let out = self.ctl(&["lab", cmd, "--name", &self.name, "-o", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("lab {cmd} printed no JSON ({e}): {}", text(&out)))
    }

    /// Waits until every node is ready, in sync and has every session up.
    fn wait_all_settled(&self) {
        let mut last = Value::Null;
        let r = tortie_testkit::wait_until(
            "every node settled",
            SETTLE,
            Duration::from_millis(250),
            || {
                last = self.lab_json("status");
                last["nodes"].as_array().is_some_and(|nodes| {
                    nodes.iter().all(|n| {
                        serde_json::from_value::<NodeStatus>(n["status"].clone()).is_ok_and(|s| {
                            s.ready
                                && s.fib.in_sync
                                && s.peers.iter().all(|p| p.state == "Established")
                        })
                    })
                })
            },
        );
        assert!(r.is_ok(), "{r:?}: {last:#}");
    }
}

impl Drop for EtcdLab {
    fn drop(&mut self) {
        let _ = self.ctl(&["lab", "down", "--name", &self.name]);
    }
}

/// True while `pid` runs (a zombie counts as gone).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// The names of the items of `tortiectl get KIND -o json`.
fn names(lab: &EtcdLab, kind: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&lab.ctl_ok(&["get", kind, "-o", "json"])).unwrap();
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
    let lab = EtcdLab::new("etcd", url.clone());
    lab.ctl_ok(&[
        "lab",
        "up",
        "--name",
        &lab.name,
        "--nodes",
        "3",
        "--pods-per-node",
        "2",
        "--mode",
        "bgp",
    ]);

    // tortiectl keeps the host URL; the namespaces get the relay's.
    let st = lab.lab_json("status");
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

    lab.wait_all_settled();
    let ping = lab.lab_json("ping");
    assert_eq!(ping["total"], 30, "{ping}");
    assert_eq!(ping["failed"], serde_json::json!([]), "{ping}");
    assert_eq!(ping["ok"], 30, "{ping}");

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

    let down = lab.ctl_ok(&["lab", "down", "--name", &lab.name]);
    assert!(down.contains("5 processes stopped"), "{down}");
    for pid in agents.iter().chain([&relay]) {
        assert!(!alive(*pid), "process {pid} still runs after lab down");
    }
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let prefix = format!("{}-", lab.name);
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&prefix),
        "namespaces left: {}",
        text(&ns)
    );
}
