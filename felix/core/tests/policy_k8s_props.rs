//! Property test: random Kubernetes NetworkPolicies (pod and namespace
//! selectors with every operator, both together in one peer, ipBlock with
//! except, numbered and named ports, endPort, defaulted and explicit
//! policyTypes, empty and absent selectors) over three namespaces of pods:
//! converting them as Calico does, compiling the table and running packets
//! through it decides exactly as a direct model of the Kubernetes
//! NetworkPolicy semantics does.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::*;
use ipnet::IpNet;
use proptest::prelude::*;
use tortie_felix::policy::{compile, PolicyConfig, PolicyInput};
use tortie_model::k8s::{
    namespace_to_profile, network_policy_to_calico, EgressRule, IngressRule, IntOrString,
    K8sNamespace, K8sNetworkPolicy, K8sNetworkPolicySpec, LabelSelector, LabelSelectorRequirement,
    PolicyPeer, PolicyPort,
};
use tortie_model::{ObjectMeta, WorkloadEndpoint};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const OUTSIDE: [&str; 2] = ["192.0.2.10", "192.0.2.200"];

fn arb_selector() -> impl Strategy<Value = LabelSelector> {
    let req =
        |key: &'static str, op: &'static str, values: Vec<&'static str>| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.into_iter().map(String::from).collect(),
        };
    let exprs = prop::sample::subsequence(
        vec![
            req("app", "In", vec!["web", "db"]),
            req("app", "NotIn", vec!["web"]),
            req("tier", "Exists", vec![]),
            req("tier", "DoesNotExist", vec![]),
        ],
        0..=2,
    );
    let labels =
        prop::sample::subsequence(vec![("app", "web"), ("app", "db"), ("tier", "fe")], 0..=1);
    (labels, exprs).prop_map(|(labels, exprs)| LabelSelector {
        match_labels: labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        match_expressions: exprs,
    })
}

fn arb_ns_selector() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        Just(LabelSelector::default()),
        prop::sample::select(vec![
            ("team", "a"),
            ("team", "b"),
            ("kubernetes.io/metadata.name", "y")
        ])
        .prop_map(|(k, v)| LabelSelector {
            match_labels: [(k.to_string(), v.to_string())].into(),
            ..LabelSelector::default()
        }),
        Just(LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "NotIn".into(),
                values: vec!["a".into()],
            }],
            ..LabelSelector::default()
        }),
    ]
}

fn arb_peer() -> impl Strategy<Value = PolicyPeer> {
    let block = prop::sample::select(vec![
        ("10.244.0.0/16", vec!["10.244.1.0/24"]),
        ("192.0.2.0/24", vec!["192.0.2.128/25"]),
        ("0.0.0.0/0", vec![]),
    ])
    .prop_map(|(cidr, except)| PolicyPeer {
        ip_block: Some(tortie_model::k8s::IpBlock {
            cidr: cidr.into(),
            except: except.into_iter().map(String::from).collect(),
        }),
        ..PolicyPeer::default()
    });
    prop_oneof![
        2 => arb_selector().prop_map(|s| PolicyPeer { pod_selector: Some(s), ..PolicyPeer::default() }),
        2 => arb_ns_selector().prop_map(|s| PolicyPeer { namespace_selector: Some(s), ..PolicyPeer::default() }),
        2 => (arb_selector(), arb_ns_selector()).prop_map(|(p, n)| PolicyPeer {
            pod_selector: Some(p),
            namespace_selector: Some(n),
            ..PolicyPeer::default()
        }),
        1 => block,
    ]
}

fn arb_port() -> impl Strategy<Value = PolicyPort> {
    let proto = prop::sample::select(vec![None, Some("TCP"), Some("UDP")]);
    let port = prop::sample::select(vec![
        (None, None),
        (Some(IntOrString::Int(80)), None),
        (Some(IntOrString::Int(80)), Some(81)),
        (Some(IntOrString::Str("http".into())), None),
        (Some(IntOrString::Str("dns".into())), None),
    ]);
    (proto, port).prop_map(|(protocol, (port, end_port))| PolicyPort {
        protocol: protocol.map(String::from),
        port,
        end_port,
    })
}

fn arb_rule() -> impl Strategy<Value = (Vec<PolicyPeer>, Vec<PolicyPort>)> {
    (
        prop::collection::vec(arb_peer(), 0..3),
        prop::collection::vec(arb_port(), 0..3),
    )
}

fn arb_policy(i: usize) -> impl Strategy<Value = K8sNetworkPolicy> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        prop_oneof![Just(LabelSelector::default()), arb_selector()],
        prop::sample::select(vec![
            vec![],
            vec!["Ingress"],
            vec!["Egress"],
            vec!["Ingress", "Egress"],
        ]),
        prop::collection::vec(arb_rule(), 0..3),
        prop::collection::vec(arb_rule(), 0..3),
    )
        .prop_map(move |(ns, pod_selector, types, ingress, egress)| {
            let has = |t: &str| types.is_empty() || types.contains(&t);
            let ingress = if has("Ingress") { ingress } else { vec![] };
            // Without types, egress rules make the policy Ingress+Egress;
            // with types lacking Egress they would be refused.
            let egress = if types.is_empty() || types.contains(&"Egress") {
                egress
            } else {
                vec![]
            };
            let mut metadata = ObjectMeta::named(format!("np{i}"));
            metadata.namespace = Some(ns.into());
            K8sNetworkPolicy {
                metadata,
                spec: K8sNetworkPolicySpec {
                    pod_selector: Some(pod_selector),
                    policy_types: types.into_iter().map(String::from).collect(),
                    ingress: ingress
                        .into_iter()
                        .map(|(from, ports)| IngressRule { from, ports })
                        .collect(),
                    egress: egress
                        .into_iter()
                        .map(|(to, ports)| EgressRule { to, ports })
                        .collect(),
                },
                ..K8sNetworkPolicy::default()
            }
        })
}

#[derive(Debug, Clone)]
struct World {
    pods: Vec<WorkloadEndpoint>,
    ns_labels: Vec<BTreeMap<String, String>>,
    policies: Vec<K8sNetworkPolicy>,
}

fn arb_pod(i: usize) -> impl Strategy<Value = WorkloadEndpoint> {
    (
        prop::sample::select(vec!["web", "db", "cache"]),
        any::<bool>(),
        prop::sample::select(vec![80u16, 81]),
        any::<bool>(),
    )
        .prop_map(move |(app, tier, http, dns)| {
            let ns = NAMESPACES[i % 3];
            let mut l = vec![("app", app)];
            if tier {
                l.push(("tier", "fe"));
            }
            let w = wep(ns, &format!("pod{i}"), NODE, &format!("10.244.{i}.1"), &l);
            let w = with_port(w, "http", "TCP", http);
            if dns {
                with_port(w, "dns", "UDP", 53)
            } else {
                w
            }
        })
}

fn arb_world() -> impl Strategy<Value = World> {
    (
        (0..6usize).map(arb_pod).collect::<Vec<_>>(),
        prop::collection::vec(prop::sample::select(vec!["a", "b"]), 3),
        (0usize..4).prop_flat_map(|n| (0..n).map(arb_policy).collect::<Vec<_>>()),
    )
        .prop_map(|(pods, teams, policies)| World {
            pods,
            ns_labels: teams.into_iter().map(|t| labels(&[("team", t)])).collect(),
            policies,
        })
}

// ---------------------------------------------------------------- model --

fn k8s_matches(s: &LabelSelector, l: &BTreeMap<String, String>) -> bool {
    s.match_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        && s.match_expressions.iter().all(|e| {
            let has_value = l.get(&e.key).is_some_and(|v| e.values.contains(v));
            match e.operator.as_str() {
                "In" => has_value,
                "NotIn" => !has_value,
                "Exists" => l.contains_key(&e.key),
                "DoesNotExist" => !l.contains_key(&e.key),
                other => panic!("operator {other}"),
            }
        })
}

impl World {
    fn input(&self) -> PolicyInput {
        let mut i = input(self.pods.clone());
        for (ns, labels) in NAMESPACES.iter().zip(&self.ns_labels) {
            let mut metadata = ObjectMeta::named(*ns);
            metadata.labels = labels.clone();
            let n = K8sNamespace {
                metadata,
                ..K8sNamespace::default()
            };
            assert_eq!(n.validate(), vec![]);
            i.profiles.push(namespace_to_profile(&n));
        }
        for p in &self.policies {
            assert_eq!(p.validate(), vec![], "{p:?}");
            let mut np = network_policy_to_calico(p);
            np.apply_defaults();
            assert_eq!(np.validate(), vec![]);
            i.network_policies.push(np);
        }
        i
    }

    /// The namespace's labels as the API server has them.
    fn ns_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let i = NAMESPACES.iter().position(|n| *n == ns).unwrap();
        let mut l = self.ns_labels[i].clone();
        l.insert("kubernetes.io/metadata.name".into(), ns.into());
        l
    }

    fn pod(&self, a: IpAddr) -> Option<&WorkloadEndpoint> {
        self.pods.iter().find(|w| w.spec.ip_networks[0].addr() == a)
    }

    fn peer_ok(&self, peers: &[PolicyPeer], policy_ns: &str, a: IpAddr) -> bool {
        peers.is_empty()
            || peers.iter().any(|peer| {
                if let Some(b) = &peer.ip_block {
                    let cidr: IpNet = b.cidr.parse().unwrap();
                    let out = b
                        .except
                        .iter()
                        .any(|e| e.parse::<IpNet>().unwrap().contains(&a));
                    return cidr.contains(&a) && !out;
                }
                let Some(pod) = self.pod(a) else { return false };
                let ns_ok = match &peer.namespace_selector {
                    None => pod.namespace() == policy_ns,
                    Some(s) => k8s_matches(s, &self.ns_labels(pod.namespace())),
                };
                let pod_ok = peer
                    .pod_selector
                    .as_ref()
                    .is_none_or(|s| k8s_matches(s, &pod.metadata.labels));
                ns_ok && pod_ok
            })
    }

    fn port_ok(&self, ports: &[PolicyPort], dst: IpAddr, proto: &str, port: u16) -> bool {
        ports.is_empty()
            || ports.iter().any(|p| {
                if p.protocol.as_deref().unwrap_or("TCP") != proto {
                    return false;
                }
                match (&p.port, p.end_port) {
                    (None, _) => true,
                    (Some(IntOrString::Int(n)), None) => i64::from(port) == *n,
                    (Some(IntOrString::Int(n)), Some(e)) => (*n..=e).contains(&i64::from(port)),
                    (Some(IntOrString::Str(name)), _) => self.pod(dst).is_some_and(|w| {
                        w.spec.ports.iter().any(|wp| {
                            &wp.name == name && wp.protocol.to_string() == proto && wp.port == port
                        })
                    }),
                }
            })
    }

    fn isolating<'a>(
        &'a self,
        w: &'a WorkloadEndpoint,
        dir: &'a str,
    ) -> impl Iterator<Item = &'a K8sNetworkPolicy> {
        self.policies.iter().filter(move |p| {
            p.namespace() == w.namespace()
                && k8s_matches(p.spec.pod_selector.as_ref().unwrap(), &w.metadata.labels)
                && p.effective_policy_types().iter().any(|t| t == dir)
        })
    }

    fn ingress_ok(&self, dst: &WorkloadEndpoint, src: IpAddr, proto: &str, port: u16) -> bool {
        let mut pols = self.isolating(dst, "Ingress").peekable();
        if pols.peek().is_none() {
            return true;
        }
        let d = dst.spec.ip_networks[0].addr();
        pols.any(|p| {
            p.spec.ingress.iter().any(|r| {
                self.peer_ok(&r.from, p.namespace(), src) && self.port_ok(&r.ports, d, proto, port)
            })
        })
    }

    fn egress_ok(&self, src: &WorkloadEndpoint, dst: IpAddr, proto: &str, port: u16) -> bool {
        let mut pols = self.isolating(src, "Egress").peekable();
        if pols.peek().is_none() {
            return true;
        }
        pols.any(|p| {
            p.spec.egress.iter().any(|r| {
                self.peer_ok(&r.to, p.namespace(), dst) && self.port_ok(&r.ports, dst, proto, port)
            })
        })
    }

    fn expected(&self, src: IpAddr, dst: IpAddr, proto: &str, port: u16) -> bool {
        self.pod(src)
            .is_none_or(|w| self.egress_ok(w, dst, proto, port))
            && self
                .pod(dst)
                .is_none_or(|w| self.ingress_ok(w, src, proto, port))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn converted_kubernetes_policies_enforce_kubernetes_semantics(world in arb_world()) {
        let rs = compile(&world.input(), &PolicyConfig::default()).ruleset;
        let mut addrs: Vec<IpAddr> = world.pods.iter().map(|w| w.spec.ip_networks[0].addr()).collect();
        addrs.extend(OUTSIDE.iter().map(|s| s.parse::<IpAddr>().unwrap()));
        for &src in &addrs {
            for &dst in &addrs {
                if src == dst || (world.pod(src).is_none() && world.pod(dst).is_none()) {
                    continue;
                }
                for (proto, num, port) in [("TCP", 6u8, 80u16), ("TCP", 6, 81), ("TCP", 6, 82), ("UDP", 17, 53), ("UDP", 17, 80)] {
                    let peer = |a: IpAddr| match world.pod(a) {
                        Some(w) => Peer::Local(w),
                        None => Peer::Away(a.to_string()),
                    };
                    let pkt = packet(&peer(src), &peer(dst), num, port);
                    prop_assert_eq!(
                        forwards_in(&rs, &pkt),
                        world.expected(src, dst, proto, port),
                        "{} -> {} {} {}", src, dst, proto, port
                    );
                }
            }
        }
    }
}
