//! Kubernetes → Calico conversion, as Calico's `K8sNetworkPolicyToCalico`
//! and `NamespaceToProfile` do it. Total: an invalid object (whose errors
//! the checker reports) still converts to something, never panics.

use std::collections::BTreeMap;

use super::check::parse_cidr;
use super::{IntOrString, K8sNamespace, K8sNetworkPolicy, LabelSelector, PolicyPeer, PolicyPort};
use crate::meta::ObjectMeta;
use crate::policy::{
    Action, EntityRule, NetworkPolicy, NetworkPolicySpec, PolicyOrder, PolicyType, Rule,
    K8S_POLICY_PREFIX,
};
use crate::profile::{Profile, ProfileSpec, NAMESPACE_PROFILE_PREFIX};
use crate::protocol::{Port, Protocol};
use crate::workload_endpoint::{LABEL_ORCHESTRATOR, NAMESPACE_LABEL_PREFIX};

/// Label (under `pcns.`) holding the namespace's own name, so that a
/// namespaceSelector can pick a namespace by name.
pub const NAMESPACE_NAME_LABEL: &str = "projectcalico.org/name";
/// The label the Kubernetes API server gives every namespace (its name).
pub const K8S_NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The order Calico gives every converted Kubernetes policy.
const K8S_POLICY_ORDER: f64 = 1000.0;

/// Pod or namespace selector (only pod selectors are limited to Kubernetes
/// endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SelectorKind {
    Pod,
    Namespace,
}

/// A Calico selector for a Kubernetes label selector. A namespace selector
/// that is present but empty is `all()`; an absent one is empty (the
/// policy's own namespace).
fn selector(s: Option<&LabelSelector>, kind: SelectorKind) -> String {
    let mut terms = Vec::new();
    if kind == SelectorKind::Pod {
        terms.push(format!("{LABEL_ORCHESTRATOR} == 'k8s'"));
    }
    let Some(s) = s else {
        return terms.join(" && ");
    };
    if kind == SelectorKind::Namespace
        && s.match_labels.is_empty()
        && s.match_expressions.is_empty()
    {
        return "all()".into();
    }
    for (k, v) in &s.match_labels {
        terms.push(format!("{k} == '{v}'"));
    }
    for e in &s.match_expressions {
        let values = e.values.join("', '");
        match e.operator.as_str() {
            "In" => terms.push(format!("{} in {{ '{values}' }}", e.key)),
            "NotIn" => terms.push(format!("{} not in {{ '{values}' }}", e.key)),
            "Exists" => terms.push(format!("has({})", e.key)),
            "DoesNotExist" => terms.push(format!("! has({})", e.key)),
            _ => {}
        }
    }
    terms.join(" && ")
}

/// One peer as entity criteria: nets for an ipBlock, else selectors.
fn peer_entity(peer: Option<&PolicyPeer>) -> EntityRule {
    let Some(peer) = peer else {
        return EntityRule::default();
    };
    if let Some(b) = &peer.ip_block {
        return EntityRule {
            nets: parse_cidr(&b.cidr).into_iter().collect(),
            not_nets: b.except.iter().filter_map(|e| parse_cidr(e)).collect(),
            ..EntityRule::default()
        };
    }
    EntityRule {
        selector: selector(peer.pod_selector.as_ref(), SelectorKind::Pod),
        namespace_selector: selector(peer.namespace_selector.as_ref(), SelectorKind::Namespace),
        ..EntityRule::default()
    }
}

/// The Calico port of a Kubernetes port: a number, `port:endPort`, or a name.
fn port_of(p: &PolicyPort) -> Option<Port> {
    match (&p.port, p.end_port) {
        (Some(IntOrString::Int(n)), end) => {
            let min = u16::try_from(*n).ok()?;
            let max = end.map_or(Some(min), |e| u16::try_from(e).ok())?;
            Some(Port::Range { min, max })
        }
        (Some(IntOrString::Str(name)), _) => Some(Port::Named(name.clone())),
        (None, _) => None,
    }
}

/// Per protocol, the ports (`None`: every port of that protocol). No ports
/// at all is `{None: None}`: any protocol, any port.
type ProtocolPorts = BTreeMap<Option<String>, Option<Vec<Port>>>;

fn protocol_ports(ports: &[PolicyPort]) -> ProtocolPorts {
    let mut out = ProtocolPorts::new();
    if ports.is_empty() {
        out.insert(None, None);
        return out;
    }
    for p in ports {
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let entry = out.entry(Some(proto)).or_insert_with(|| Some(Vec::new()));
        match (port_of(p), entry) {
            (None, e) => *e = None,
            (Some(port), Some(list)) => list.push(port),
            // Every port of this protocol is already allowed.
            (Some(_), None) => {}
        }
    }
    out
}

/// Merges numeric ports into the fewest ranges; named ports pass through.
pub(crate) fn simplify_ports(ports: Vec<Port>) -> Vec<Port> {
    let (mut ranges, mut named): (Vec<(u16, u16)>, Vec<Port>) = (Vec::new(), Vec::new());
    for p in ports {
        match p {
            Port::Range { min, max } => ranges.push((min, max)),
            n @ Port::Named(_) => named.push(n),
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for (min, max) in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(min) <= u32::from(last.1) + 1 => last.1 = last.1.max(max),
            _ => merged.push((min, max)),
        }
    }
    let mut out: Vec<Port> = merged
        .into_iter()
        .map(|(min, max)| Port::Range { min, max })
        .collect();
    named.dedup();
    out.extend(named);
    out
}

/// The Calico rules of one Kubernetes rule: one per protocol and peer.
fn rules(peers: &[PolicyPeer], ports: &[PolicyPort], ingress: bool) -> Vec<Rule> {
    let peers: Vec<Option<&PolicyPeer>> = if peers.is_empty() {
        vec![None]
    } else {
        peers.iter().map(Some).collect()
    };
    let mut out = Vec::new();
    for (proto, ports) in protocol_ports(ports) {
        let ports = ports.map(simplify_ports).unwrap_or_default();
        for peer in &peers {
            let mut r = Rule::new(Action::Allow);
            r.protocol = proto.as_deref().map(Protocol::named);
            if ingress {
                r.source = peer_entity(*peer);
            } else {
                r.destination = peer_entity(*peer);
            }
            // Kubernetes ports are always the destination's.
            r.destination.ports.clone_from(&ports);
            out.push(r);
        }
    }
    out
}

/// The Calico `NetworkPolicy` `knp.default.<name>` for a Kubernetes one.
pub fn network_policy_to_calico(np: &K8sNetworkPolicy) -> NetworkPolicy {
    let s = &np.spec;
    let ingress: Vec<Rule> = s
        .ingress
        .iter()
        .flat_map(|r| rules(&r.from, &r.ports, true))
        .collect();
    let egress: Vec<Rule> = s
        .egress
        .iter()
        .flat_map(|r| rules(&r.to, &r.ports, false))
        .collect();
    let types_given = np.effective_policy_types();
    let mut types = Vec::new();
    if types_given.iter().any(|t| t == "Ingress") {
        types.push(PolicyType::Ingress);
    }
    if types_given.iter().any(|t| t == "Egress") {
        types.push(PolicyType::Egress);
    }
    let mut metadata = ObjectMeta::named(format!("{K8S_POLICY_PREFIX}{}", np.metadata.name));
    metadata.namespace = Some(np.namespace().to_owned());
    NetworkPolicy {
        metadata,
        spec: NetworkPolicySpec {
            order: Some(PolicyOrder(K8S_POLICY_ORDER)),
            selector: selector(s.pod_selector.as_ref(), SelectorKind::Pod),
            types,
            ingress,
            egress,
            ..NetworkPolicySpec::default()
        },
    }
}

/// The Calico `Profile` `kns.<name>` for a Kubernetes Namespace: allow
/// both ways, and the namespace's labels under `pcns.`: its own, the
/// `kubernetes.io/metadata.name` label the API server gives every
/// namespace, and Calico's `projectcalico.org/name`.
pub fn namespace_to_profile(ns: &K8sNamespace) -> Profile {
    namespace_profile(&ns.metadata.name, &ns.metadata.labels)
}

/// The profile of namespace `name` with `labels` (see [`namespace_to_profile`]).
pub fn namespace_profile(name: &str, labels: &BTreeMap<String, String>) -> Profile {
    let mut labels = labels.clone();
    labels.insert(K8S_NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
    labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
    let labels: BTreeMap<String, String> = labels
        .into_iter()
        .map(|(k, v)| (format!("{NAMESPACE_LABEL_PREFIX}{k}"), v))
        .collect();
    Profile {
        metadata: ObjectMeta::named(format!("{NAMESPACE_PROFILE_PREFIX}{name}")),
        spec: ProfileSpec {
            ingress: vec![Rule::new(Action::Allow)],
            egress: vec![Rule::new(Action::Allow)],
            labels_to_apply: labels,
        },
    }
}
