//! The running agent repairs the kernel (issue 14), end to end through the
//! binaries: `tortiectl lab up` (3 nodes, one pod each) in `bgp`, `vxlan`
//! and `vxlan-crosssubnet` mode; in node1's namespace each kind of route
//! the agent owns is deleted, a remote block's next hop is changed (by a
//! route of another program and in our own protocol), the VXLAN device,
//! its address, FDB and neighbour entries are removed, a workload sysctl
//! is reset and the NAT table deleted — everything comes back — while
//! foreign routes in the same table (FRR's 186, BIRD's 12, a static route,
//! our number with a metric, our number outside tortie's prefixes) stay
//! untouched across several resyncs (FelixConfiguration
//! `routeRefreshInterval: 1s`, counted on `tortie_fib_resyncs_total`).
//! Then `tortie-node --cleanup` (refused while the agent runs) takes
//! tortie's state off node1 (routes, NAT and policy tables, files) and
//! leaves the foreign routes and CNI files.
//! Needs root and the workspace's binaries next to tortie-node.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Lab, LabNode};
use serde_json::Value;

/// Routes of other programs (and of our numbers where they are not ours),
/// added in node1's main table; the gateway is node1's default gateway.
const FOREIGN: [(&str, &[&str]); 5] = [
    ("10.244.250.0/26", &["proto", "186"]),
    ("10.244.251.0/26", &["proto", "bird"]),
    ("10.244.252.0/26", &["proto", "static"]),
    ("10.244.253.0/26", &["proto", "84", "metric", "20"]),
    ("192.0.2.0/24", &["proto", "84"]),
];

fn ip(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exec(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The agent's routes in `ns`: `(protocol, line)` for protocols 80 and 84.
fn ours(ns: &str) -> BTreeSet<(u8, String)> {
    let mut out = BTreeSet::new();
    for p in [80u8, 84] {
        for l in ip(ns, &["route", "show", "proto", &p.to_string()]).lines() {
            if !l.starts_with("192.0.2.0/24") && !l.contains("metric") {
                out.insert((p, l.trim().to_string()));
            }
        }
    }
    out
}

fn foreign(ns: &str) -> BTreeSet<String> {
    let all = ip(ns, &["route", "show"]);
    all.lines()
        .filter(|l| FOREIGN.iter().any(|(dst, _)| l.starts_with(dst)))
        .map(|l| l.trim().to_string())
        .collect()
}

fn dst(line: &str) -> &str {
    let mut w = line.split_whitespace();
    match w.next() {
        Some("blackhole") => w.next().unwrap(),
        Some(d) => d,
        None => panic!("empty route line"),
    }
}

/// `/metrics` of the agent in `ns` (127.0.0.1:9099 inside it).
fn metrics(ns: &str) -> String {
    let path = PathBuf::from(format!("/run/netns/{ns}"));
    tortie_felix_dataplane::netns::in_netns(Some(&path), || {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9099").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .ok()
    .flatten()
    .unwrap_or_default()
}

fn resyncs(ns: &str) -> u64 {
    metrics(ns)
        .lines()
        .find_map(|l| l.strip_prefix("tortie_fib_resyncs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the agent's routes in `ns` are `want` again.
fn routes_back(what: &str, ns: &str, want: &BTreeSet<(u8, String)>) {
    wait_for(what, Duration::from_secs(10), || {
        let now = ours(ns);
        if &now == want {
            Ok(())
        } else {
            Err(format!(
                "missing {:?}, extra {:?}",
                want.difference(&now).collect::<Vec<_>>(),
                now.difference(want).collect::<Vec<_>>()
            ))
        }
    });
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(10), || {
        if cond() {
            Ok(())
        } else {
            Err(())
        }
    });
}

fn pool_manifest(mode: &str, nat: bool) -> String {
    let (ipip, vxlan) = match mode {
        "vxlan" => ("Never", "Always"),
        "vxlan-crosssubnet" => ("Never", "CrossSubnet"),
        _ => ("Never", "Never"),
    };
    format!("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: lab-pool\nspec:\n  cidr: 10.244.0.0/16\n  blockSize: 26\n  ipipMode: {ipip}\n  vxlanMode: {vxlan}\n  natOutgoing: {nat}\n")
}

/// Every route of the agent deleted, one after the other: each comes back.
fn delete_each_route(ns: &str, want: &BTreeSet<(u8, String)>) {
    for (p, line) in want {
        ip(ns, &["route", "del", dst(line), "proto", &p.to_string()]);
        routes_back(&format!("{line} (proto {p}) after ip route del"), ns, want);
    }
}

/// A remote block's next hop changed: by a route of another program, and
/// in our own protocol. Both come back.
fn change_next_hops(ns: &str, gw: &str, want: &BTreeSet<(u8, String)>) {
    let remote = want
        .iter()
        .find(|(_, l)| l.contains(" via ") && !l.starts_with("default"));
    let Some((p, line)) = remote else {
        panic!("no remote block in {want:?}")
    };
    ip(ns, &["route", "replace", dst(line), "via", gw]);
    routes_back(&format!("{line} after a replace by proto boot"), ns, want);
    ip(
        ns,
        &[
            "route",
            "replace",
            dst(line),
            "via",
            gw,
            "proto",
            &p.to_string(),
        ],
    );
    routes_back(&format!("{line} after a replace in our protocol"), ns, want);
}

fn vxlan_repairs(ns: &str, want: &BTreeSet<(u8, String)>) {
    let addr = ip(ns, &["-br", "addr", "show", "dev", "vxlan.calico"]);
    ip(ns, &["addr", "flush", "dev", "vxlan.calico"]);
    until("the VXLAN address", || {
        ip(ns, &["-br", "addr", "show", "dev", "vxlan.calico"]) == addr
    });
    let fdb = exec(ns, &["bridge", "fdb", "show", "dev", "vxlan.calico"]);
    let first = fdb
        .lines()
        .find(|l| l.contains(" dst "))
        .expect("an FDB entry")
        .to_string();
    let w: Vec<&str> = first.split_whitespace().collect();
    exec(
        ns,
        &[
            "bridge",
            "fdb",
            "del",
            w[0],
            "dev",
            "vxlan.calico",
            "dst",
            w[w.iter().position(|x| *x == "dst").unwrap() + 1],
        ],
    );
    until("the FDB entry", || {
        exec(ns, &["bridge", "fdb", "show", "dev", "vxlan.calico"]).contains(&first)
    });
    let neigh = ip(ns, &["neigh", "show", "dev", "vxlan.calico"]);
    let n = neigh
        .split_whitespace()
        .next()
        .expect("a VTEP neighbour")
        .to_string();
    ip(ns, &["neigh", "del", &n, "dev", "vxlan.calico"]);
    until("the VTEP neighbour", || {
        ip(ns, &["neigh", "show", "dev", "vxlan.calico"]) == neigh
    });
    ip(ns, &["link", "del", "vxlan.calico"]);
    until("the VXLAN device", || {
        exec(ns, &["bridge", "fdb", "show", "dev", "vxlan.calico"]).contains(&first)
    });
    routes_back("the routes through a new VXLAN device", ns, want);
}

fn sysctl_and_nat_repairs(lab: &Lab, mode: &str, ns: &str) {
    let cali = ip(ns, &["-br", "link", "show"])
        .lines()
        .find_map(|l| {
            l.split(['@', ' '])
                .next()
                .filter(|n| n.starts_with("cali"))
                .map(str::to_string)
        })
        .expect("a workload interface");
    let key = format!("/proc/sys/net/ipv4/conf/{cali}/proxy_arp");
    exec(ns, &["sh", "-c", &format!("echo 0 > {key}")]);
    until("proxy_arp on the workload interface", || {
        exec(ns, &["cat", &key]).trim() == "1"
    });
    lab.apply(&pool_manifest(mode, true));
    let nat = || exec(ns, &["nft", "list", "table", "ip", "tortie-nat"]).contains("masquerade");
    until("the NAT table for natOutgoing", nat);
    exec(ns, &["nft", "delete", "table", "ip", "tortie-nat"]);
    until("the NAT table after nft delete", nat);
}

/// Foreign routes stay while the agent re-reads the kernel every second.
fn foreign_stay_across_resyncs(lab: &Lab, ns: &str, before: &BTreeSet<String>) {
    let r0 = resyncs(ns);
    lab.apply("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  routeRefreshInterval: 1s\n");
    wait_for("three resyncs", Duration::from_secs(30), || {
        let r = resyncs(ns);
        if r >= r0 + 3 {
            Ok(())
        } else {
            Err(r)
        }
    });
    assert_eq!(&foreign(ns), before, "foreign routes changed");
}

fn add_foreign(ns: &str, gw: &str) -> BTreeSet<String> {
    for (dst, extra) in FOREIGN {
        let mut a = vec!["route", "add", dst, "via", gw];
        a.extend_from_slice(extra);
        ip(ns, &a);
    }
    let f = foreign(ns);
    assert_eq!(f.len(), FOREIGN.len(), "{f:?}");
    f
}

fn default_gw(ns: &str) -> String {
    ip(ns, &["route", "show", "default"])
        .split_whitespace()
        .nth(2)
        .expect("a default route")
        .to_string()
}

fn up(tag: &str, mode: &str) -> (Lab, LabNode) {
    let lab = Lab::new(tag);
    lab.up(&["--nodes", "3", "--pods-per-node", "1", "--mode", mode]);
    lab.wait_all_settled(Duration::from_secs(90));
    let n1 = lab.node("node1");
    (lab, n1)
}

fn everything_comes_back(lab: &Lab, n1: &LabNode, mode: &str) -> BTreeSet<String> {
    let ns = n1.netns.as_str();
    let gw = default_gw(ns);
    let foreign_before = add_foreign(ns, &gw);
    let want = ours(ns);
    assert!(
        want.iter().any(|(_, l)| l.starts_with("blackhole")),
        "{want:?}"
    );
    assert!(want.iter().any(|(_, l)| l.contains("dev cali")), "{want:?}");
    delete_each_route(ns, &want);
    change_next_hops(ns, &gw, &want);
    if mode.starts_with("vxlan") {
        vxlan_repairs(ns, &want);
    }
    sysctl_and_nat_repairs(lab, mode, ns);
    foreign_stay_across_resyncs(lab, ns, &foreign_before);
    routes_back("every route of ours at the end", ns, &want);
    lab.assert_full_ping_matrix(3);
    foreign_before
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn bgp_mode_the_agent_repairs_what_is_ours_and_cleanup_leaves_what_is_not() {
    let (lab, n1) = up("rpb", "bgp");
    let foreign_before = everything_comes_back(&lab, &n1, "bgp");
    cleanup_beside_foreign_state(&lab, &n1, &foreign_before);
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn vxlan_mode_the_agent_repairs_what_is_ours() {
    let (lab, n1) = up("rpv", "vxlan");
    everything_comes_back(&lab, &n1, "vxlan");
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn vxlan_crosssubnet_mode_the_agent_repairs_what_is_ours() {
    let (lab, n1) = up("rpc", "vxlan-crosssubnet");
    everything_comes_back(&lab, &n1, "vxlan-crosssubnet");
}

/// node1's entry in the lab's state file.
fn state_node(lab: &Lab, name: &str) -> Value {
    let p = Path::new("/run/tortie-lab")
        .join(&lab.name)
        .join("state.json");
    let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["plan"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap()
}

fn cleanup_cmd(lab: &Lab, n1: &LabNode, cni: &Path) -> std::process::Output {
    let st = state_node(lab, "node1");
    let ds = lab.status()["datastore"].as_str().unwrap().to_string();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &n1.netns,
            env!("CARGO_BIN_EXE_tortie-node"),
            "--cleanup",
        ])
        .args(["--datastore", &ds, "--node-name", "node1"])
        .args(["--control-socket", &n1.control_socket])
        .args(["--mtu-file", st["mtu_file"].as_str().unwrap()])
        .arg("--cni-bin-dir")
        .arg(cni.join("bin"))
        .arg("--cni-conf-dir")
        .arg(cni.join("net.d"))
        .arg("--cni-state-dir")
        .arg(cni.join("state"))
        .env_remove("TORTIE_DATASTORE")
        .output()
        .unwrap()
}

fn cleanup_beside_foreign_state(lab: &Lab, n1: &LabNode, foreign_before: &BTreeSet<String>) {
    let ns = n1.netns.as_str();
    let cni = tempfile::tempdir().unwrap();
    let c = cni.path();
    for d in ["bin", "net.d", "state/attachments"] {
        std::fs::create_dir_all(c.join(d)).unwrap();
    }
    for f in [
        "bin/tortie",
        "bin/tortie-ipam",
        "bin/bridge",
        "state/ipam.lock",
    ] {
        std::fs::write(c.join(f), "x").unwrap();
    }
    std::fs::write(
        c.join("net.d/10-tortie.conflist"),
        r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"tortie"}]}"#,
    )
    .unwrap();
    std::fs::write(
        c.join("net.d/20-other.conflist"),
        r#"{"cniVersion":"1.0.0","name":"o","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();

    assert!(
        exec(ns, &["nft", "list", "tables"]).contains("inet tortie-policy"),
        "the agent programs its policy table"
    );
    let refused = cleanup_cmd(lab, n1, c);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is running"));
    lab.ctl_ok(&["lab", "node", "stop", "node1"]);
    let out = cleanup_cmd(lab, n1, c);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(ours(ns).is_empty(), "left: {:?}\n{text}", ours(ns));
    assert_eq!(&foreign(ns), foreign_before, "{text}");
    assert!(text.contains("left 192.0.2.0/24"), "{text}");
    let tables = exec(ns, &["nft", "list", "tables"]);
    assert!(!tables.contains("tortie-nat"), "{tables}\n{text}");
    assert!(!tables.contains("tortie-policy"), "{tables}\n{text}");
    let st = state_node(lab, "node1");
    assert!(
        !Path::new(st["mtu_file"].as_str().unwrap()).exists(),
        "{text}"
    );
    for gone in [
        "bin/tortie",
        "bin/tortie-ipam",
        "net.d/10-tortie.conflist",
        "state",
    ] {
        assert!(!c.join(gone).exists(), "{gone} left: {text}");
    }
    for kept in ["bin/bridge", "net.d/20-other.conflist"] {
        assert!(c.join(kept).exists(), "{kept} removed: {text}");
    }
}
