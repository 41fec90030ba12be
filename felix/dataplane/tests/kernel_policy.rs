//! Kernel tests (root): the policy table programmed with `nft` into a node
//! namespace, real TCP/UDP/ICMP between pod namespaces on `cali*` veths
//! and an outside host, for each rule kind; label changes as set updates;
//! deletions removing exactly their objects; drift detected and repaired.

#[path = "common/podnet.rs"]
mod podnet;

use std::collections::BTreeSet;
use std::net::IpAddr;

use podnet::{From, PodNet, OUTSIDE_IP};
use tortie_felix::policy::nft::Ruleset;
use tortie_felix::policy::{compile, diff, PolicyConfig, PolicyInput};
use tortie_felix_dataplane::policy::{PolicyProgrammer, TableState};
use tortie_model::{parse_manifest, Resource};

const NODE: &str = "n1";

/// Pods: 0 = x/a (app=web), 1 = x/b (app=db), 2 = y/c (app=web).
fn net(tag: &str) -> PodNet {
    let mut n = PodNet::new(tag, &[("x", "a"), ("x", "b"), ("y", "c")]);
    n.serve(&[80, 81]);
    n
}

fn pod_labels(i: usize) -> &'static [(&'static str, &'static str)] {
    [
        &[("app", "web")][..],
        &[("app", "db")][..],
        &[("app", "web")][..],
    ][i]
}

fn base_input(n: &PodNet) -> PolicyInput {
    PolicyInput {
        node_name: NODE.into(),
        endpoints: (0..3)
            .map(|i| n.pods[i].endpoint(NODE, pod_labels(i)))
            .collect(),
        ..PolicyInput::default()
    }
}

/// Adds the resources of `yaml` to `input` (validated and defaulted as stored).
fn add(input: &mut PolicyInput, yaml: &str) {
    for r in parse_manifest(yaml).unwrap_or_else(|e| panic!("{e}")) {
        match r.defaulted() {
            Resource::NetworkPolicy(p) => input.network_policies.push(p),
            Resource::GlobalNetworkPolicy(p) => input.global_network_policies.push(p),
            Resource::NetworkSet(s) => input.network_sets.push(s),
            Resource::GlobalNetworkSet(s) => input.global_network_sets.push(s),
            Resource::Profile(p) => input.profiles.push(p),
            other => panic!("{}", other.id()),
        }
    }
}

fn ruleset(input: &PolicyInput) -> Ruleset {
    let c = compile(input, &PolicyConfig::default());
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    c.ruleset
}

fn programmer(n: &PodNet) -> PolicyProgrammer {
    PolicyProgrammer::new(Some(&n.host_path()), "tortie-policy")
}

fn ip(n: &PodNet, i: usize) -> IpAddr {
    n.pods[i].ip
}

/// Asserts every `(from, to, proto, port, allowed)` at once.
fn expect(n: &PodNet, what: &str, cases: &[(From, IpAddr, &str, u16, bool)]) {
    let probes: Vec<(From, IpAddr, &str, u16)> = cases
        .iter()
        .map(|(f, t, p, port, _)| (*f, *t, *p, *port))
        .collect();
    let got = n.probe_all(&probes);
    let wrong: Vec<String> = cases
        .iter()
        .zip(&got)
        .filter(|((.., want), got)| want != *got)
        .map(|((f, t, p, port, want), _)| format!("{f:?} -> {t} {p}/{port}: want {want}"))
        .collect();
    assert!(wrong.is_empty(), "{what}: {wrong:#?}");
}

const KNP: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: x}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: web}}}]
      ports: [{port: 80}]
"#;

const KNP_MORE: &str = r#"
    - from: [{namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: web}}}]
      ports: [{protocol: UDP, port: 80, endPort: 81}]
    - from: [{ipBlock: {cidr: 192.0.2.0/24, except: [EXCEPT]}}]
      ports: [{port: 81}]
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {team: b}}
"#;

#[test]
#[ignore = "root: creates network namespaces and nftables tables"]
fn each_rule_kind_allows_and_denies_real_traffic() {
    let n = net("kpol");
    let mut p = programmer(&n);
    let (a, b, c) = (ip(&n, 0), ip(&n, 1), ip(&n, 2));
    let out: IpAddr = OUTSIDE_IP.parse().unwrap();
    let (pa, pc) = (From::Pod(0), From::Pod(2));

    p.apply(&ruleset(&base_input(&n))).unwrap();
    expect(
        &n,
        "no policy: the namespace profiles allow all",
        &[
            (pa, b, "tcp", 80, true),
            (pc, b, "udp", 81, true),
            (From::Outside, b, "tcp", 81, true),
            (From::Pod(1), a, "tcp", 81, true),
        ],
    );
    assert!(n.ping(pa, b));

    let mut i = base_input(&n);
    add(&mut i, KNP);
    p.apply(&ruleset(&i)).unwrap();
    expect(
        &n,
        "podSelector + numbered port",
        &[
            (pa, b, "tcp", 80, true),
            (pa, b, "tcp", 81, false),
            (pa, b, "udp", 80, false),
            (pc, b, "tcp", 80, false),
            (From::Outside, b, "tcp", 80, false),
            (From::Pod(1), a, "tcp", 80, true),
        ],
    );
    assert!(!n.ping(pa, b), "ICMP is not allowed by a TCP rule");

    let mut i = base_input(&n);
    add(
        &mut i,
        &(KNP.to_string() + &KNP_MORE.replace("EXCEPT", "192.0.2.0/30")),
    );
    p.apply(&ruleset(&i)).unwrap();
    expect(
        &n,
        "namespaceSelector AND podSelector, endPort, ipBlock except",
        &[
            (pc, b, "udp", 80, true),
            (pc, b, "udp", 81, true),
            (pc, b, "tcp", 80, false),
            (pa, b, "udp", 80, false),
            (From::Outside, b, "tcp", 81, false),
        ],
    );
    let mut i = base_input(&n);
    add(
        &mut i,
        &(KNP.to_string() + &KNP_MORE.replace("EXCEPT", "192.0.2.128/25")),
    );
    p.apply(&ruleset(&i)).unwrap();
    expect(
        &n,
        "outside no longer excepted",
        &[
            (From::Outside, b, "tcp", 81, true),
            (From::Outside, b, "tcp", 80, false),
        ],
    );

    let gnp = |action: &str| {
        format!(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: first}}\nspec:\n  order: 10\n  selector: app == 'db'\n  ingress:\n  - {{action: {action}, protocol: TCP, source: {{selector: app == 'web'}}, destination: {{ports: [80]}}}}\n  - {{action: Allow, protocol: ICMP, icmp: {{type: 8}}}}\n"
    )
    };
    let mut deny = i.clone();
    add(&mut deny, &gnp("Deny"));
    p.apply(&ruleset(&deny)).unwrap();
    expect(
        &n,
        "order 10 Deny before the Kubernetes Allow",
        &[
            (pa, b, "tcp", 80, false),
            (From::Outside, b, "tcp", 81, true),
        ],
    );
    assert!(n.ping(pa, b), "ICMP type 8 allowed by the global policy");
    let mut pass = i.clone();
    add(&mut pass, &gnp("Pass"));
    p.apply(&ruleset(&pass)).unwrap();
    expect(
        &n,
        "Pass skips the Kubernetes policy: the profile allows",
        &[
            (pa, b, "tcp", 80, true),
            (pc, b, "tcp", 80, true),
            (pc, b, "tcp", 81, false),
        ],
    );

    let mut egress = i.clone();
    add(&mut egress, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: y}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}]}]\n");
    p.apply(&ruleset(&egress)).unwrap();
    expect(
        &n,
        "egress to an ipBlock only",
        &[
            (pc, a, "tcp", 80, false),
            (pc, out, "tcp", 80, true),
            (pa, c, "tcp", 80, true),
        ],
    );
    assert_eq!(p.check().unwrap(), TableState::InSync);
}

#[test]
#[ignore = "root: creates network namespaces and nftables tables"]
fn a_label_change_is_a_set_update() {
    let n = net("klab");
    let mut p = programmer(&n);
    let mut i = base_input(&n);
    add(&mut i, KNP);
    let before = ruleset(&i);
    p.apply(&before).unwrap();
    assert!(n.probe(From::Pod(0), ip(&n, 1), "tcp", 80));
    i.endpoints[0]
        .metadata
        .labels
        .insert("app".into(), "batch".into());
    let after = ruleset(&i);
    let script = diff("tortie-policy", &before, &after).unwrap();
    assert!(
        script
            .lines()
            .all(|l| l.starts_with("delete element") || l.starts_with("add element")),
        "only set elements change: {script}"
    );
    let r = p.apply(&after).unwrap();
    assert!(!r.full && !r.fell_back, "{r:?}");
    assert!(
        !n.probe(From::Pod(0), ip(&n, 1), "tcp", 80),
        "a is no longer app=web"
    );
    i.endpoints[0]
        .metadata
        .labels
        .insert("app".into(), "web".into());
    p.apply(&ruleset(&i)).unwrap();
    assert!(n.probe(From::Pod(0), ip(&n, 1), "tcp", 80));
    assert_eq!(p.check().unwrap(), TableState::InSync);
}

/// `(kind, name)` of every object in the table.
fn objects(n: &PodNet) -> BTreeSet<(String, String)> {
    let out = n
        .host
        .exec(&["nft", "-j", "list", "table", "inet", "tortie-policy"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| {
            let (k, body) = o.as_object()?.iter().next()?;
            matches!(k.as_str(), "chain" | "set" | "map").then(|| {
                (
                    k.clone(),
                    body["name"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

#[test]
#[ignore = "root: creates network namespaces and nftables tables"]
fn deleting_a_policy_or_an_endpoint_removes_exactly_its_objects() {
    let n = net("kdel");
    let mut p = programmer(&n);
    let plain = base_input(&n);
    p.apply(&ruleset(&plain)).unwrap();
    let without = objects(&n);
    let mut with = plain.clone();
    add(&mut with, KNP);
    p.apply(&ruleset(&with)).unwrap();
    let added: Vec<_> = objects(&n).difference(&without).cloned().collect();
    let chains: Vec<&str> = added
        .iter()
        .filter(|(k, _)| k == "chain")
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(chains, ["pi-x/knp.default.db"], "{added:?}");
    assert!(!n.probe(From::Pod(0), ip(&n, 1), "tcp", 81));
    let r = p.apply(&ruleset(&plain)).unwrap();
    assert!(!r.full, "{r:?}");
    assert_eq!(
        objects(&n),
        without,
        "exactly the policy's chain and sets are gone"
    );
    assert!(n.probe(From::Pod(0), ip(&n, 1), "tcp", 81));

    let mut fewer = plain.clone();
    fewer.endpoints.remove(2);
    p.apply(&ruleset(&fewer)).unwrap();
    let gone: Vec<_> = without.difference(&objects(&n)).cloned().collect();
    let c_if = &n.pods[2].iface;
    let chain = |s: String| ("chain".to_string(), s);
    assert_eq!(
        gone,
        [
            chain(format!("fw-{c_if}")),
            chain("pri-kns.y".into()),
            chain("pro-kns.y".into()),
            chain(format!("tw-{c_if}")),
        ],
        "c's chains, and its namespace's profile that no local endpoint uses any more"
    );
    assert!(
        !n.probe(From::Pod(2), ip(&n, 0), "tcp", 80),
        "an unknown workload interface is dropped"
    );
    assert_eq!(p.check().unwrap(), TableState::InSync);
}

#[test]
#[ignore = "root: creates network namespaces and nftables tables"]
fn a_flushed_edited_or_deleted_table_is_detected_and_restored() {
    let n = net("krep");
    let mut p = programmer(&n);
    let mut i = base_input(&n);
    add(&mut i, KNP);
    p.apply(&ruleset(&i)).unwrap();
    assert_eq!(p.check().unwrap(), TableState::InSync);
    assert!(!p.repair().unwrap(), "nothing to repair");
    let tampering = [
        "flush table inet tortie-policy",
        "delete table inet tortie-policy",
        "flush chain inet tortie-policy pi-x/knp.default.db",
        "flush map inet tortie-policy to-wl-map",
    ];
    for t in tampering {
        n.host.exec(&["nft", t]).unwrap();
        assert_eq!(p.check().unwrap(), TableState::Drifted, "{t}");
        assert_eq!(p.check_full().unwrap(), TableState::Drifted, "{t}");
        assert!(p.repair().unwrap(), "{t}");
        assert_eq!(p.check().unwrap(), TableState::InSync, "{t}");
        assert_eq!(p.check_full().unwrap(), TableState::InSync, "{t}");
        assert!(
            !n.probe(From::Pod(0), ip(&n, 1), "tcp", 81),
            "enforced again after {t}"
        );
    }
    let set = objects(&n)
        .into_iter()
        .find(|(k, name)| k == "set" && name.starts_with("s4-"))
        .unwrap()
        .1;
    n.host
        .exec(&["nft", &format!("flush set inet tortie-policy {set}")])
        .unwrap();
    assert_eq!(p.check().unwrap(), TableState::Drifted, "a set emptied");
    assert!(p.repair().unwrap());
    assert!(
        n.probe(From::Pod(0), ip(&n, 1), "tcp", 80),
        "the set is back"
    );
}

#[test]
#[ignore = "root: creates network namespaces and nftables tables"]
fn random_updates_apply_incrementally_and_read_back_equal() {
    let n = PodNet::new("krnd", &[("x", "a"), ("x", "b"), ("y", "c")]);
    let mut p = programmer(&n);
    let policies = [
        KNP.to_string(),
        KNP.to_string() + &KNP_MORE.replace("EXCEPT", "192.0.2.0/30"),
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {order: 5, selector: has(app), egress: [{action: Deny, protocol: UDP, destination: {selector: app == 'db', ports: [53]}}, {action: Pass}]}\n".to_string(),
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s, labels: {app: web}}\nspec: {nets: [10.244.0.0/16, 198.51.100.0/24]}\n".to_string(),
    ];
    let labels = ["web", "db", "batch"];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    for step in 0..25 {
        let mut i = base_input(&n);
        for e in &mut i.endpoints {
            e.metadata
                .labels
                .insert("app".into(), labels[next(3)].into());
        }
        if next(4) == 0 {
            i.endpoints.remove(next(3));
        }
        // At most one version of the Kubernetes policy (one name).
        match next(3) {
            0 => add(&mut i, &policies[0]),
            1 => add(&mut i, &policies[1]),
            _ => {}
        }
        for pol in &policies[2..] {
            if next(2) == 0 {
                add(&mut i, pol);
            }
        }
        let r = p.apply(&ruleset(&i)).unwrap();
        assert!(
            !r.fell_back,
            "step {step}: the incremental transaction was refused"
        );
        assert_eq!(r.full, step == 0, "step {step}");
        assert_eq!(p.check().unwrap(), TableState::InSync, "step {step}");
    }
}
