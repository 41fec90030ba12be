//! End to end, network policy through the binaries: a 3-node lab
//! (`tortiectl lab up`), three namespaces `x`, `y`, `z` (applied as
//! Kubernetes Namespaces with labels) with pods `a`, `b`, `c` each — pod
//! `a` of every namespace on node1, `b` on node2, `c` on node3, as the
//! upstream Kubernetes network-policy e2e suite lays them out — added with
//! `tortiectl lab pod add --namespace --labels`, so the CNI plugin records
//! their labels and namespace profile. Policies are applied step by step
//! with `tortiectl apply` (Kubernetes NetworkPolicies, Calico
//! NetworkPolicy and GlobalNetworkPolicy with Deny, Pass, order,
//! namespaceSelector, nets/notNets, ports), then a pod's labels change
//! with `tortiectl label workloadendpoint`. After each step every pair is
//! probed (`tortiectl lab probe -o json`, TCP 80 and 81) until the matrix
//! equals the expected one, which a small model of Calico's semantics in
//! this file computes from the resources stored in the datastore (policies
//! after the Kubernetes conversion, endpoints with their current labels).
//!
//! Needs root and tortiectl, tortie and tortie-ipam next to tortie-node.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use common::Lab;
use serde_json::Value;
use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_model::policy::{Action, EntityRule, PolicyType, Rule};
use tortie_model::{Kind, Port, Resource, Selector, WorkloadEndpoint};

const SETTLE: Duration = Duration::from_secs(60);
const ENFORCE: Duration = Duration::from_secs(20);
const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [(&str, &str); 3] = [("a", "node1"), ("b", "node2"), ("c", "node3")];
const PORTS: [u16; 2] = [80, 81];

type Matrix = BTreeMap<String, BTreeMap<String, bool>>;

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

// ---------------------------------------------------------------- model --

/// What the model knows of the cluster.
struct World {
    pods: Vec<WorkloadEndpoint>,
    nps: Vec<tortie_model::NetworkPolicy>,
    gnps: Vec<tortie_model::GlobalNetworkPolicy>,
}

/// One policy as the model runs it.
struct Pol<'a> {
    id: String,
    ns: Option<&'a str>,
    order: Option<f64>,
    ingress: &'a [Rule],
    egress: &'a [Rule],
}

fn sel(s: &str) -> Option<Selector> {
    (!s.is_empty()).then(|| Selector::parse(s).unwrap())
}

fn ns_of(w: &WorkloadEndpoint) -> &str {
    w.metadata.namespace.as_deref().unwrap_or("default")
}

fn ip_of(w: &WorkloadEndpoint) -> IpAddr {
    w.spec.ip_networks[0].addr()
}

impl World {
    fn read(lab: &Lab) -> World {
        let url = lab.status()["datastore"].as_str().unwrap().to_string();
        let store = BlockingStore::open(&url, &OpenOptions::default()).unwrap();
        let list = |k| {
            store
                .block_on(typed::list(store.store().as_ref(), k, None))
                .unwrap()
        };
        let mut w = World {
            pods: Vec::new(),
            nps: Vec::new(),
            gnps: Vec::new(),
        };
        for r in list(Kind::WorkloadEndpoint) {
            if let Resource::WorkloadEndpoint(e) = r {
                w.pods.push(e);
            }
        }
        for r in list(Kind::NetworkPolicy) {
            if let Resource::NetworkPolicy(p) = r {
                w.nps.push(p);
            }
        }
        for r in list(Kind::GlobalNetworkPolicy) {
            if let Resource::GlobalNetworkPolicy(p) = r {
                w.gnps.push(p);
            }
        }
        w
    }

    fn pol_list(&self) -> Vec<Pol<'_>> {
        let mut v: Vec<Pol<'_>> = Vec::new();
        for p in &self.nps {
            let ns = p.metadata.namespace.as_deref().unwrap_or("default");
            v.push(Pol {
                id: format!("{ns}/{}", p.metadata.name),
                ns: Some(ns),
                order: p.spec.order.map(|o| o.value()),
                ingress: &p.spec.ingress,
                egress: &p.spec.egress,
            });
        }
        for p in &self.gnps {
            v.push(Pol {
                id: p.metadata.name.clone(),
                ns: None,
                order: p.spec.order.map(|o| o.value()),
                ingress: &p.spec.ingress,
                egress: &p.spec.egress,
            });
        }
        v
    }

    /// Does the policy apply to `w` in direction `dir`?
    fn applies(&self, id: &str, w: &WorkloadEndpoint, dir: PolicyType) -> bool {
        let l = &w.metadata.labels;
        if let Some(p) = self.nps.iter().find(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or("default"),
                p.metadata.name
            ) == id
        }) {
            let types = if p.spec.types.is_empty() {
                tortie_model::policy::default_types(&p.spec.ingress, &p.spec.egress)
            } else {
                p.spec.types.clone()
            };
            return types.contains(&dir)
                && p.metadata.namespace.as_deref() == Some(ns_of(w))
                && sel(&p.spec.selector).is_none_or(|s| s.matches(l));
        }
        let p = self.gnps.iter().find(|p| p.metadata.name == id).unwrap();
        let types = if p.spec.types.is_empty() {
            tortie_model::policy::default_types(&p.spec.ingress, &p.spec.egress)
        } else {
            p.spec.types.clone()
        };
        types.contains(&dir)
            && sel(&p.spec.selector).is_none_or(|s| s.matches(l))
            && sel(&p.spec.namespace_selector).is_none_or(|s| s.matches(&ns_labels(ns_of(w))))
    }

    /// Does side `e` of a rule of a policy in `ns` match `peer` (the pod at
    /// that address) and port `port`?
    fn side(&self, e: &EntityRule, ns: Option<&str>, peer: &WorkloadEndpoint, port: u16) -> bool {
        let a = ip_of(peer);
        if !e.nets.is_empty() && !e.nets.iter().any(|n| n.contains(&a)) {
            return false;
        }
        if e.not_nets.iter().any(|n| n.contains(&a)) {
            return false;
        }
        let positive = !e.selector.is_empty() || !e.namespace_selector.is_empty();
        if positive {
            let ns_ok = match (sel(&e.namespace_selector), ns) {
                (Some(s), _) => s.matches(&ns_labels(ns_of(peer))),
                (None, Some(pns)) => ns_of(peer) == pns,
                (None, None) => true,
            };
            if !(ns_ok && sel(&e.selector).is_none_or(|s| s.matches(&peer.metadata.labels))) {
                return false;
            }
        }
        if let Some(not) = sel(&e.not_selector) {
            if not.matches(&peer.metadata.labels) {
                return false;
            }
        }
        let in_range =
            |p: &Port| matches!(p, Port::Range { min, max } if (*min..=*max).contains(&port));
        if e.not_ports.iter().any(in_range) {
            return false;
        }
        e.ports.is_empty() || e.ports.iter().any(in_range)
    }

    fn rule(
        &self,
        r: &Rule,
        ns: Option<&str>,
        src: &WorkloadEndpoint,
        dst: &WorkloadEndpoint,
        port: u16,
    ) -> bool {
        r.protocol.as_ref().is_none_or(|p| p.number() == Some(6))
            && r.not_protocol
                .as_ref()
                .is_none_or(|p| p.number() != Some(6))
            && self.side(&r.source, ns, src, 40000)
            && self.side(&r.destination, ns, dst, port)
    }

    /// Calico's verdict for endpoint `w` in direction `dir` (profiles of
    /// the namespaces allow everything).
    fn verdict(
        &self,
        w: &WorkloadEndpoint,
        dir: PolicyType,
        src: &WorkloadEndpoint,
        dst: &WorkloadEndpoint,
        port: u16,
    ) -> bool {
        let mut pols: Vec<Pol<'_>> = self
            .pol_list()
            .into_iter()
            .filter(|p| self.applies(&p.id, w, dir))
            .collect();
        if pols.is_empty() {
            return true;
        }
        pols.sort_by(|a, b| {
            let key = |p: &Pol<'_>| (p.order.is_none(), p.order.unwrap_or(0.0));
            key(a)
                .partial_cmp(&key(b))
                .unwrap()
                .then_with(|| a.id.cmp(&b.id))
        });
        for p in pols {
            let rules = if dir == PolicyType::Ingress {
                p.ingress
            } else {
                p.egress
            };
            for r in rules {
                if self.rule(r, p.ns, src, dst, port) {
                    match r.action {
                        Action::Allow => return true,
                        Action::Deny => return false,
                        Action::Pass => return true,
                        Action::Log => {}
                    }
                }
            }
        }
        false
    }

    fn expected(&self, port: u16) -> Matrix {
        let id = |w: &WorkloadEndpoint| format!("{}/{}", ns_of(w), w.spec.pod);
        let mut m = Matrix::new();
        for s in &self.pods {
            for d in &self.pods {
                let ok = id(s) == id(d)
                    || (self.verdict(s, PolicyType::Egress, s, d, port)
                        && self.verdict(d, PolicyType::Ingress, s, d, port));
                m.entry(id(s)).or_default().insert(id(d), ok);
            }
        }
        m
    }
}

// ------------------------------------------------------------ the suite --

fn probe(lab: &Lab, port: u16) -> Matrix {
    let out = lab.ctl_ok(&["lab", "probe", "--port", &port.to_string(), "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["port"], port);
    assert_eq!(v["protocol"], "tcp");
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

/// Waits until both ports' matrices equal the model's; returns them.
fn check(lab: &Lab, step: &str) -> Vec<Matrix> {
    let world = World::read(lab);
    assert_eq!(world.pods.len(), 9, "{step}: nine endpoints stored");
    let want: Vec<Matrix> = PORTS.iter().map(|p| world.expected(*p)).collect();
    let mut last = Vec::new();
    let r = tortie_testkit::wait_until(step, ENFORCE, Duration::from_millis(200), || {
        last = PORTS
            .iter()
            .zip(&want)
            .flat_map(|(p, w)| {
                diff(w, &probe(lab, *p))
                    .into_iter()
                    .map(move |d| format!("port {p}: {d}"))
            })
            .collect();
        last.is_empty()
    });
    assert!(r.is_ok(), "{step}: {r:?}\n{}", last.join("\n"));
    want
}

fn nft(netns: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "nft"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rules in `netns`'s policy table.
fn rule_count(netns: &str) -> usize {
    let v: Value = serde_json::from_str(&nft(
        netns,
        &["-j", "list", "table", "inet", "tortie-policy"],
    ))
    .unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("rule").is_some())
        .count()
}

fn denied(m: &Matrix) -> usize {
    m.values().flat_map(|r| r.values()).filter(|v| !**v).count()
}

fn run_truth_table(mode: &str) {
    let lab = Lab::new(&format!("pol{}", &mode[..1]));
    lab.up(&["--nodes", "3", "--pods-per-node", "0", "--mode", mode]);
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
    lab.wait_all_settled(SETTLE);
    let st = lab.status();
    let ip = |id: &str| {
        st["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()["ip"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // 0. No policy: everything reaches everything.
    let m = check(&lab, "no policy");
    assert_eq!(denied(&m[0]), 0);

    // 1. Kubernetes: x/a accepts only y/b (namespaceSelector AND
    //    podSelector) on TCP 80; z/* egress only to the pool minus x/b's
    //    address, on 81 and on 80 to pods labelled pod=a.
    lab.apply(&format!(
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
    - namespaceSelector: {{}}
      podSelector: {{matchLabels: {{pod: a}}}}
    ports: [{{port: 80, endPort: 80}}]
"#,
        xb = ip("x/b")
    ));
    let m1 = check(&lab, "kubernetes policies");
    assert!(denied(&m1[0]) > 0 && denied(&m1[1]) > 0);
    assert_ne!(m1[0], m1[1], "the ports differ");

    // 2. Calico: a GlobalNetworkPolicy (order 10) denies team-blue pods'
    //    ingress from namespace z on 81 and passes from pods labelled
    //    pod=c; a NetworkPolicy in y (order 5) allows x's ingress to y/c
    //    ahead of everything (notNets, ports range).
    lab.apply(
        r#"apiVersion: projectcalico.org/v3
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
"#,
    );
    let m2 = check(&lab, "calico policies");
    assert_ne!(m1, m2, "the Calico policies change the matrices");

    // Repair: someone flushes node1's policy table; the agent restores it.
    let node1 = lab.node("node1").netns;
    let before = rule_count(&node1);
    assert!(before > 0, "node1's policy table has rules");
    nft(&node1, &["flush", "table", "inet", "tortie-policy"]);
    let r =
        tortie_testkit::wait_until("table restored", ENFORCE, Duration::from_millis(50), || {
            rule_count(&node1) == before
        });
    assert!(r.is_ok(), "{r:?}: {} rules of {before}", rule_count(&node1));
    assert_eq!(check(&lab, "after repair"), m2);

    // 3. A label change: y/b becomes pod=a (a set update) and the matrix flips.
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
    let m3 = check(&lab, "label change");
    assert_ne!(m2, m3, "the label change flips results");

    // 4. Deleting the policies restores full reachability.
    for (kind, name, ns) in [
        ("networkpolicy", "knp.default.a-from-yb", Some("x")),
        ("networkpolicy", "knp.default.z-egress", Some("z")),
        ("networkpolicy", "yc-from-x", Some("y")),
        ("globalnetworkpolicy", "deny-z-81", None),
    ] {
        let mut args = vec!["delete", kind, name];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        lab.tortiectl(&args, "");
    }
    let m4 = check(&lab, "policies deleted");
    assert_eq!(denied(&m4[0]) + denied(&m4[1]), 0);
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
