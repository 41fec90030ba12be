//! End to end, network policy through the binaries: a 3-node lab
//! (`tortiectl lab up`), three namespaces `x`, `y`, `z` (applied as
//! Kubernetes Namespaces with labels) with pods `a`, `b`, `c` each — pod
//! `a` of every namespace on node1, `b` on node2, `c` on node3, as the
//! upstream Kubernetes network-policy e2e suite lays them out — added with
//! `tortiectl lab pod add --namespace --labels`, so the CNI plugin records
//! their labels and namespace profile. Policies are applied step by step
//! with `tortiectl apply` (Kubernetes NetworkPolicies, Calico
//! NetworkPolicy and GlobalNetworkPolicy with Deny, Pass, order,
//! namespaceSelector, nets/notNets, ports, TCP and UDP, selectors matching
//! a NetworkSet and a GlobalNetworkSet), then a pod's labels change with
//! `tortiectl label workloadendpoint`. After each step every pair is
//! probed (`tortiectl lab probe -o json`, TCP and UDP, ports 80 and 81)
//! until the matrices equal the expected ones, which a small model of
//! Calico's semantics (`model.rs`) computes from the resources stored in
//! the datastore (policies after the Kubernetes conversion, endpoints with
//! their current labels, network sets).
//!
//! On node1 the agent is also read as an operator reads it (`ops.rs`): its
//! `tortie_policy_*` metrics follow an apply and equal the kernel's table;
//! a flushed table is restored; a program the kernel refuses makes
//! `/readyz` answer 503 until it succeeds again.
//!
//! Needs root and tortiectl, tortie and tortie-ipam next to tortie-node.

#[path = "../common/mod.rs"]
mod common;
mod model;
mod ops;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Lab;
use model::{Matrix, World};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);
const ENFORCE: Duration = Duration::from_secs(20);
const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [(&str, &str); 3] = [("a", "node1"), ("b", "node2"), ("c", "node3")];
/// What every step probes: protocol, its number, port.
const PROBES: [(&str, u8, u16); 4] = [
    ("tcp", 6, 80),
    ("tcp", 6, 81),
    ("udp", 17, 80),
    ("udp", 17, 81),
];
/// Local endpoints of each node (one pod per namespace).
const LOCAL: usize = 3;

/// The labels each namespace gets (its Namespace resource).
fn ns_labels(ns: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([("ns".to_string(), ns.to_string())]);
    if ns != "z" {
        l.insert("team".into(), "blue".into());
    }
    l.insert("kubernetes.io/metadata.name".into(), ns.into());
    l.insert("projectcalico.org/name".into(), ns.into());
    l
}

fn namespaces_manifest() -> String {
    NAMESPACES
        .iter()
        .map(|ns| {
            let team = if *ns == "z" { "" } else { "\n    team: blue" };
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    ns: {ns}{team}\n")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

// ------------------------------------------------------------ the suite --

fn probe(lab: &Lab, proto: &str, port: u16) -> Matrix {
    let out = lab.ctl_ok(&[
        "lab",
        "probe",
        "--port",
        &port.to_string(),
        "--protocol",
        proto,
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["port"], port);
    assert_eq!(v["protocol"], proto);
    serde_json::from_value(v["matrix"].clone()).unwrap()
}

fn diff(want: &Matrix, got: &Matrix) -> Vec<String> {
    let mut out = Vec::new();
    for (f, row) in want {
        for (t, w) in row {
            let g = got.get(f).and_then(|r| r.get(t));
            if g != Some(w) {
                out.push(format!("{f} -> {t}: expected {w}, probed {g:?}"));
            }
        }
    }
    out
}

/// The lab's datastore URL.
fn datastore(lab: &Lab) -> String {
    lab.status()["datastore"].as_str().unwrap().to_string()
}

/// Waits until every probe's matrix equals the model's (the four probes
/// run at once); returns them in the order of [`PROBES`].
fn check(lab: &Lab, step: &str) -> Vec<Matrix> {
    let world = World::read(&datastore(lab), ns_labels);
    assert_eq!(world.pods.len(), 9, "{step}: nine endpoints stored");
    let want: Vec<Matrix> = PROBES
        .iter()
        .map(|(_, n, p)| world.expected(*n, *p))
        .collect();
    let mut last = Vec::new();
    let r = tortie_testkit::wait_until(step, ENFORCE, Duration::from_millis(200), || {
        let got: Vec<Matrix> = std::thread::scope(|s| {
            let hs: Vec<_> = PROBES
                .iter()
                .map(|(proto, _, port)| s.spawn(move || probe(lab, proto, *port)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        last = PROBES
            .iter()
            .zip(want.iter().zip(&got))
            .flat_map(|((proto, _, port), (w, g))| {
                diff(w, g)
                    .into_iter()
                    .map(move |d| format!("{proto} {port}: {d}"))
            })
            .collect();
        last.is_empty()
    });
    assert!(r.is_ok(), "{step}: {r:?}\n{}", last.join("\n"));
    want
}

fn denied(m: &Matrix) -> usize {
    m.values().flat_map(|r| r.values()).filter(|v| !**v).count()
}

fn add_pods(lab: &Lab) {
    lab.apply(&namespaces_manifest());
    for ns in NAMESPACES {
        for (pod, node) in PODS {
            lab.ctl_ok(&[
                "lab",
                "pod",
                "add",
                pod,
                "--node",
                node,
                "--namespace",
                ns,
                "--labels",
                &format!("pod={pod},tier=t{pod}"),
            ]);
        }
    }
}

/// Pod `NS/POD`'s address from `lab status`.
fn pod_ip(st: &Value, id: &str) -> String {
    st["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Step 1. Kubernetes: x/a accepts only y/b (namespaceSelector AND
/// podSelector) on TCP 80; z/* egress only to the pool minus x/b's address
/// on TCP 81, to the whole pool on UDP 81, and on 80 to pods labelled
/// pod=a.
fn kubernetes_policies(xb: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: a-from-yb, namespace: x}}
spec:
  podSelector: {{matchLabels: {{pod: a}}}}
  ingress:
  - from:
    - namespaceSelector: {{matchLabels: {{ns: y}}}}
      podSelector: {{matchLabels: {{pod: b}}}}
    ports: [{{port: 80}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: z-egress, namespace: z}}
spec:
  podSelector: {{}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {{cidr: 10.244.0.0/16, except: [{xb}/32]}}
    ports: [{{protocol: TCP, port: 81}}]
  - to:
    - ipBlock: {{cidr: 10.244.0.0/16}}
    ports: [{{protocol: UDP, port: 81}}]
  - to:
    - namespaceSelector: {{}}
      podSelector: {{matchLabels: {{pod: a}}}}
    ports: [{{port: 80, endPort: 80}}]
"#
    )
}

/// Step 2. Calico: a GlobalNetworkPolicy (order 10) denies team-blue pods'
/// ingress from namespace z on TCP 81 and passes from pods labelled pod=c;
/// a NetworkPolicy in y (order 5) allows x's ingress to y/c ahead of
/// everything (notNets, ports range).
const CALICO_POLICIES: &str = r#"apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-z-81}
spec:
  order: 10
  namespaceSelector: team == 'blue'
  selector: all()
  types: [Ingress]
  ingress:
  - action: Deny
    protocol: TCP
    source: {namespaceSelector: ns == 'z'}
    destination: {ports: [81]}
  - action: Pass
    source: {selector: pod == 'c', namespaceSelector: all()}
  - action: Allow
    protocol: TCP
    source: {notNets: [10.245.0.0/16]}
    destination: {ports: ["80:80"]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: yc-from-x, namespace: y}
spec:
  order: 5
  selector: pod == 'c'
  ingress:
  - action: Allow
    protocol: TCP
    source: {namespaceSelector: ns == 'x'}
    destination: {ports: ["80:81"]}
"#;

/// Step 3. Network sets: a GlobalNetworkSet `ext` (role=ext) holds x/b's
/// and y/c's addresses, a NetworkSet `friends` in x (kind=friend) holds
/// z/c's. A GlobalNetworkPolicy (order 20) on z's pods denies UDP from
/// `role == 'ext'` and allows the rest; a NetworkPolicy in x (order 1)
/// lets x/b accept UDP 81 from `kind == 'friend'` (the set in its own
/// namespace) and denies every other UDP.
fn network_sets(xb: &str, yc: &str, zc: &str) -> String {
    format!(
        r#"apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {{name: ext, labels: {{role: ext}}}}
spec: {{nets: [{xb}/32, {yc}/32]}}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {{name: friends, namespace: x, labels: {{kind: friend}}}}
spec: {{nets: [{zc}/32]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: z-no-udp-from-ext}}
spec:
  order: 20
  namespaceSelector: ns == 'z'
  selector: all()
  ingress:
  - action: Deny
    protocol: UDP
    source: {{selector: role == 'ext'}}
  - action: Allow
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: xb-udp-from-friends, namespace: x}}
spec:
  order: 1
  selector: pod == 'b'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: UDP
    source: {{selector: kind == 'friend'}}
    destination: {{ports: [81]}}
  - action: Deny
    protocol: UDP
"#
    )
}

fn run_truth_table(mode: &str) {
    let lab = Lab::new(&format!("pol{}", &mode[..1]));
    lab.up(&["--nodes", "3", "--pods-per-node", "0", "--mode", mode]);
    add_pods(&lab);
    lab.wait_all_settled(SETTLE);
    let st = lab.status();
    let ip = |id: &str| pod_ip(&st, id);
    let node1 = lab.node("node1").netns;

    // 0. No policy: everything reaches everything.
    let m0 = check(&lab, "no policy");
    assert_eq!(m0.iter().map(denied).sum::<usize>(), 0);

    // 1. Kubernetes policies (TCP and UDP rules).
    lab.apply(&kubernetes_policies(&ip("x/b")));
    let m1 = check(&lab, "kubernetes policies");
    assert!(m1.iter().all(|m| denied(m) > 0));
    assert_ne!(m1[0], m1[1], "the ports differ");
    assert_ne!(m1[1], m1[3], "the protocols differ");

    // 2. Calico policies; node1's metrics follow the apply.
    let mut m2 = Vec::new();
    ops::metrics_follow(&node1, LOCAL, || {
        lab.apply(CALICO_POLICIES);
        m2 = check(&lab, "calico policies");
    });
    assert_ne!(m1, m2, "the Calico policies change the matrices");

    // 3. Selectors matching a NetworkSet and a GlobalNetworkSet.
    lab.apply(&network_sets(&ip("x/b"), &ip("y/c"), &ip("z/c")));
    let m3 = check(&lab, "network sets");
    assert_ne!(m2, m3, "the network sets' policies change the matrices");
    assert!(
        m3[3]["z/c"]["x/b"],
        "x/b accepts UDP 81 from its friend z/c"
    );
    assert!(!m3[3]["x/a"]["x/b"], "... and from no one else");
    assert!(!m3[2]["z/c"]["x/b"], "... nor on 80");
    assert!(!m3[3]["x/b"]["z/a"], "z denies UDP from the ext set's x/b");
    assert!(m3[3]["y/b"]["z/a"], "... and accepts it from y/b");

    // Repair: someone flushes node1's policy table; the agent restores it.
    let before = ops::table(&node1).rules;
    assert!(before > 0, "node1's policy table has rules");
    ops::nft(&node1, &["flush", "table", "inet", "tortie-policy"]);
    let r =
        tortie_testkit::wait_until("table restored", ENFORCE, Duration::from_millis(50), || {
            ops::try_table(&node1).is_ok_and(|t| t.rules == before)
        });
    assert!(r.is_ok(), "{r:?}: {:?}", ops::try_table(&node1));
    assert_eq!(check(&lab, "after repair"), m3);

    // Readiness: a program the kernel refuses → 503, then 200 again.
    ops::readiness_follows_a_refused_program(&node1, LOCAL);
    assert_eq!(check(&lab, "after a refused program"), m3);

    // 4. A label change: y/b becomes pod=a (a set update) and the matrix flips.
    lab.tortiectl(
        &[
            "label",
            "workloadendpoint",
            "node2-k8s-b-eth0",
            "-n",
            "y",
            "pod=a",
            "--overwrite",
        ],
        "",
    );
    let m4 = check(&lab, "label change");
    assert_ne!(m3, m4, "the label change flips results");

    // 5. Deleting the policies and sets restores full reachability.
    for (kind, name, ns) in [
        ("networkpolicy", "knp.default.a-from-yb", Some("x")),
        ("networkpolicy", "knp.default.z-egress", Some("z")),
        ("networkpolicy", "yc-from-x", Some("y")),
        ("networkpolicy", "xb-udp-from-friends", Some("x")),
        ("globalnetworkpolicy", "deny-z-81", None),
        ("globalnetworkpolicy", "z-no-udp-from-ext", None),
        ("networkset", "friends", Some("x")),
        ("globalnetworkset", "ext", None),
    ] {
        let mut args = vec!["delete", kind, name];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        lab.tortiectl(&args, "");
    }
    let m5 = check(&lab, "policies deleted");
    assert_eq!(m5.iter().map(denied).sum::<usize>(), 0);
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn policy_truth_table_bgp() {
    run_truth_table("bgp");
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn policy_truth_table_vxlan() {
    run_truth_table("vxlan");
}
