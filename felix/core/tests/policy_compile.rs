//! The compiled policy table, run through the interpreter: Calico's
//! semantics case by case, and the shape of the transactions that follow
//! label, policy and endpoint changes.

mod common;

use common::*;
use tortie_felix::policy::interp::{self, CtState};
use tortie_felix::policy::nft::Hook;
use tortie_felix::policy::{compile, diff, PolicyConfig, PolicyProblem};

const TCP: u8 = 6;
const UDP: u8 = 17;

fn pods() -> (
    tortie_model::WorkloadEndpoint,
    tortie_model::WorkloadEndpoint,
    tortie_model::WorkloadEndpoint,
) {
    (
        wep("x", "a", NODE, "10.244.1.1", &[("app", "web")]),
        wep("x", "b", NODE, "10.244.1.2", &[("app", "db")]),
        wep("y", "c", NODE, "10.244.1.3", &[("app", "web")]),
    )
}

#[test]
fn without_policy_the_namespace_profiles_allow_everything() {
    let (a, b, c) = pods();
    let i = input(vec![a.clone(), b.clone(), c.clone()]);
    assert!(forwards(
        &i,
        &packet(&Peer::Local(&a), &Peer::Local(&b), TCP, 80)
    ));
    assert!(forwards(
        &i,
        &packet(&Peer::Local(&c), &away("192.0.2.1"), UDP, 53)
    ));
    assert!(forwards(
        &i,
        &packet(&away("192.0.2.1"), &Peer::Local(&a), TCP, 22)
    ));
}

#[test]
fn a_kubernetes_default_deny_isolates_only_its_namespace_and_direction() {
    let (a, b, c) = pods();
    let mut i = input(vec![a.clone(), b.clone(), c.clone()]);
    add(
        &mut i,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n",
    );
    assert!(
        !forwards(&i, &packet(&Peer::Local(&c), &Peer::Local(&a), TCP, 80)),
        "ingress to x denied"
    );
    assert!(
        !forwards(&i, &packet(&Peer::Local(&a), &Peer::Local(&b), TCP, 80)),
        "within x denied"
    );
    assert!(
        forwards(&i, &packet(&Peer::Local(&a), &Peer::Local(&c), TCP, 80)),
        "egress from x and ingress to y allowed"
    );
    assert!(forwards(
        &i,
        &packet(&Peer::Local(&a), &away("192.0.2.1"), TCP, 80)
    ));
}

#[test]
fn established_connections_pass_even_when_new_ones_are_denied() {
    let (a, b, _) = pods();
    let mut i = input(vec![a.clone(), b.clone()]);
    add(
        &mut i,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n",
    );
    let mut p = packet(&Peer::Local(&a), &Peer::Local(&b), TCP, 80);
    assert!(!forwards(&i, &p));
    p.ct = CtState::Established;
    assert!(forwards(&i, &p));
    p.ct = CtState::Invalid;
    assert!(!forwards(&i, &p));
}

#[test]
fn order_decides_between_deny_and_allow_and_pass_skips_to_the_profiles() {
    let (a, b, c) = pods();
    let base = input(vec![a.clone(), b.clone(), c.clone()]);
    let gnp = |name: &str, order: u32, action: &str| {
        format!("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  order: {order}\n  selector: app == 'db'\n  ingress: [{{action: {action}, source: {{selector: app == 'web'}}}}]\n")
    };
    let to_b = packet(&Peer::Local(&a), &Peer::Local(&b), TCP, 5432);
    let mut i = base.clone();
    add(
        &mut i,
        &(gnp("deny", 10, "Deny") + "---\n" + &gnp("allow", 20, "Allow")),
    );
    assert!(!forwards(&i, &to_b), "the lower order denies first");
    let mut i = base.clone();
    add(
        &mut i,
        &(gnp("deny", 30, "Deny") + "---\n" + &gnp("allow", 20, "Allow")),
    );
    assert!(forwards(&i, &to_b), "the lower order allows first");
    let mut i = base.clone();
    add(
        &mut i,
        &(gnp("pass", 10, "Pass") + "---\n" + &gnp("deny", 20, "Deny")),
    );
    assert!(
        forwards(&i, &to_b),
        "Pass skips the later Deny; the profile allows"
    );
    let mut i = base;
    add(&mut i, &gnp("pass", 10, "Log"));
    let c = compile(&i, &PolicyConfig::default());
    let out = interp::run(&c.ruleset, Hook::Forward, &to_b).unwrap();
    assert!(
        !out.accepted,
        "Log goes on; no rule decides: end of tier drops"
    );
    assert_eq!(out.logs, 1);
    assert_eq!(out.mark, 0);
}

#[test]
fn pass_is_cleared_before_the_packet_leaves() {
    let (a, b, _) = pods();
    let mut i = input(vec![a.clone(), b.clone()]);
    add(
        &mut i,
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{action: Pass}], egress: [{action: Pass}]}\n",
    );
    let c = compile(&i, &PolicyConfig::default());
    let mut p = packet(&Peer::Local(&a), &Peer::Local(&b), TCP, 80);
    p.mark = 0x4000;
    let out = interp::run(&c.ruleset, Hook::Forward, &p).unwrap();
    assert!(out.accepted);
    assert_eq!(out.mark, 0x4000, "other bits untouched, pass bit clear");
}

#[test]
fn named_ports_network_sets_and_not_nets() {
    let a = wep("x", "a", NODE, "10.244.1.1", &[("app", "web")]);
    let b = with_port(
        wep("x", "b", NODE, "10.244.1.2", &[("app", "db")]),
        "pg",
        "TCP",
        5432,
    );
    let mut i = input(vec![a.clone(), b.clone()]);
    add(
        &mut i,
        r#"apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: x}
spec:
  selector: app == 'db'
  ingress:
    - action: Allow
      protocol: TCP
      source: {selector: app == 'web'}
      destination: {ports: [pg]}
    - action: Allow
      protocol: TCP
      source: {selector: role == 'partner', notNets: [198.51.100.128/25]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: x, labels: {role: partner}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: others, labels: {role: partner}}
spec: {nets: [203.0.113.0/24]}
"#,
    );
    let (pa, pb) = (Peer::Local(&a), Peer::Local(&b));
    assert!(forwards(&i, &packet(&pa, &pb, TCP, 5432)), "named port pg");
    assert!(!forwards(&i, &packet(&pa, &pb, TCP, 5433)));
    assert!(!forwards(&i, &packet(&pa, &pb, UDP, 5432)), "pg is TCP");
    assert!(
        forwards(&i, &packet(&away("198.51.100.7"), &pb, TCP, 9)),
        "in the network set"
    );
    assert!(
        !forwards(&i, &packet(&away("198.51.100.200"), &pb, TCP, 9)),
        "notNets"
    );
    assert!(
        !forwards(&i, &packet(&away("203.0.113.1"), &pb, TCP, 9)),
        "a namespaced policy's selector does not reach global sets"
    );
    add(
        &mut i,
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n  order: 1\n  ingress: [{action: Allow, source: {selector: role == 'partner'}}]\n",
    );
    assert!(
        forwards(&i, &packet(&away("203.0.113.1"), &pb, TCP, 9)),
        "a global one does"
    );
}

#[test]
fn unknown_workload_interfaces_are_dropped_and_bad_endpoints_reported() {
    let (a, _, _) = pods();
    let mut bad = wep("x", "bad", NODE, "10.244.1.9", &[]);
    bad.spec.interface_name = "cali\"; drop".into();
    let mut noip = wep("x", "noip", NODE, "10.244.1.10", &[]);
    noip.spec.ip_networks.clear();
    let i = input(vec![a.clone(), bad, noip]);
    let c = compile(&i, &PolicyConfig::default());
    assert!(
        matches!(c.problems[0], PolicyProblem::BadInterface { .. }),
        "{:?}",
        c.problems
    );
    assert!(
        matches!(c.problems[1], PolicyProblem::NoAddresses(_)),
        "{:?}",
        c.problems
    );
    let mut p = packet(&away("192.0.2.1"), &Peer::Local(&a), TCP, 80);
    p.iif = "cali00000000000".into();
    assert!(!interp::run(&c.ruleset, Hook::Forward, &p).unwrap().accepted);
    assert!(forwards(
        &i,
        &packet(&away("192.0.2.1"), &Peer::Local(&a), TCP, 80)
    ));
}

#[test]
fn a_remote_label_change_only_changes_set_elements() {
    let (a, b, _) = pods();
    let remote = wep("x", "r", "n2", "10.244.2.1", &[("app", "web")]);
    let mut i = input(vec![a, b.clone(), remote]);
    add(
        &mut i,
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: db, namespace: x}\nspec:\n  selector: app == 'db'\n  ingress: [{action: Allow, source: {selector: app == 'web'}}]\n",
    );
    let cfg = PolicyConfig::default();
    let before = compile(&i, &cfg).ruleset;
    i.endpoints[2]
        .metadata
        .labels
        .insert("app".into(), "batch".into());
    let after = compile(&i, &cfg).ruleset;
    let script = diff("t", &before, &after).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines.len(), 1, "{script}");
    assert!(
        lines[0].starts_with("delete element inet t s4-") && lines[0].ends_with("{ 10.244.2.1 }"),
        "{script}"
    );
    let r = away("10.244.2.1");
    assert!(forwards(
        &i,
        &packet(&Peer::Local(&i.endpoints[0]), &Peer::Local(&b), TCP, 1)
    ));
    assert!(!forwards(&i, &packet(&r, &Peer::Local(&b), TCP, 1)));
}

#[test]
fn deleting_a_policy_removes_exactly_its_chains() {
    let (a, b, c) = pods();
    let mut i = input(vec![a, b, c]);
    let keep = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: keep}\nspec: {selector: app == 'web', ingress: [{action: Allow}]}\n";
    add(&mut i, keep);
    let cfg = PolicyConfig::default();
    let without = compile(&i, &cfg).ruleset;
    add(
        &mut i,
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: gone, namespace: x}\nspec:\n  selector: app == 'db'\n  ingress: [{action: Allow, source: {selector: app == 'web'}}]\n  egress: [{action: Deny, protocol: UDP, destination: {ports: [53]}}]\n",
    );
    let with = compile(&i, &cfg).ruleset;
    let script = diff("t", &with, &without).unwrap();
    let b_if = iface("x", "b");
    let mut want = vec![
        format!("flush chain inet t fw-{b_if}"),
        format!("flush chain inet t tw-{b_if}"),
        "flush chain inet t pi-x/gone".to_string(),
        "flush chain inet t po-x/gone".to_string(),
        "delete chain inet t pi-x/gone".to_string(),
        "delete chain inet t po-x/gone".to_string(),
    ];
    let mut got: Vec<String> = script
        .lines()
        .filter(|l| !l.starts_with("add rule"))
        .map(|l| l.to_string())
        .filter(|l| !l.starts_with("delete set"))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{script}");
    let sets: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("delete set"))
        .collect();
    assert_eq!(
        sets.len(),
        1,
        "the (IPv4: no endpoint has IPv6) set of app == 'web' in x: {script}"
    );
    let rules: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("add rule"))
        .collect();
    assert!(
        rules.iter().all(|l| l.contains(&b_if)),
        "only b's chains are refilled: {script}"
    );
    assert_eq!(diff("t", &without, &without), None);
}
