//! Property test: for random Calico policies (global and namespaced, with
//! orders, Allow/Deny/Pass/Log, selectors, notSelectors, namespace
//! selectors, nets, notNets, ports, named ports, notPorts, protocols) and
//! random packets, the compiled nft table run through the interpreter
//! decides exactly as a direct model of Calico's semantics does.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::*;
use ipnet::IpNet;
use proptest::prelude::*;
use tortie_felix::policy::interp::{CtState, Packet};
use tortie_felix::policy::{compile, PolicyConfig, PolicyInput};
use tortie_model::k8s::namespace_profile;
use tortie_model::policy::{
    Action, EntityRule, GlobalNetworkPolicySpec, NetworkPolicySpec, PolicyOrder, PolicyType, Rule,
};
use tortie_model::{
    GlobalNetworkPolicy, GlobalNetworkSet, NetworkPolicy, NetworkSet, NetworkSetSpec, ObjectMeta,
    Port, Protocol, Selector, WorkloadEndpoint,
};

const SELECTORS: [&str; 6] = [
    "",
    "app == 'web'",
    "app == 'db'",
    "has(tier)",
    "role == 'ext'",
    "app != 'web'",
];
const NS_SELECTORS: [&str; 4] = ["", "team == 'a'", "all()", "team != 'a'"];
const NAMESPACES: [&str; 2] = ["x", "y"];
const EXTERNAL: [&str; 5] = [
    "192.0.2.5",
    "198.51.100.5",
    "203.0.113.5",
    "2001:db8::5",
    "2001:db8:1::5",
];

/// One side of a generated rule.
#[derive(Debug, Clone)]
struct GenSide {
    selector: usize,
    not_selector: usize,
    ns_selector: usize,
    nets: Option<&'static str>,
    not_nets: Option<&'static str>,
    ports: Vec<Port>,
    not_ports: Vec<Port>,
}

fn arb_side(with_ports: bool) -> impl Strategy<Value = GenSide> {
    let ports = prop::sample::subsequence(
        vec![
            Port::single(80),
            Port::Range {
                min: 8080,
                max: 8081,
            },
            Port::Named("http".into()),
        ],
        0..=2,
    );
    let not_ports = prop::sample::subsequence(vec![Port::single(81)], 0..=1);
    (
        prop_oneof![3 => Just(0usize), 2 => 1..SELECTORS.len()],
        prop_oneof![6 => Just(0usize), 1 => 1..SELECTORS.len()],
        prop_oneof![6 => Just(0usize), 1 => 1..NS_SELECTORS.len()],
        prop::option::weighted(
            0.15,
            prop::sample::select(vec![
                "10.244.0.0/16",
                "192.0.2.0/24",
                "198.51.100.0/25",
                "fd00::/120",
                "2001:db8::/48",
            ]),
        ),
        prop::option::weighted(
            0.1,
            prop::sample::select(vec!["10.244.1.0/24", "192.0.2.4/30", "fd00::1/128"]),
        ),
        prop_oneof![2 => Just(vec![]), 1 => ports],
        prop_oneof![4 => Just(vec![]), 1 => not_ports],
    )
        .prop_map(
            move |(selector, not_selector, ns_selector, nets, not_nets, ports, not_ports)| {
                GenSide {
                    selector,
                    not_selector,
                    ns_selector,
                    nets,
                    not_nets,
                    ports: if with_ports { ports } else { vec![] },
                    not_ports: if with_ports { not_ports } else { vec![] },
                }
            },
        )
}

impl GenSide {
    fn entity(&self) -> EntityRule {
        let nets = |n: Option<&str>| n.map(|s| s.parse::<IpNet>().unwrap()).into_iter().collect();
        EntityRule {
            selector: SELECTORS[self.selector].into(),
            not_selector: SELECTORS[self.not_selector].into(),
            namespace_selector: NS_SELECTORS[self.ns_selector].into(),
            nets: nets(self.nets),
            not_nets: nets(self.not_nets),
            ports: self.ports.clone(),
            not_ports: self.not_ports.clone(),
            ..EntityRule::default()
        }
    }
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    let action = prop_oneof![
        3 => Just(Action::Allow),
        3 => Just(Action::Deny),
        1 => Just(Action::Pass),
        1 => Just(Action::Log)
    ];
    let proto = prop_oneof![
        3 => Just(None),
        2 => Just(Some("TCP")),
        1 => Just(Some("UDP")),
        1 => Just(Some("ICMP")),
        1 => Just(Some("ICMPv6"))
    ];
    (action, proto).prop_flat_map(|(action, proto)| {
        let ports = matches!(proto, Some("TCP" | "UDP"));
        (arb_side(ports), arb_side(ports), any::<bool>()).prop_map(move |(s, d, not_udp)| {
            let mut r = Rule::new(action);
            r.protocol = proto.map(Protocol::named);
            if proto.is_none() && not_udp {
                r.not_protocol = Some(Protocol::named("UDP"));
            }
            r.source = s.entity();
            r.destination = d.entity();
            // One family per rule (mixed ones are refused).
            let v4 = |e: &EntityRule| e.all_nets().any(|n| matches!(n, IpNet::V4(_)));
            let v6 = |e: &EntityRule| e.all_nets().any(|n| matches!(n, IpNet::V6(_)));
            if (v4(&r.source) || v4(&r.destination)) && (v6(&r.source) || v6(&r.destination)) {
                r.destination.nets.clear();
                r.destination.not_nets.clear();
                if v4(&r.source) && v6(&r.source) {
                    r.source.not_nets.clear();
                }
            }
            r
        })
    })
}

/// A generated policy: global or in a namespace.
#[derive(Debug, Clone)]
struct GenPolicy {
    ns: Option<&'static str>,
    name: String,
    order: Option<u8>,
    selector: usize,
    ns_selector: usize,
    types: Vec<PolicyType>,
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

fn arb_policy(i: usize) -> impl Strategy<Value = GenPolicy> {
    (
        prop::option::of(prop::sample::select(NAMESPACES.to_vec())),
        prop::option::weighted(0.8, 0u8..3),
        prop_oneof![2 => Just(0usize), 1 => 1..SELECTORS.len()],
        prop_oneof![3 => Just(0usize), 1 => 1..NS_SELECTORS.len()],
        prop::sample::select(vec![
            vec![],
            vec![PolicyType::Ingress],
            vec![PolicyType::Egress],
            vec![PolicyType::Ingress, PolicyType::Egress],
        ]),
        prop::collection::vec(arb_rule(), 0..4),
        prop::collection::vec(arb_rule(), 0..4),
    )
        .prop_map(
            move |(ns, order, selector, ns_selector, types, ingress, egress)| {
                // Rules of a direction the types exclude are refused: drop them.
                let keep = |t: PolicyType, r: Vec<Rule>| {
                    if types.is_empty() || types.contains(&t) {
                        r
                    } else {
                        vec![]
                    }
                };
                GenPolicy {
                    ns,
                    name: format!("p{i}"),
                    order,
                    selector,
                    ns_selector,
                    ingress: keep(PolicyType::Ingress, ingress),
                    egress: keep(PolicyType::Egress, egress),
                    types,
                }
            },
        )
}

/// The world: pods (labels, namespace, node, named port), namespace labels, policies.
#[derive(Debug, Clone)]
struct World {
    pods: Vec<WorkloadEndpoint>,
    ns_team: [bool; 2],
    policies: Vec<GenPolicy>,
}

fn arb_pod(i: usize) -> impl Strategy<Value = WorkloadEndpoint> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        prop::sample::select(vec!["web", "db"]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![80u16, 8081, 9])),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.4),
    )
        .prop_map(move |(ns, app, tier, http, remote, v6)| {
            let mut labels = vec![("app", app)];
            if tier {
                labels.push(("tier", "1"));
            }
            let node = if remote { "n2" } else { NODE };
            let mut w = wep(
                ns,
                &format!("pod{i}"),
                node,
                &format!("10.244.{i}.1"),
                &labels,
            );
            if v6 {
                w.spec
                    .ip_networks
                    .push(format!("fd00::{i}/128").parse().unwrap());
            }
            match http {
                Some(p) => with_port(w, "http", "TCP", p),
                None => w,
            }
        })
}

fn arb_world() -> impl Strategy<Value = World> {
    (
        (arb_pod(0), arb_pod(1), arb_pod(2), arb_pod(3)),
        any::<[bool; 2]>(),
        (0usize..5).prop_flat_map(|n| (0..n).map(arb_policy).collect::<Vec<_>>()),
    )
        .prop_map(|((a, b, c, d), ns_team, policies)| World {
            pods: vec![a, b, c, d],
            ns_team,
            policies,
        })
}

impl World {
    fn ns_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let i = NAMESPACES.iter().position(|n| *n == ns).unwrap();
        let team = if self.ns_team[i] { "a" } else { "b" };
        labels(&[("team", team)])
    }

    fn input(&self) -> PolicyInput {
        let mut i = input(self.pods.clone());
        for ns in NAMESPACES {
            i.profiles.push(namespace_profile(ns, &self.ns_labels(ns)));
        }
        let set = |name: &str, ns: Option<&str>, net: &str| {
            let mut metadata = ObjectMeta::named(name);
            metadata.namespace = ns.map(String::from);
            metadata.labels = labels(&[("role", "ext")]);
            (
                metadata,
                NetworkSetSpec {
                    nets: vec![net.parse().unwrap()],
                    ..NetworkSetSpec::default()
                },
            )
        };
        let (metadata, mut spec) = set("g", None, "192.0.2.0/24");
        spec.nets.push("2001:db8::/64".parse().unwrap());
        i.global_network_sets
            .push(GlobalNetworkSet { metadata, spec });
        let (metadata, spec) = set("n", Some("x"), "198.51.100.0/24");
        i.network_sets.push(NetworkSet { metadata, spec });
        for p in &self.policies {
            let mut metadata = ObjectMeta::named(&p.name);
            let order = p.order.map(|o| PolicyOrder(f64::from(o)));
            match p.ns {
                Some(ns) => {
                    metadata.namespace = Some(ns.into());
                    let spec = NetworkPolicySpec {
                        order,
                        selector: SELECTORS[p.selector].into(),
                        types: p.types.clone(),
                        ingress: p.ingress.clone(),
                        egress: p.egress.clone(),
                        ..NetworkPolicySpec::default()
                    };
                    let mut np = NetworkPolicy { metadata, spec };
                    np.apply_defaults();
                    assert_eq!(np.validate(), vec![]);
                    i.network_policies.push(np);
                }
                None => {
                    let spec = GlobalNetworkPolicySpec {
                        order,
                        selector: SELECTORS[p.selector].into(),
                        namespace_selector: NS_SELECTORS[p.ns_selector].into(),
                        types: p.types.clone(),
                        ingress: p.ingress.clone(),
                        egress: p.egress.clone(),
                        ..GlobalNetworkPolicySpec::default()
                    };
                    let mut g = GlobalNetworkPolicy { metadata, spec };
                    g.apply_defaults();
                    assert_eq!(g.validate(), vec![]);
                    i.global_network_policies.push(g);
                }
            }
        }
        i
    }
}

// ---------------------------------------------------------------- model --

/// Something at an address: a pod (with its namespace) or a network set.
struct At<'a> {
    labels: BTreeMap<String, String>,
    ns: Option<&'a str>,
    pod: Option<&'a WorkloadEndpoint>,
}

struct Pkt {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    dport: u16,
}

fn sel(s: &str) -> Option<Selector> {
    (!s.is_empty()).then(|| Selector::parse(s).unwrap())
}

impl World {
    /// A pod's labels as selectors see them (own + namespace/orchestrator).
    fn pod_labels(w: &WorkloadEndpoint) -> BTreeMap<String, String> {
        w.metadata.labels.clone()
    }

    fn at(&self, a: IpAddr) -> Vec<At<'_>> {
        let mut v: Vec<At<'_>> = self
            .pods
            .iter()
            .filter(|w| w.spec.ip_networks.iter().any(|n| n.addr() == a))
            .map(|w| At {
                labels: Self::pod_labels(w),
                ns: Some(w.namespace()),
                pod: Some(w),
            })
            .collect();
        let ext = labels(&[("role", "ext")]);
        let global = ["192.0.2.0/24", "2001:db8::/64"];
        if global
            .iter()
            .any(|n| n.parse::<IpNet>().unwrap().contains(&a))
        {
            v.push(At {
                labels: ext.clone(),
                ns: None,
                pod: None,
            });
        }
        if "198.51.100.0/24".parse::<IpNet>().unwrap().contains(&a) {
            let mut l = ext;
            l.insert("projectcalico.org/namespace".into(), "x".into());
            v.push(At {
                labels: l,
                ns: Some("x"),
                pod: None,
            });
        }
        v
    }

    /// Does `e` (a side of a rule of a policy in `ns`) match address `a`, port `port`?
    fn side_matches(
        &self,
        e: &EntityRule,
        ns: Option<&str>,
        a: IpAddr,
        port: u16,
        proto: u8,
    ) -> bool {
        if !e.nets.is_empty() && !e.nets.iter().any(|n| n.contains(&a)) {
            return false;
        }
        if e.not_nets.iter().any(|n| n.contains(&a)) {
            return false;
        }
        let here = self.at(a);
        let ns_sel = sel(&e.namespace_selector);
        let positive = !e.selector.is_empty()
            || !e.namespace_selector.is_empty()
            || (!e.not_selector.is_empty() && ns.is_some());
        let in_scope = |t: &At<'_>| {
            // As Calico: `all()` means "in some namespace"; other namespace
            // selectors test the namespace labels an entity inherits, which
            // global network sets lack (so `team != 'a'` matches them).
            let ns_ok = match (&ns_sel, ns) {
                (Some(_), _) if e.namespace_selector == "all()" => t.ns.is_some(),
                (Some(s), _) => {
                    s.matches(&t.ns.map(|n| self.ns_labels_full(n)).unwrap_or_default())
                }
                (None, Some(policy_ns)) => t.ns == Some(policy_ns),
                (None, None) => true,
            };
            ns_ok && sel(&e.selector).is_none_or(|s| s.matches(&t.labels))
        };
        if positive && !here.iter().any(in_scope) {
            return false;
        }
        if let Some(not) = sel(&e.not_selector) {
            if here.iter().any(|t| not.matches(&t.labels)) {
                return false;
            }
        }
        let in_range =
            |p: &Port| matches!(p, Port::Range { min, max } if (*min..=*max).contains(&port));
        if e.not_ports.iter().any(in_range) {
            return false;
        }
        if e.ports.is_empty() {
            return true;
        }
        let named = |p: &Port| {
            let Port::Named(n) = p else { return false };
            // Named ports resolve on pods the side's (scoped) selector picks.
            here.iter().filter(|t| !positive || in_scope(t)).any(|t| {
                t.pod.is_some_and(|w| {
                    w.spec.ports.iter().any(|wp| {
                        &wp.name == n && wp.protocol.number() == Some(proto) && wp.port == port
                    })
                })
            })
        };
        e.ports.iter().any(|p| in_range(p) || named(p))
    }

    fn ns_labels_full(&self, ns: &str) -> BTreeMap<String, String> {
        let mut l = self.ns_labels(ns);
        l.insert("kubernetes.io/metadata.name".into(), ns.into());
        l.insert("projectcalico.org/name".into(), ns.into());
        l
    }

    fn rule_matches(&self, r: &Rule, ns: Option<&str>, p: &Pkt) -> bool {
        if let Some(proto) = &r.protocol {
            if proto.number() != Some(p.proto) {
                return false;
            }
            // ICMP is IPv4's, ICMPv6 IPv6's.
            match proto.number() {
                Some(1) if !p.src.is_ipv4() => return false,
                Some(58) if !p.src.is_ipv6() => return false,
                _ => {}
            }
        }
        if let Some(proto) = &r.not_protocol {
            if proto.number() == Some(p.proto) {
                return false;
            }
        }
        // As Calico renders rules per IP version: a rule whose CIDRs are of
        // the other family (notNets included) does not exist for this one.
        let mut nets = r.source.all_nets().chain(r.destination.all_nets());
        if nets.any(|n| n.addr().is_ipv4() != p.src.is_ipv4()) {
            return false;
        }
        // Generated ICMP packets are echo requests; ICMP rules carry no type.
        let sport = 40000;
        self.side_matches(&r.source, ns, p.src, sport, p.proto)
            && self.side_matches(&r.destination, ns, p.dst, p.dport, p.proto)
    }

    fn applies(&self, p: &GenPolicy, w: &WorkloadEndpoint) -> bool {
        let l = Self::pod_labels(w);
        let s = sel(SELECTORS[p.selector]).is_none_or(|s| s.matches(&l));
        match p.ns {
            Some(ns) => s && w.namespace() == ns,
            None => {
                s && sel(NS_SELECTORS[p.ns_selector])
                    .is_none_or(|n| n.matches(&self.ns_labels_full(w.namespace())))
            }
        }
    }

    /// Calico's verdict for `w` in direction `dir`.
    fn verdict(&self, w: &WorkloadEndpoint, dir: PolicyType, p: &Pkt) -> bool {
        let mut pols: Vec<&GenPolicy> = self
            .policies
            .iter()
            .filter(|g| {
                let types = if g.types.is_empty() {
                    tortie_model::policy::default_types(&g.ingress, &g.egress)
                } else {
                    g.types.clone()
                };
                types.contains(&dir) && self.applies(g, w)
            })
            .collect();
        let id = |g: &GenPolicy| match g.ns {
            Some(ns) => format!("{ns}/{}", g.name),
            None => g.name.clone(),
        };
        pols.sort_by_key(|g| (g.order.is_none(), g.order, id(g)));
        if !pols.is_empty() {
            let mut passed = false;
            'tier: for g in pols {
                let rules = if dir == PolicyType::Ingress {
                    &g.ingress
                } else {
                    &g.egress
                };
                for r in rules {
                    if self.rule_matches(r, g.ns, p) {
                        match r.action {
                            Action::Allow => return true,
                            Action::Deny => return false,
                            Action::Pass => {
                                passed = true;
                                break 'tier;
                            }
                            Action::Log => {}
                        }
                    }
                }
            }
            if !passed {
                return false;
            }
        }
        // The namespace profile allows everything.
        true
    }

    fn local(&self, a: IpAddr) -> Option<&WorkloadEndpoint> {
        self.pods
            .iter()
            .find(|w| w.spec.ip_networks.iter().any(|n| n.addr() == a) && w.spec.node == NODE)
    }

    fn expected(&self, p: &Pkt) -> bool {
        let out = self
            .local(p.src)
            .is_none_or(|w| self.verdict(w, PolicyType::Egress, p));
        let inn = self
            .local(p.dst)
            .is_none_or(|w| self.verdict(w, PolicyType::Ingress, p));
        out && inn
    }
}

fn addresses(w: &World) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = w
        .pods
        .iter()
        .flat_map(|p| p.spec.ip_networks.iter().map(|n| n.addr()))
        .collect();
    v.extend(EXTERNAL.iter().map(|s| s.parse::<IpAddr>().unwrap()));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compiled_tables_decide_as_calico_semantics(world in arb_world()) {
        let input = world.input();
        let rs = compile(&input, &PolicyConfig::default()).ruleset;
        let addrs = addresses(&world);
        let iface = |a: IpAddr| {
            world.local(a).map_or_else(|| "eth0".to_string(), |w| w.spec.interface_name.clone())
        };
        for &src in &addrs {
            for &dst in &addrs {
                let local = world.local(src).is_some() || world.local(dst).is_some();
                if src == dst || !local || src.is_ipv4() != dst.is_ipv4() {
                    continue;
                }
                let icmp = if src.is_ipv4() { 1 } else { 58 };
                for (proto, dport) in [(6u8, 80u16), (6, 81), (6, 8080), (17, 80), (17, 9), (icmp, 0)] {
                    let pkt = Packet {
                        src,
                        dst,
                        proto,
                        sport: 40000,
                        dport,
                        icmp_type: 8,
                        icmp_code: 0,
                        iif: iface(src),
                        oif: iface(dst),
                        ct: CtState::New,
                        mark: 0,
                    };
                    let want = world.expected(&Pkt { src, dst, proto, dport });
                    prop_assert_eq!(
                        forwards_in(&rs, &pkt), want,
                        "{} -> {} proto {} port {}", src, dst, proto, dport
                    );
                }
            }
        }
    }
}
