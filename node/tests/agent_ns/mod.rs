//! Shared by the tests that run `tortie-node` agents in namespaces of
//! their own beside a real BIRD (`passwords.rs`, `peer_fields.rs`,
//! `bgp_filters.rs`): the agent's command line, namespaces on a bridge,
//! what the agent's control socket reports, and datastore writes.

#![allow(dead_code)] // each test file uses a part

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tortie_datastore::{typed, BlockingStore};
use tortie_ipam_core::{AssignRequest, DatastoreIpamStore, Ipam};
use tortie_node::api::{query, NodeStatus, PeerReport, Request, Response};
use tortie_testkit::{wait_until, Netns};

/// `tortie-node` in `ns` as node `name` on datastore `db`, its control
/// socket, MTU file and log (stderr) in `dir`, its address autodetected on
/// `eth0`; callers add `--dataplane` and whatever their case needs.
pub fn node_command(ns: &Netns, name: &str, db: &str, dir: &Path) -> Command {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_tortie-node"));
    cmd.args(["--datastore", db, "--node-name", name])
        .args(["--ip-autodetect", "interface=eth0"])
        .arg("--control-socket")
        .arg(dir.join(format!("{name}.sock")))
        .arg("--mtu-file")
        .arg(dir.join(format!("{name}.mtu")))
        .env_remove("TORTIE_NODE_IP")
        .env_remove("TORTIE_BGP_PORT")
        .env_remove("TORTIE_SECRETS_DIR")
        .env("RUST_LOG", "info")
        .stderr(log);
    cmd
}

/// A namespace on the bridge of `sw` with `cidr` on its `eth0`.
pub fn member(sw: &Netns, prefix: &str, tag: &str, cidr: &str) -> Netns {
    let ns = Netns::create(&format!("{prefix}{tag}")).unwrap();
    ns.plug_into_bridge("eth0", cidr, sw.name(), "br0", &format!("p{tag}"))
        .unwrap();
    ns
}

/// The agent's status, `None` while its socket does not answer.
pub fn status(sock: &Path) -> Option<NodeStatus> {
    match query(sock, &Request::Status).ok()? {
        Response::Status(s) => Some(s),
        _ => None,
    }
}

/// The agent's report of its session with `addr`.
pub fn peer(sock: &Path, addr: &str) -> Option<PeerReport> {
    status(sock)?
        .peers
        .into_iter()
        .find(|p| p.address.to_string() == addr)
}

/// The Loc-RIB prefixes, as `tortiectl bgp rib` gets them.
pub fn rib_prefixes(sock: &Path) -> Vec<String> {
    match query(sock, &Request::Rib { afi: None }) {
        Ok(Response::Rib(r)) => r.into_iter().map(|e| e.prefix.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Applies a manifest as `tortiectl apply` does.
pub fn apply(store: &BlockingStore, yaml: &str) {
    let r = tortie_model::parse_manifest(yaml).unwrap();
    store
        .block_on(typed::apply(store.store().as_ref(), r))
        .unwrap();
}

/// The /26 block `node` gets when one address is assigned to it from
/// 10.244.0.0/16 (as a pod ADD would).
pub fn block_for(ipam: &Ipam<DatastoreIpamStore>, node: &str) -> ipnet::IpNet {
    let pools = ipam.store().pool_views(node).unwrap();
    let mut req = AssignRequest::v4(&format!("h-{node}"), node, 1);
    req.v4_pools = vec!["10.244.0.0/16".parse().unwrap()];
    let ip = ipam.auto_assign(&req, &pools).unwrap().v4[0];
    ipnet::IpNet::new(ip, 26).unwrap().trunc()
}

/// Polls `cond` every 100 ms for up to `secs` seconds; fails the test after.
pub fn wait(what: &str, secs: u64, cond: impl FnMut() -> bool) {
    wait_until(
        what,
        Duration::from_secs(secs),
        Duration::from_millis(100),
        cond,
    )
    .unwrap();
}
