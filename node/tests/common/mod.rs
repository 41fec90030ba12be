//! Shared by the end-to-end tests (`e2e_*.rs`): a lab built by the real
//! `tortiectl lab up` under a unique name and torn down (`lab down`) when
//! dropped, also on failure; what a test reads from it (lab status, each
//! node's Loc-RIB through `tortiectl bgp rib`, each namespace's kernel FIB
//! through `ip -j route`); and polling with a deadline.
//!
//! Must not: touch any namespace but the lab's own and those a test
//! creates with `tortie_testkit::Netns`.

#![allow(dead_code)] // each test file uses a part

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::Value;
use tortie_node::api::NodeStatus;
use tortie_node::learned::RibEntry;

/// The pool every lab uses.
pub const POOL: &str = "10.244.0.0/16";

/// A lab, torn down when dropped.
pub struct Lab {
    bin: PathBuf,
    /// The lab's name (prefix of its namespaces).
    pub name: String,
    /// The global `--datastore` of every `tortiectl` call (`None`: the
    /// lab's own SQLite file).
    datastore: Option<String>,
}

/// One node of a lab (including `router` in bgp mode and `rrK`).
#[derive(Debug, Clone)]
pub struct LabNode {
    /// Node name.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its namespace.
    pub netns: String,
    /// Its tortie-node control socket.
    pub control_socket: String,
    /// Its status, when it answered.
    pub status: Option<NodeStatus>,
}

/// One pod of a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPod {
    /// Pod name, e.g. `node1-pod2`.
    pub name: String,
    /// Its node.
    pub node: String,
    /// Its namespace.
    pub netns: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// One IPv4 route of a namespace's main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// `default` or a prefix (`/32` written without length, as `ip` does).
    pub dst: String,
    /// Route type (`unicast`, `blackhole`, ...).
    pub kind: String,
    /// Gateways (one, or several for ECMP).
    pub gateways: Vec<String>,
    /// Output device, when one.
    pub dev: Option<String>,
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Lab {
    /// A lab named from `tag` (not built yet). Panics if the binaries are
    /// not next to tortie-node.
    pub fn new(tag: &str) -> Self {
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
            datastore: None,
        }
    }

    /// As [`Lab::new`], on `datastore` (`tortiectl --datastore URL lab ...`).
    pub fn on_datastore(tag: &str, datastore: &str) -> Self {
        let mut lab = Self::new(tag);
        lab.datastore = Some(datastore.to_string());
        lab
    }

    /// `tortiectl [--datastore URL] ARGS --name LAB` (for `lab ...` commands).
    pub fn ctl(&self, args: &[&str]) -> Output {
        let ds = self.datastore.as_deref().map(|d| ["--datastore", d]);
        Command::new(&self.bin)
            .args(ds.iter().flatten())
            .args(args)
            .args(["--name", &self.name])
            .env_remove("TORTIE_DATASTORE")
            .output()
            .unwrap()
    }

    /// `tortiectl ARGS --name LAB`, which must succeed.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "tortiectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `tortiectl --datastore <the lab's> ARGS` with `stdin`, which must succeed.
    pub fn tortiectl(&self, args: &[&str], stdin: &str) -> String {
        let ds = self.status()["datastore"].as_str().unwrap().to_string();
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--datastore", &ds])
            .args(args)
            .env_remove("TORTIE_DATASTORE");
        let out = tortie_testkit::process::output_with_stdin(&mut cmd, stdin).unwrap();
        assert!(out.status.success(), "tortiectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies a manifest to the lab's datastore.
    pub fn apply(&self, manifest: &str) {
        self.tortiectl(&["apply", "-f", "-"], manifest);
    }

    /// `lab up ARGS`, which must succeed.
    pub fn up(&self, args: &[&str]) {
        let mut a = vec!["lab", "up"];
        a.extend_from_slice(args);
        self.ctl_ok(&a);
    }

    /// `lab status -o json`.
    pub fn status(&self) -> Value {
        let out = self.ctl(&["lab", "status", "-o", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("lab status printed no JSON ({e}): {}", text(&out)))
    }

    /// The nodes with their status.
    pub fn nodes(&self) -> Vec<LabNode> {
        let v = self.status();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| LabNode {
                name: n["name"].as_str().unwrap().to_string(),
                ip: n["ip"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap(),
                netns: n["netns"].as_str().unwrap().to_string(),
                control_socket: n["control_socket"].as_str().unwrap().to_string(),
                status: serde_json::from_value(n["status"].clone()).ok(),
            })
            .collect()
    }

    /// One node by name.
    pub fn node(&self, name: &str) -> LabNode {
        self.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The pods and their addresses.
    pub fn pods(&self) -> Vec<LabPod> {
        let v = self.status();
        v["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| LabPod {
                name: p["name"].as_str().unwrap().to_string(),
                node: p["node"].as_str().unwrap().to_string(),
                netns: p["netns"].as_str().unwrap().to_string(),
                ip: p["ip"].as_str().unwrap().parse().unwrap(),
            })
            .collect()
    }

    /// `lab ping -o json`: `{"total", "ok", "failed"}`.
    pub fn ping(&self) -> Value {
        let out = self.ctl(&["lab", "ping", "-o", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("lab ping printed no JSON ({e}): {}", text(&out)))
    }

    /// Every pod answers every other pod: `n * (n - 1)` pings, none failed.
    pub fn assert_full_ping_matrix(&self, pods: usize) {
        let r = self.ping();
        let total = pods * (pods - 1);
        assert_eq!(r["total"], total, "{r}");
        assert_eq!(r["failed"], serde_json::json!([]), "{r}");
        assert_eq!(r["ok"], total, "{r}");
    }

    /// Waits until every node answers, is ready, has its FIB in sync and
    /// every configured session Established.
    pub fn wait_all_settled(&self, timeout: Duration) {
        let mut last = Vec::new();
        let r = tortie_testkit::wait_until("every node settled", timeout, ms(250), || {
            last = self.nodes();
            last.iter().all(|n| n.status.as_ref().is_some_and(settled))
        });
        assert!(r.is_ok(), "{r:?}: {last:#?}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.ctl(&["lab", "down"]);
    }
}

/// Ready, FIB in sync, every session Established.
pub fn settled(s: &NodeStatus) -> bool {
    s.ready && s.fib.in_sync && s.peers.iter().all(|p| p.state == "Established")
}

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls `cond` every 200 ms for up to `timeout`; panics naming `what`
/// and the last value `cond` saw (its `Err`).
pub fn wait_for<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> Result<(), T>,
) {
    let mut last = None;
    let r = tortie_testkit::wait_until(what, timeout, ms(200), || match cond() {
        Ok(()) => true,
        Err(e) => {
            last = Some(e);
            false
        }
    });
    assert!(r.is_ok(), "{r:?}; last seen: {last:#?}");
}

/// The `/26` block of a pod address (the lab's pool has `/26` blocks).
pub fn block_of(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 26).unwrap().trunc()
}

/// Each node's blocks, from its pods' addresses.
pub fn blocks_by_node(pods: &[LabPod]) -> BTreeMap<String, BTreeSet<Ipv4Net>> {
    let mut m: BTreeMap<String, BTreeSet<Ipv4Net>> = BTreeMap::new();
    for p in pods {
        m.entry(p.node.clone()).or_default().insert(block_of(p.ip));
    }
    m
}

/// The node's Loc-RIB (IPv4) through `tortiectl bgp rib -o json`, by prefix.
pub fn rib(lab: &Lab, node: &LabNode) -> Result<BTreeMap<String, RibEntry>, String> {
    let out = Command::new(&lab.bin)
        .args(["bgp", "rib", "--afi", "ipv4", "-o", "json"])
        .args(["--control-socket", &node.control_socket])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(text(&out));
    }
    let entries: Vec<RibEntry> = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .map(|e| (e.prefix.to_string(), e))
        .collect())
}

/// The IPv4 routes of a namespace's main table (`ip -j -n NS -4 route`).
pub fn kernel_routes(netns: &str) -> Vec<KernelRoute> {
    let out = Command::new("ip")
        .args(["-j", "-n", netns, "-4", "route", "show", "table", "main"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ip route in {netns}: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut gateways: Vec<String> = r["gateway"]
                .as_str()
                .map(str::to_string)
                .into_iter()
                .collect();
            if let Some(hops) = r["nexthops"].as_array() {
                gateways.extend(
                    hops.iter()
                        .filter_map(|h| h["gateway"].as_str().map(str::to_string)),
                );
            }
            KernelRoute {
                dst: r["dst"].as_str().unwrap_or_default().to_string(),
                kind: r["type"].as_str().unwrap_or("unicast").to_string(),
                gateways,
                dev: r["dev"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// The kernel route of `netns` for exactly `dst`, if any.
pub fn kernel_route(netns: &str, dst: &str) -> Option<KernelRoute> {
    kernel_routes(netns).into_iter().find(|r| r.dst == dst)
}

/// One ping from a namespace (1 s timeout, twice); true if answered.
pub fn ping(netns: &str, ip: Ipv4Addr) -> bool {
    let once = || {
        Command::new("ip")
            .args(["netns", "exec", netns, "ping", "-c", "1", "-W", "1", "-q"])
            .arg(ip.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    once() || once()
}

/// One IPAM block as `tortiectl ipam show --show-blocks -o json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamBlock {
    /// Addresses in use.
    pub in_use: u64,
    /// `host:<node>`, when affine.
    pub affinity: Option<String>,
}

/// Every IPAM block of the lab's datastore, by CIDR.
pub fn ipam_blocks(lab: &Lab) -> BTreeMap<Ipv4Net, IpamBlock> {
    let out = lab.tortiectl(&["ipam", "show", "--show-blocks", "-o", "json"], "");
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|i| i["grouping"] == "Block")
        .map(|i| {
            (
                i["cidr"].as_str().unwrap().parse().unwrap(),
                IpamBlock {
                    in_use: i["in_use"].as_u64().unwrap(),
                    affinity: i["affinity"].as_str().map(str::to_string),
                },
            )
        })
        .collect()
}

/// True if `netns` reaches `ip` without a gateway (a connected subnet).
pub fn directly_connected(netns: &str, ip: Ipv4Addr) -> bool {
    let out = Command::new("ip")
        .args(["-j", "-n", netns, "-4", "route", "get"])
        .arg(ip.to_string())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v[0]["gateway"].is_null() && v[0]["dev"].is_string()
}

/// Checks `cond` every 200 ms for `period`; panics the first time it fails.
/// For "X stays": a withdrawal in flight would show up within the period.
pub fn holds_for<T: std::fmt::Debug>(
    what: &str,
    period: Duration,
    mut cond: impl FnMut() -> Result<(), T>,
) {
    let start = std::time::Instant::now();
    while start.elapsed() < period {
        if let Err(e) = cond() {
            panic!("{what} stopped holding after {:?}: {e:#?}", start.elapsed());
        }
        std::thread::sleep(ms(200));
    }
}

/// Where a block must (not) be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Learned over BGP with its owner as next hop, and in the kernel
    /// through the owner when the owner is on a connected subnet.
    Routed,
    /// Neither in the Loc-RIB nor in the kernel.
    Gone,
}

/// Checks `block` (of node `owner`) on `observer`: its Loc-RIB (through
/// `tortiectl bgp rib`) and its kernel FIB.
pub fn check_block(
    lab: &Lab,
    observer: &LabNode,
    owner: &LabNode,
    block: Ipv4Net,
    expect: Expect,
) -> Result<(), String> {
    let rib = rib(lab, observer)?;
    let key = block.to_string();
    let entry = rib.get(&key);
    let kernel = kernel_route(&observer.netns, &key);
    let who = format!("{} about {key} of {}", observer.name, owner.name);
    match expect {
        Expect::Routed => {
            let e = entry.ok_or_else(|| format!("{who}: not in the Loc-RIB: {rib:?}"))?;
            if !e.paths.iter().any(|p| p.next_hop == Some(owner.ip.into())) {
                return Err(format!("{who}: no path with next hop {}: {e:?}", owner.ip));
            }
            if directly_connected(&observer.netns, owner.ip) {
                let k = kernel.ok_or_else(|| format!("{who}: not in the kernel"))?;
                if !k.gateways.contains(&owner.ip.to_string()) {
                    return Err(format!("{who}: kernel route not via {}: {k:?}", owner.ip));
                }
            }
        }
        Expect::Gone => {
            if let Some(e) = entry {
                return Err(format!("{who}: still in the Loc-RIB: {e:?}"));
            }
            if let Some(k) = kernel {
                return Err(format!("{who}: still in the kernel: {k:?}"));
            }
        }
    }
    Ok(())
}

/// Checks every block of `blocks` (by owner name) on every observer but its owner.
pub fn check_blocks(
    lab: &Lab,
    observers: &[LabNode],
    owners: &[LabNode],
    blocks: &BTreeMap<String, BTreeSet<Ipv4Net>>,
    expect: Expect,
) -> Result<(), String> {
    for (owner_name, set) in blocks {
        let owner = owners
            .iter()
            .find(|n| &n.name == owner_name)
            .ok_or_else(|| format!("no node {owner_name}"))?;
        for observer in observers.iter().filter(|o| o.name != owner.name) {
            for b in set {
                check_block(lab, observer, owner, *b, expect)?;
            }
        }
    }
    Ok(())
}
