//! Datastore helpers for the tests that run `tortie` with `tortie-ipam`:
//! the store opened from inside the node's namespace (etcd may listen on
//! its loopback), IPPools applied, WorkloadEndpoints and IPAM handles read.

use serde_json::{json, Value};
use tortie_datastore::typed;
use tortie_datastore::{BlockingStore, OpenOptions};
use tortie_ipam_core::{DatastoreIpamStore, Ipam};
use tortie_model::{parse_manifest, Kind, Resource};
use tortie_testkit::Netns;

use super::Node;

/// The IPv4 pool most tests allocate from.
pub const POOL_V4: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pods
spec:
  cidr: 10.78.0.0/16
  blockSize: 26
";

/// Runs `f` on a thread inside `ns`.
pub fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(ns.path()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A SQLite datastore URL in the node's temporary directory.
pub fn sqlite_url(node: &Node) -> String {
    format!("sqlite://{}", node.dir.path().join("tortie.db").display())
}

/// Opens the store at `url`.
pub fn store(url: &str) -> BlockingStore {
    BlockingStore::open(url, &OpenOptions::default()).unwrap()
}

/// Applies a YAML manifest (from the node's namespace).
pub fn apply(node: &Node, url: &str, manifest: &str) {
    in_ns(&node.host, || {
        let s = store(url);
        let resources = parse_manifest(manifest).unwrap();
        s.block_on(typed::apply(s.store().as_ref(), resources))
            .unwrap();
    });
}

/// Every WorkloadEndpoint.
pub fn wep_list(node: &Node, url: &str) -> Vec<tortie_model::WorkloadEndpoint> {
    in_ns(&node.host, || {
        let s = store(url);
        s.block_on(typed::list(
            s.store().as_ref(),
            Kind::WorkloadEndpoint,
            None,
        ))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Resource::WorkloadEndpoint(w) => Some(w),
            _ => None,
        })
        .collect()
    })
}

/// Names of every WorkloadEndpoint.
pub fn weps(node: &Node, url: &str) -> Vec<String> {
    wep_list(node, url)
        .into_iter()
        .map(|w| w.metadata.name)
        .collect()
}

fn ipam(url: &str) -> Ipam<DatastoreIpamStore> {
    Ipam::new(DatastoreIpamStore::open(url, &OpenOptions::default()).unwrap())
}

/// True when the pod handle of container `cid` exists.
pub fn handle_exists(node: &Node, url: &str, cid: &str) -> bool {
    in_ns(&node.host, || {
        let id = tortie_model::ipam::pod_handle(cid);
        ipam(url)
            .handles()
            .unwrap()
            .iter()
            .any(|h| h.handle_id == id)
    })
}

/// Every allocated address with its handle, as `(ip, handle)`.
pub fn allocations(node: &Node, url: &str) -> Vec<(String, String)> {
    in_ns(&node.host, || {
        let mut out = Vec::new();
        for b in ipam(url).blocks().unwrap() {
            for o in 0..b.allocations.len() {
                if let (Some(ip), Some(h)) = (b.ordinal_to_ip(o), b.handle_of(o)) {
                    out.push((ip.to_string(), h.to_string()));
                }
            }
        }
        out.sort();
        out
    })
}

/// A `tortie` + `tortie-ipam` config over `url`, node `node1`, state in the temp dir.
pub fn conf(node: &Node, url: &str, version: &str) -> Value {
    json!({
        "cniVersion": version, "name": "k8s-pod-network", "type": "tortie",
        "datastore": url, "nodename": "node1",
        "mtu_file": node.dir.path().join("mtu"), "state_dir": node.dir.path().join("state"),
        "ipam": {"type": "tortie-ipam", "assign_ipv4": "true"},
        "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}}
    })
}
