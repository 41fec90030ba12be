//! The Kubernetes API server's checks of NetworkPolicy and Namespace
//! (`pkg/apis/networking/validation`), with tortie's refusal of fields
//! Kubernetes would accept but ignore.

use ipnet::IpNet;

use super::{
    IntOrString, K8sKind, K8sNamespace, K8sNetworkPolicy, LabelSelector, PolicyPeer, PolicyPort,
};
use crate::error::{Checker, FieldError, Reason};
use crate::policy::K8S_POLICY_PREFIX;
use crate::protocol::is_port_name;
use crate::validate;

/// Longest resource name.
const MAX_NAME: usize = 253;

fn empty_object(v: Option<&serde_json::Value>) -> bool {
    match v {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

/// Checks a Kubernetes NetworkPolicy.
pub(super) fn network_policy(np: &K8sNetworkPolicy) -> Vec<FieldError> {
    let id = format!(
        "{}({}/{})",
        K8sKind::NetworkPolicy.display(),
        np.namespace(),
        np.metadata.name
    );
    let mut c = Checker::new(id);
    validate::check_meta(&mut c, &np.metadata);
    if np.metadata.name.len() + K8S_POLICY_PREFIX.len() > MAX_NAME {
        let reason = Reason::Invalid(format!(
            "at most {} characters: the policy is stored as {K8S_POLICY_PREFIX}<name>",
            MAX_NAME - K8S_POLICY_PREFIX.len()
        ));
        c.reject("metadata.name", &np.metadata.name, reason);
    }
    if let Some(ns) = &np.metadata.namespace {
        if !validate::is_dns1123_label(ns) {
            c.reject("metadata.namespace", ns, Reason::NotDns1123Label);
        }
    }
    if !empty_object(np.status.as_ref()) {
        c.reject_display(
            "status",
            "{...}",
            Reason::Unsupported("status is the API server's"),
        );
    }
    let s = &np.spec;
    match &s.pod_selector {
        Some(sel) => label_selector(&mut c, "spec.podSelector", sel),
        None => c.reject("spec.podSelector", "", Reason::Required),
    }
    policy_types(&mut c, np);
    for (i, r) in s.ingress.iter().enumerate() {
        peers(&mut c, &format!("spec.ingress[{i}].from"), &r.from);
        ports(&mut c, &format!("spec.ingress[{i}].ports"), &r.ports);
    }
    for (i, r) in s.egress.iter().enumerate() {
        peers(&mut c, &format!("spec.egress[{i}].to"), &r.to);
        ports(&mut c, &format!("spec.egress[{i}].ports"), &r.ports);
    }
    c.finish()
}

fn policy_types(c: &mut Checker, np: &K8sNetworkPolicy) {
    let s = &np.spec;
    for (i, t) in s.policy_types.iter().enumerate() {
        let field = format!("spec.policyTypes[{i}]");
        if t != "Ingress" && t != "Egress" {
            c.reject(
                &field,
                t,
                Reason::NotOneOf {
                    allowed: "Ingress, Egress",
                },
            );
        } else if s.policy_types[..i].contains(t) {
            c.reject(&field, t, Reason::NotAllowed("each type may appear once"));
        }
    }
    let types = np.effective_policy_types();
    let dirs = [
        ("Ingress", "spec.ingress", s.ingress.len()),
        ("Egress", "spec.egress", s.egress.len()),
    ];
    for (dir, field, n) in dirs {
        if n > 0 && !types.iter().any(|t| t == dir) {
            c.reject_display(
                field,
                format!("{n} rule(s)"),
                Reason::Invalid(format!(
                    "spec.policyTypes does not include {dir}, so Kubernetes ignores these rules; add {dir} to spec.policyTypes or remove them"
                )),
            );
        }
    }
}

fn label_selector(c: &mut Checker, path: &str, sel: &LabelSelector) {
    for (k, v) in &sel.match_labels {
        let field = format!("{path}.matchLabels[{k}]");
        if !validate::is_qualified_name(k) {
            c.reject(&field, k, Reason::NotQualifiedName);
        }
        if !validate::is_label_value(v) {
            c.reject(&field, v, Reason::NotLabelValue);
        }
    }
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        if !validate::is_qualified_name(&e.key) {
            c.reject(&format!("{at}.key"), &e.key, Reason::NotQualifiedName);
        }
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.is_empty() => c.reject(
                &format!("{at}.values"),
                "[]",
                Reason::NotAllowed("must be non-empty with operator In or NotIn"),
            ),
            "Exists" | "DoesNotExist" if !e.values.is_empty() => c.reject(
                &format!("{at}.values"),
                &e.values,
                Reason::NotAllowed("must be empty with operator Exists or DoesNotExist"),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => c.reject(
                &format!("{at}.operator"),
                other,
                Reason::NotOneOf {
                    allowed: "In, NotIn, Exists, DoesNotExist",
                },
            ),
        }
        for (j, v) in e.values.iter().enumerate() {
            if !validate::is_label_value(v) {
                c.reject(&format!("{at}.values[{j}]"), v, Reason::NotLabelValue);
            }
        }
    }
}

fn peers(c: &mut Checker, path: &str, peers: &[PolicyPeer]) {
    for (i, p) in peers.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let selectors = p.pod_selector.is_some() || p.namespace_selector.is_some();
        match (&p.ip_block, selectors) {
            (None, false) => c.reject(
                &at,
                "{}",
                Reason::Invalid("must specify podSelector, namespaceSelector or ipBlock".into()),
            ),
            (Some(_), true) => c.reject(
                &format!("{at}.ipBlock"),
                "{...}",
                Reason::Exclusive {
                    other: "podSelector and namespaceSelector",
                },
            ),
            _ => {}
        }
        if let Some(sel) = &p.pod_selector {
            label_selector(c, &format!("{at}.podSelector"), sel);
        }
        if let Some(sel) = &p.namespace_selector {
            label_selector(c, &format!("{at}.namespaceSelector"), sel);
        }
        if let Some(b) = &p.ip_block {
            ip_block(c, &format!("{at}.ipBlock"), b);
        }
    }
}

/// Parses a CIDR as Kubernetes does (host bits allowed, then masked).
pub(super) fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().map(|n| n.trunc())
}

fn ip_block(c: &mut Checker, path: &str, b: &super::IpBlock) {
    let Some(cidr) = parse_cidr(&b.cidr) else {
        c.reject(
            &format!("{path}.cidr"),
            &b.cidr,
            Reason::Invalid("must be a CIDR such as 10.0.0.0/8 or fd00::/64".into()),
        );
        return;
    };
    for (i, e) in b.except.iter().enumerate() {
        let field = format!("{path}.except[{i}]");
        match parse_cidr(e) {
            None => c.reject(
                &field,
                e,
                Reason::Invalid("must be a CIDR such as 10.0.0.0/8 or fd00::/64".into()),
            ),
            Some(x) if !(cidr.contains(&x) && x.prefix_len() > cidr.prefix_len()) => c.reject(
                &field,
                e,
                Reason::Invalid(format!("must be a strict subset of cidr {cidr}")),
            ),
            Some(_) => {}
        }
    }
}

fn ports(c: &mut Checker, path: &str, ports: &[PolicyPort]) {
    for (i, p) in ports.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if let Some(proto) = &p.protocol {
            if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
                c.reject(
                    &format!("{at}.protocol"),
                    proto,
                    Reason::NotOneOf {
                        allowed: "TCP, UDP, SCTP",
                    },
                );
            }
        }
        let start = match &p.port {
            Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
                let reason = Reason::OutOfRange {
                    min: 1,
                    max: 65535,
                    context: "",
                };
                c.reject(&format!("{at}.port"), n, reason);
                None
            }
            Some(IntOrString::Int(n)) => Some(*n),
            Some(IntOrString::Str(s)) => {
                if !is_port_name(s) {
                    c.reject(&format!("{at}.port"), s, Reason::NotPortName);
                }
                None
            }
            None => None,
        };
        if let Some(end) = p.end_port {
            end_port(c, &at, p, start, end);
        }
    }
}

fn end_port(c: &mut Checker, at: &str, p: &PolicyPort, start: Option<i64>, end: i64) {
    let field = format!("{at}.endPort");
    match (&p.port, start) {
        (Some(IntOrString::Int(_)), Some(s)) if end < s || end > 65535 => {
            let reason = Reason::OutOfRange {
                min: s.max(1) as u64,
                max: 65535,
                context: " (at least port)",
            };
            c.reject(&field, end, reason);
        }
        (Some(IntOrString::Int(_)), _) => {}
        _ => c.reject(
            &field,
            end,
            Reason::NotAllowed("needs a numeric port (not a named one)"),
        ),
    }
}

/// Checks a Kubernetes Namespace.
pub(super) fn namespace(ns: &K8sNamespace) -> Vec<FieldError> {
    let mut c = Checker::new(format!("Namespace({})", ns.metadata.name));
    validate::check_meta(&mut c, &ns.metadata);
    let name = &ns.metadata.name;
    if validate::is_dns1123_subdomain(name) && !validate::is_dns1123_label(name) {
        c.reject("metadata.name", name, Reason::NotDns1123Label);
    }
    if ns.metadata.namespace.is_some() {
        c.reject(
            "metadata.namespace",
            &ns.metadata.namespace,
            Reason::NotAllowed("a Namespace is not namespaced"),
        );
    }
    for (field, v) in [("spec", &ns.spec), ("status", &ns.status)] {
        if !empty_object(v.as_ref()) {
            c.reject_display(
                field,
                "{...}",
                Reason::Unsupported("tortie reads only a Namespace's name and labels"),
            );
        }
    }
    c.finish()
}
