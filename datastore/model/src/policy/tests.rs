use super::*;
use crate::manifest::parse_manifest;
use crate::protocol::{Port, Protocol};
use crate::resource::Resource;

/// Calico's documented NetworkPolicy example (docs.tigera.io, "Network policy").
const DOCS_POLICY: &str = r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-tcp-6379
  namespace: production
spec:
  selector: role == 'database'
  types:
    - Ingress
    - Egress
  ingress:
    - action: Log
      protocol: TCP
      source:
        selector: role == 'frontend'
    - action: Deny
      protocol: TCP
      source:
        selector: role == 'frontend'
  egress:
    - action: Allow
"#;

fn one(text: &str) -> Resource {
    match parse_manifest(text) {
        Ok(mut r) => r.remove(0).defaulted(),
        Err(e) => panic!("{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse_manifest(text) {
        Ok(r) => panic!("accepted: {r:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn gnp(spec: &str) -> String {
    format!("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p\nspec:\n{spec}")
}

#[test]
fn the_documented_network_policy_reads_and_round_trips() {
    let Resource::NetworkPolicy(p) = one(DOCS_POLICY) else {
        panic!("not a NetworkPolicy")
    };
    assert_eq!(p.namespace(), "production");
    assert_eq!(p.spec.tier.as_deref(), Some("default"));
    assert_eq!(p.spec.ingress[0].action, Action::Log);
    assert_eq!(p.spec.ingress[1].protocol, Some(Protocol::named("TCP")));
    assert_eq!(p.spec.ingress[1].source.selector, "role == 'frontend'");
    let back: NetworkPolicy =
        serde_json::from_str(&Resource::NetworkPolicy(p.clone()).to_json()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn types_default_from_the_rules_present() {
    let t = |spec: &str| match one(&gnp(spec)) {
        Resource::GlobalNetworkPolicy(p) => p.spec.types,
        other => panic!("{other:?}"),
    };
    assert_eq!(t("  selector: all()\n"), vec![PolicyType::Ingress]);
    assert_eq!(
        t("  ingress: [{action: Allow}]\n"),
        vec![PolicyType::Ingress]
    );
    assert_eq!(t("  egress: [{action: Allow}]\n"), vec![PolicyType::Egress]);
    assert_eq!(
        t("  ingress: [{action: Allow}]\n  egress: [{action: Deny}]\n"),
        vec![PolicyType::Ingress, PolicyType::Egress]
    );
    assert_eq!(
        t("  types: [Egress]\n"),
        vec![PolicyType::Egress],
        "given types are kept"
    );
}

#[test]
fn orders_print_whole_numbers_without_a_fraction() {
    let Resource::GlobalNetworkPolicy(p) = one(&gnp("  order: 100\n")) else {
        panic!()
    };
    assert_eq!(p.spec.order, Some(PolicyOrder(100.0)));
    assert!(Resource::GlobalNetworkPolicy(p)
        .to_json()
        .contains("\"order\":100,"));
    let Resource::GlobalNetworkPolicy(p) = one(&gnp("  order: 10.5\n")) else {
        panic!()
    };
    assert!(Resource::GlobalNetworkPolicy(p)
        .to_json()
        .contains("\"order\":10.5"));
}

#[test]
fn every_rule_criterion_reads_with_calicos_names() {
    let Resource::GlobalNetworkPolicy(p) = one(&gnp(r#"
  namespaceSelector: env == 'prod'
  ingress:
    - action: Allow
      ipVersion: 4
      protocol: ICMP
      icmp: {type: 8, code: 0}
      notICMP: {type: 13}
      source:
        nets: [10.0.0.0/8, 192.168.1.1]
        notNets: [10.1.0.0/16]
        selector: app == 'web'
        notSelector: has(blocked)
        namespaceSelector: team == 'a'
    - action: Pass
      protocol: 6
      notProtocol: UDP
      destination:
        ports: [80, "8000:8100", http]
        notPorts: [8080]
"#))
    else {
        panic!()
    };
    let r = &p.spec.ingress;
    assert_eq!(
        r[0].icmp,
        Some(IcmpFields {
            icmp_type: Some(8),
            code: Some(0)
        })
    );
    assert_eq!(r[0].source.nets[1].to_string(), "192.168.1.1/32");
    assert_eq!(r[0].source.namespace_selector, "team == 'a'");
    assert_eq!(r[1].protocol, Some(Protocol::Number(6)));
    assert_eq!(
        r[1].destination.ports,
        vec![
            Port::single(80),
            Port::Range {
                min: 8000,
                max: 8100
            },
            Port::Named("http".into())
        ]
    );
}

#[test]
fn fields_tortie_does_not_implement_are_refused_by_name() {
    let e = errors(&gnp(r#"
  tier: security
  serviceAccountSelector: role == 'x'
  doNotTrack: true
  preDNAT: true
  performanceHints: [AssumeNeededOnEveryNode]
  ingress:
    - action: Allow
      protocol: TCP
      http: {methods: [GET]}
      source:
        services: {name: svc}
        serviceAccounts: {names: [a]}
      destination:
        notPorts: [http]
"#));
    for field in [
        "spec.tier",
        "spec.serviceAccountSelector",
        "spec.doNotTrack",
        "spec.preDNAT",
        "spec.performanceHints",
        "spec.ingress[0].http",
        "spec.ingress[0].source.services",
        "spec.ingress[0].source.serviceAccounts",
        "spec.ingress[0].destination.notPorts[0]",
    ] {
        let path = format!("GlobalNetworkPolicy(p).{field}:");
        assert!(
            e.iter()
                .any(|l| l.contains(&path) && l.contains("not supported by tortie")),
            "{field} not refused by name in {e:#?}"
        );
    }
}

#[test]
fn inconsistent_rules_name_the_field_and_the_fix() {
    let e = errors(&gnp(r#"
  types: [Ingress]
  ingress:
    - action: Allow
      destination: {ports: [80]}
    - action: Allow
      icmp: {type: 8}
    - action: Allow
      protocol: ICMP
      icmp: {code: 1}
    - action: Allow
      protocol: tcp
    - action: Allow
      source: {nets: [10.0.0.0/8]}
      destination: {nets: ["fd00::/64"]}
    - action: Allow
      ipVersion: 6
      protocol: ICMP
    - action: Allow
      source: {nets: [10.0.0.1/8]}
  egress:
    - action: Allow
"#));
    let want = [
        ("spec.egress:", "does not include Egress"),
        ("spec.ingress[0].destination.ports:", "must set protocol"),
        ("spec.ingress[1].icmp:", "need protocol ICMP"),
        ("spec.ingress[2].icmp.code:", "needs an ICMP type"),
        ("spec.ingress[3].protocol:", "must be one of TCP"),
        ("spec.ingress[4]:", "mixes IPv4 and IPv6"),
        ("spec.ingress[5].ipVersion:", "must be 4 with protocol ICMP"),
        ("spec.ingress[6].source.nets[0]:", "use 10.0.0.0/8"),
    ];
    for (field, what) in want {
        assert!(
            e.iter().any(|l| l.contains(field) && l.contains(what)),
            "{field} {what} missing in {e:#?}"
        );
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn policy_names_are_labels_or_converted_kubernetes_names() {
    let np = |name: &str| {
        format!("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: ns1}}\nspec: {{}}\n")
    };
    one(&np("knp.default.allow-web"));
    let e = errors(&np("a.b"));
    assert!(
        e[0].contains("NetworkPolicy(ns1/a.b).metadata.name"),
        "{e:?}"
    );
    let e = errors(&gnp("  selector: app = 'x'\n").replace("name: p", "name: knp.default.x"));
    assert!(
        e.iter()
            .any(|l| l.contains("metadata.name") && l.contains("DNS-1123 label")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.contains("spec.selector") && l.contains("invalid selector")),
        "{e:?}"
    );
}
