//! Validation of policy specs and rules, following Calico's validator
//! (`libcalico-go/lib/validator/v3`), with tortie's refusals of the fields
//! it does not implement.

use ipnet::IpNet;

use super::rule::{EntityRule, IcmpFields, PolicyType, Rule};
use super::{non_empty, DEFAULT_TIER};
use crate::error::{Checker, Reason};
use crate::protocol::{Port, Protocol, ICMP, ICMPV6, PROTOCOL_NAMES};
use crate::validate;

/// The fields every policy kind shares.
pub(crate) struct Common<'a> {
    pub(crate) tier: Option<&'a str>,
    pub(crate) selector: &'a str,
    pub(crate) types: &'a [PolicyType],
    pub(crate) ingress: &'a [Rule],
    pub(crate) egress: &'a [Rule],
}

/// Rejects a refused field that is present.
pub(crate) fn refuse(
    c: &mut Checker,
    field: &str,
    value: Option<&serde_json::Value>,
    why: &'static str,
) {
    if let Some(v) = value {
        c.reject_display(field, v, Reason::Unsupported(why));
    }
}

/// Tier, selector, types and every rule.
pub(crate) fn check_common(c: &mut Checker, p: &Common<'_>) {
    if let Some(t) = p.tier {
        if t != DEFAULT_TIER {
            c.reject(
                "spec.tier",
                t,
                Reason::Unsupported(
                    "tortie has one tier, `default` (Tier resources are not implemented)",
                ),
            );
        }
    }
    validate::check_selector(c, "spec.selector", non_empty(p.selector));
    for (i, t) in p.types.iter().enumerate() {
        if p.types[..i].contains(t) {
            c.reject_display(
                &format!("spec.types[{i}]"),
                format!("{t:?}"),
                Reason::NotAllowed("each type may appear once"),
            );
        }
    }
    let dirs = [
        (PolicyType::Ingress, "spec.ingress", p.ingress),
        (PolicyType::Egress, "spec.egress", p.egress),
    ];
    for (dir, field, rules) in dirs {
        if !rules.is_empty() && !p.types.is_empty() && !p.types.contains(&dir) {
            c.reject_display(
                field,
                format!("{} rule(s)", rules.len()),
                Reason::Invalid(format!(
                    "spec.types does not include {dir:?}, so these rules would never apply; add {dir:?} to spec.types or remove them"
                )),
            );
        }
        for (i, r) in rules.iter().enumerate() {
            check_rule(c, &format!("{field}[{i}]"), r);
        }
    }
}

/// Checks ingress or egress rules of a profile.
pub(crate) fn check_rules(c: &mut Checker, field: &str, rules: &[Rule]) {
    for (i, r) in rules.iter().enumerate() {
        check_rule(c, &format!("{field}[{i}]"), r);
    }
}

/// One rule, at `path` (e.g. `spec.ingress[0]`).
fn check_rule(c: &mut Checker, path: &str, r: &Rule) {
    refuse(
        c,
        &format!("{path}.http"),
        r.http.as_ref(),
        "application-layer (HTTP) matches need a proxy tortie does not run",
    );
    if let Some(v) = r.ip_version {
        if v != 4 && v != 6 {
            c.reject(
                &format!("{path}.ipVersion"),
                v,
                Reason::NotOneOf { allowed: "4, 6" },
            );
        }
    }
    for (field, p) in [("protocol", &r.protocol), ("notProtocol", &r.not_protocol)] {
        if let Some(p) = p {
            if p.number().is_none() {
                c.reject_display(
                    &format!("{path}.{field}"),
                    p,
                    Reason::NotOneOf {
                        allowed: PROTOCOL_NAMES,
                    },
                );
            }
        }
    }
    check_icmp(c, path, r);
    for (side, e) in [("source", &r.source), ("destination", &r.destination)] {
        check_entity(c, &format!("{path}.{side}"), e, r.protocol.as_ref());
    }
    check_families(c, path, r);
}

fn check_icmp(c: &mut Checker, path: &str, r: &Rule) {
    let proto = r.protocol.as_ref().and_then(Protocol::number);
    let fields: [(&str, Option<&IcmpFields>); 2] =
        [("icmp", r.icmp.as_ref()), ("notICMP", r.not_icmp.as_ref())];
    for (field, f) in fields {
        let Some(f) = f else { continue };
        let at = format!("{path}.{field}");
        if !matches!(proto, Some(ICMP | ICMPV6)) {
            c.reject_display(
                &at,
                format!("{f:?}"),
                Reason::NotAllowed("ICMP fields need protocol ICMP or ICMPv6"),
            );
        }
        if f.code.is_some() && f.icmp_type.is_none() {
            c.reject(
                &format!("{at}.code"),
                f.code,
                Reason::Invalid("an ICMP code needs an ICMP type".into()),
            );
        }
        if let Some(t @ 255) = f.icmp_type {
            let reason = Reason::OutOfRange {
                min: 0,
                max: 254,
                context: "",
            };
            c.reject(&format!("{at}.type"), t, reason);
        }
    }
    let family = match (proto, r.not_protocol.as_ref().and_then(Protocol::number)) {
        (Some(ICMP), _) | (_, Some(ICMP)) => Some(4),
        (Some(ICMPV6), _) | (_, Some(ICMPV6)) => Some(6),
        _ => None,
    };
    if let (Some(want), Some(v)) = (family, r.ip_version) {
        if want != v {
            c.reject(
                &format!("{path}.ipVersion"),
                v,
                Reason::Invalid(format!(
                    "must be {want} with protocol ICMP{}",
                    if want == 6 { "v6" } else { "" }
                )),
            );
        }
    }
}

fn check_entity(c: &mut Checker, path: &str, e: &EntityRule, protocol: Option<&Protocol>) {
    refuse(
        c,
        &format!("{path}.services"),
        e.services.as_ref(),
        "Kubernetes Services are not modelled",
    );
    refuse(
        c,
        &format!("{path}.serviceAccounts"),
        e.service_accounts.as_ref(),
        "service accounts are not modelled",
    );
    let selectors = [
        ("selector", &e.selector),
        ("notSelector", &e.not_selector),
        ("namespaceSelector", &e.namespace_selector),
    ];
    for (field, s) in selectors {
        validate::check_selector(c, &format!("{path}.{field}"), non_empty(s));
    }
    let ports_ok = protocol.is_some_and(Protocol::supports_ports);
    for (field, ports) in [("ports", &e.ports), ("notPorts", &e.not_ports)] {
        if !ports.is_empty() && !ports_ok {
            c.reject_display(
                &format!("{path}.{field}"),
                join(ports),
                Reason::NotAllowed(
                    "rules with ports must set protocol to TCP, UDP, SCTP or UDPLite",
                ),
            );
        }
    }
    for (i, p) in e.not_ports.iter().enumerate() {
        if let Port::Named(n) = p {
            c.reject(
                &format!("{path}.notPorts[{i}]"),
                n,
                Reason::Unsupported("named ports in notPorts (use numbers or ranges)"),
            );
        }
    }
    for (field, nets) in [("nets", &e.nets), ("notNets", &e.not_nets)] {
        for (i, n) in nets.iter().enumerate() {
            validate::check_masked(c, &format!("{path}.{field}[{i}]"), n);
        }
    }
}

fn join(ports: &[Port]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The CIDRs of one rule are of one family, and of `ipVersion`'s.
fn check_families(c: &mut Checker, path: &str, r: &Rule) {
    let nets: Vec<&IpNet> = r
        .source
        .all_nets()
        .chain(r.destination.all_nets())
        .collect();
    let v4 = nets.iter().any(|n| matches!(n, IpNet::V4(_)));
    let v6 = nets.iter().any(|n| matches!(n, IpNet::V6(_)));
    if v4 && v6 {
        c.reject(
            path,
            "nets",
            Reason::Invalid("the rule mixes IPv4 and IPv6 CIDRs; write one rule per family".into()),
        );
    }
    let want = match r.ip_version {
        Some(4) => v6,
        Some(6) => v4,
        _ => false,
    };
    if want {
        c.reject(
            &format!("{path}.ipVersion"),
            r.ip_version,
            Reason::Invalid("the rule's CIDRs are of the other IP version".into()),
        );
    }
}
