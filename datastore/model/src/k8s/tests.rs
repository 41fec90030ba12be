use super::*;
use crate::manifest::parse_manifest;
use crate::policy::{Action, EntityRule, NetworkPolicy, PolicyType, Rule};
use crate::protocol::{Port, Protocol};
use crate::selector::Selector;

/// The example of the Kubernetes documentation ("Network Policies").
const DOCS_EXAMPLE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - from:
        - ipBlock:
            cidr: 172.17.0.0/16
            except:
              - 172.17.1.0/24
        - namespaceSelector:
            matchLabels:
              project: myproject
        - podSelector:
            matchLabels:
              role: frontend
      ports:
        - protocol: TCP
          port: 6379
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 5978
"#;

fn convert(text: &str) -> NetworkPolicy {
    match parse_manifest(text) {
        Ok(mut r) => match r.remove(0) {
            Resource::NetworkPolicy(p) => {
                let p = match Resource::NetworkPolicy(p).defaulted() {
                    Resource::NetworkPolicy(p) => p,
                    _ => unreachable!(),
                };
                assert_eq!(p.validate(), vec![], "converted policy must be valid");
                p
            }
            other => panic!("{other:?}"),
        },
        Err(e) => panic!("{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse_manifest(text) {
        Ok(r) => panic!("accepted: {r:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn knp(spec: &str) -> String {
    format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: ns1\nspec:\n{spec}")
}

fn allow(proto: Option<&str>, source: EntityRule, ports: Vec<Port>) -> Rule {
    let mut r = Rule::new(Action::Allow);
    r.protocol = proto.map(Protocol::named);
    r.source = source;
    r.destination.ports = ports;
    r
}

const K8S: &str = "projectcalico.org/orchestrator == 'k8s'";

#[test]
fn the_documented_example_converts_as_calico_converts_it() {
    let p = convert(DOCS_EXAMPLE);
    assert_eq!(p.metadata.name, "knp.default.test-network-policy");
    assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(p.spec.order.map(|o| o.value()), Some(1000.0));
    assert_eq!(p.spec.selector, format!("{K8S} && role == 'db'"));
    assert_eq!(p.spec.types, vec![PolicyType::Ingress, PolicyType::Egress]);
    let tcp = Some("TCP");
    let ports = vec![Port::single(6379)];
    let want_ingress = vec![
        allow(
            tcp,
            EntityRule {
                nets: vec!["172.17.0.0/16".parse().unwrap()],
                not_nets: vec!["172.17.1.0/24".parse().unwrap()],
                ..EntityRule::default()
            },
            ports.clone(),
        ),
        allow(
            tcp,
            EntityRule {
                selector: K8S.into(),
                namespace_selector: "project == 'myproject'".into(),
                ..EntityRule::default()
            },
            ports.clone(),
        ),
        allow(
            tcp,
            EntityRule {
                selector: format!("{K8S} && role == 'frontend'"),
                ..EntityRule::default()
            },
            ports,
        ),
    ];
    assert_eq!(p.spec.ingress, want_ingress);
    let mut egress = Rule::new(Action::Allow);
    egress.protocol = Some(Protocol::named("TCP"));
    egress.destination.nets = vec!["10.0.0.0/24".parse().unwrap()];
    egress.destination.ports = vec![Port::single(5978)];
    assert_eq!(p.spec.egress, vec![egress]);
}

#[test]
fn policy_types_default_as_the_api_server_defaults_them() {
    let types = |spec: &str| convert(&knp(spec)).spec.types;
    assert_eq!(types("  podSelector: {}\n"), vec![PolicyType::Ingress]);
    assert_eq!(
        types("  podSelector: {}\n  egress: [{}]\n"),
        vec![PolicyType::Ingress, PolicyType::Egress],
        "egress rules add Egress to the default"
    );
    let deny_egress = convert(&knp("  podSelector: {}\n  policyTypes: [Egress]\n"));
    assert_eq!(deny_egress.spec.types, vec![PolicyType::Egress]);
    assert!(deny_egress.spec.egress.is_empty() && deny_egress.spec.ingress.is_empty());
}

#[test]
fn empty_and_absent_selectors_mean_what_kubernetes_says() {
    let p = convert(&knp(r#"  podSelector: {}
  ingress:
    - {}
    - from: [{podSelector: {}}]
    - from: [{namespaceSelector: {}}]
    - from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchExpressions: [{key: app, operator: In, values: [x, y]}, {key: tmp, operator: DoesNotExist}]}}]
"#));
    assert_eq!(
        p.spec.selector, K8S,
        "podSelector {{}}: every pod of the namespace"
    );
    let r = &p.spec.ingress;
    assert_eq!(
        r[0],
        Rule::new(Action::Allow),
        "an empty rule allows everything"
    );
    assert_eq!(
        (
            r[1].source.selector.as_str(),
            r[1].source.namespace_selector.as_str()
        ),
        (K8S, "")
    );
    assert_eq!(
        (
            r[2].source.selector.as_str(),
            r[2].source.namespace_selector.as_str()
        ),
        (K8S, "all()"),
        "namespaceSelector {{}}: every namespace"
    );
    assert_eq!(
        r[3].source.selector,
        format!("{K8S} && app in {{ 'x', 'y' }} && ! has(tmp)")
    );
    assert_eq!(r[3].source.namespace_selector, "team == 'a'");
    for rule in r {
        for s in [&rule.source.selector, &rule.source.namespace_selector] {
            Selector::parse(s).unwrap();
        }
    }
}

#[test]
fn ports_group_by_protocol_with_ranges_and_names() {
    let p = convert(&knp(r#"  podSelector: {}
  ingress:
    - ports:
        - {port: 80}
        - {port: 81}
        - {port: 8000, endPort: 9000}
        - {protocol: UDP, port: dns}
        - {protocol: SCTP}
        - {protocol: SCTP, port: 5}
"#));
    let r = &p.spec.ingress;
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(r[0].protocol, Some(Protocol::named("SCTP")));
    assert!(
        r[0].destination.ports.is_empty(),
        "a port-less entry allows every port"
    );
    assert_eq!(r[1].protocol, Some(Protocol::named("TCP")));
    assert_eq!(
        r[1].destination.ports,
        vec![
            Port::Range { min: 80, max: 81 },
            Port::Range {
                min: 8000,
                max: 9000
            }
        ]
    );
    assert_eq!(r[2].destination.ports, vec![Port::Named("dns".into())]);
}

#[test]
fn kubernetes_validation_names_the_field() {
    let e = errors(&knp(
        r#"  podSelector: {matchExpressions: [{key: a, operator: In}]}
  policyTypes: [Ingress, Sideways]
  ingress:
    - from:
        - {}
        - {ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/24]}, podSelector: {}}
        - {ipBlock: {cidr: nonsense}}
      ports:
        - {protocol: ICMP}
        - {port: http, endPort: 90}
        - {port: 100, endPort: 90}
        - {port: 0}
  egress:
    - {}
"#,
    ));
    let want = [
        "spec.podSelector.matchExpressions[0].values:",
        "spec.policyTypes[1]:",
        "spec.ingress[0].from[0]:",
        "spec.ingress[0].from[1].ipBlock:",
        "spec.ingress[0].from[1].ipBlock.except[0]:",
        "spec.ingress[0].from[2].ipBlock.cidr:",
        "spec.ingress[0].ports[0].protocol:",
        "spec.ingress[0].ports[1].endPort:",
        "spec.ingress[0].ports[2].endPort:",
        "spec.ingress[0].ports[3].port:",
        "spec.egress:",
    ];
    for field in want {
        let path = format!("NetworkPolicy.networking.k8s.io(ns1/p).{field}");
        assert!(
            e.iter().any(|l| l.contains(&path)),
            "{field} missing in {e:#?}"
        );
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
    let e = errors(&knp("  policyTypes: [Ingress]\n"));
    assert!(
        e[0].contains("spec.podSelector: \"\" is invalid: is required"),
        "{e:?}"
    );
    let e = errors(&knp(
        "  podSelector: {}\n  ingress: [{from: [{ipBlok: {}}]}]\n",
    ));
    assert!(
        e[0].contains("spec.ingress[0].from[0]") && e[0].contains("ipBlok"),
        "{e:?}"
    );
}

#[test]
fn namespaces_become_profiles_with_prefixed_labels() {
    let r = parse_manifest(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels: {env: prod}\nspec: {}\nstatus: {}\n",
    )
    .unwrap();
    let Resource::Profile(p) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(p.metadata.name, "kns.team-a");
    assert_eq!(p.spec.labels_to_apply.len(), 3);
    assert_eq!(
        p.spec.labels_to_apply["pcns.kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(p.spec.labels_to_apply["pcns.env"], "prod");
    assert_eq!(
        p.spec.labels_to_apply["pcns.projectcalico.org/name"],
        "team-a"
    );
    assert_eq!(p.spec.ingress, vec![Rule::new(Action::Allow)]);
    assert_eq!(p.spec.egress, vec![Rule::new(Action::Allow)]);
    let e = errors("apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\nspec: {finalizers: [kubernetes]}\n");
    assert!(
        e.iter().any(|l| l.contains("Namespace(a.b).metadata.name")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.contains("Namespace(a.b).spec") && l.contains("not supported")),
        "{e:?}"
    );
}

#[test]
fn a_kubectl_list_mixes_kubernetes_and_calico_kinds() {
    let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"a": "b"}}},
      {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
       "metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}},
      {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
       "metadata": {"name": "ext", "labels": {"a": "b"}}, "spec": {"nets": ["198.51.100.0/24"]}}
    ]}"#;
    let r = parse_manifest(text).unwrap();
    let ids: Vec<String> = r.iter().map(Resource::id).collect();
    assert_eq!(
        ids,
        [
            "Profile(kns.x)",
            "NetworkPolicy(x/knp.default.deny)",
            "GlobalNetworkSet(ext)"
        ]
    );
}
