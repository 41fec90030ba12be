//! One Calico rule → nft rules. A rule becomes one nft rule per IP family
//! it can match (only when it tests addresses or the family) and per
//! alternative of its port lists (numbers and named ports are separate
//! lookups); every criterion becomes one match, so all must hold.

use ipnet::IpNet;
use tortie_model::policy::{Action, EntityRule, IcmpFields, Rule};
use tortie_model::protocol::{Port, ICMP, ICMPV6};

use super::nft::{self, AddrSet, Dir, Family, Match, Stmt, Verdict};
use super::scope::{self, ScopedSelectors};
use super::sets::{merge_nets, merge_ranges, SetRegistry};

/// Where a rule sits: its action's meaning differs for `Pass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A policy: `Pass` skips to the profiles (mark bit, return).
    Policy,
    /// A profile: `Pass` ends this profile (return).
    Profile,
}

/// What rules compile against.
pub(crate) struct RuleCtx<'a> {
    /// Namespace of a NetworkPolicy (`None`: global policy, profile).
    pub(crate) namespace: Option<&'a str>,
    /// Policy or profile.
    pub(crate) owner: Owner,
    /// The pass mark bit.
    pub(crate) pass_mark: u32,
    /// Prefix of log lines.
    pub(crate) log_prefix: &'a str,
    /// Families some endpoint or network set has addresses of: a
    /// positive selector (or named port) cannot match another family, so
    /// no rule variant is written for it.
    pub(crate) present: &'a [Family],
}

/// One side (source/destination) of a rule, resolved.
struct Side<'a> {
    dir: Dir,
    e: &'a EntityRule,
    sel: ScopedSelectors,
}

/// A port alternative of one side.
#[derive(Clone)]
enum PortAlt {
    Any,
    Numbers(Vec<(u16, u16)>),
    Named(Vec<String>),
}

/// The families a rule can match, from its ipVersion, protocol and CIDRs.
fn families(r: &Rule) -> Vec<Family> {
    let mut f: Vec<Family> = Family::BOTH.to_vec();
    let keep = |f: &mut Vec<Family>, only: Family| f.retain(|x| *x == only);
    match r.ip_version {
        Some(4) => keep(&mut f, Family::V4),
        Some(6) => keep(&mut f, Family::V6),
        _ => {}
    }
    match r.protocol.as_ref().and_then(|p| p.number()) {
        Some(ICMP) => keep(&mut f, Family::V4),
        Some(ICMPV6) => keep(&mut f, Family::V6),
        _ => {}
    }
    let nets: Vec<&IpNet> = r
        .source
        .all_nets()
        .chain(r.destination.all_nets())
        .collect();
    if let Some(n) = nets.first() {
        keep(&mut f, Family::of_net(n));
    }
    f
}

fn port_alts(ports: &[Port]) -> Vec<PortAlt> {
    let ranges: Vec<(u16, u16)> = ports
        .iter()
        .filter_map(|p| match p {
            Port::Range { min, max } => Some((*min, *max)),
            Port::Named(_) => None,
        })
        .collect();
    let names: Vec<String> = ports
        .iter()
        .filter_map(|p| p.name())
        .map(String::from)
        .collect();
    let mut alts = Vec::new();
    if !ranges.is_empty() {
        alts.push(PortAlt::Numbers(merge_ranges(ranges)));
    }
    if !names.is_empty() {
        alts.push(PortAlt::Named(names));
    }
    if alts.is_empty() {
        alts.push(PortAlt::Any);
    }
    alts
}

/// True if the side needs an address in a selector or named-port set.
fn has_positive_set(s: &Side<'_>) -> bool {
    s.sel.selector.is_some() || s.e.ports.iter().any(|p| p.name().is_some())
}

fn has_addr_match(s: &Side<'_>) -> bool {
    s.sel.selector.is_some()
        || s.sel.not_selector.is_some()
        || !s.e.nets.is_empty()
        || !s.e.not_nets.is_empty()
        || s.e.ports.iter().any(|p| p.name().is_some())
}

/// The address matches of one side, for `family`.
fn addr_matches(s: &Side<'_>, family: Family, sets: &mut SetRegistry, out: &mut Vec<Match>) {
    let inline = |nets: &[IpNet]| AddrSet::Inline(merge_nets(nets.iter().copied()));
    if !s.e.nets.is_empty() {
        out.push(Match::Addr {
            family,
            dir: s.dir,
            set: inline(&s.e.nets),
            negate: false,
        });
    }
    if !s.e.not_nets.is_empty() {
        out.push(Match::Addr {
            family,
            dir: s.dir,
            set: inline(&s.e.not_nets),
            negate: true,
        });
    }
    for (sel, negate) in [(&s.sel.selector, false), (&s.sel.not_selector, true)] {
        if let Some(e) = sel {
            out.push(Match::Addr {
                family,
                dir: s.dir,
                set: AddrSet::Named(sets.selector(e, family)),
                negate,
            });
        }
    }
}

/// `notPorts` of one side (numbers and ranges; any family).
fn not_port_match(s: &Side<'_>) -> Option<Match> {
    let not_ports: Vec<(u16, u16)> =
        s.e.not_ports
            .iter()
            .filter_map(|p| match p {
                Port::Range { min, max } => Some((*min, *max)),
                Port::Named(_) => None,
            })
            .collect();
    (!not_ports.is_empty()).then(|| Match::Port {
        dir: s.dir,
        ranges: merge_ranges(not_ports),
        negate: true,
    })
}

fn icmp_match(family: Family, f: &IcmpFields, negate: bool) -> Option<Match> {
    Some(Match::Icmp {
        family,
        icmp_type: f.icmp_type?,
        code: f.code,
        negate,
    })
}

/// Matches on protocol and ICMP fields.
fn proto_matches(r: &Rule, out: &mut Vec<Match>) {
    let proto = r.protocol.as_ref().and_then(|p| p.number());
    if let Some(p) = proto {
        out.push(Match::L4Proto {
            proto: p,
            negate: false,
        });
    }
    if let Some(p) = r.not_protocol.as_ref().and_then(|p| p.number()) {
        out.push(Match::L4Proto {
            proto: p,
            negate: true,
        });
    }
    let fam = match proto {
        Some(ICMP) => Family::V4,
        Some(ICMPV6) => Family::V6,
        _ => return,
    };
    out.extend(r.icmp.as_ref().and_then(|f| icmp_match(fam, f, false)));
    out.extend(r.not_icmp.as_ref().and_then(|f| icmp_match(fam, f, true)));
}

fn port_match(
    s: &Side<'_>,
    alt: &PortAlt,
    proto: u8,
    family: Option<Family>,
    sets: &mut SetRegistry,
) -> Option<Match> {
    match alt {
        PortAlt::Any => None,
        PortAlt::Numbers(ranges) => Some(Match::Port {
            dir: s.dir,
            ranges: ranges.clone(),
            negate: false,
        }),
        PortAlt::Named(names) => {
            // Named ports always test addresses, so the family is known.
            let family = family?;
            let set = sets.named_ports(s.sel.selector.as_ref(), proto, names, family);
            Some(Match::NamedPort {
                family,
                dir: s.dir,
                set,
            })
        }
    }
}

/// The statements and verdict of `action`.
fn action(a: Action, ctx: &RuleCtx<'_>) -> (Vec<Stmt>, Option<Verdict>) {
    match (a, ctx.owner) {
        (Action::Allow, _) => (vec![], Some(Verdict::Accept)),
        (Action::Deny, _) => (vec![], Some(Verdict::Drop)),
        (Action::Log, _) => (vec![Stmt::Log(ctx.log_prefix.to_string())], None),
        (Action::Pass, Owner::Policy) => {
            (vec![Stmt::SetMark(ctx.pass_mark)], Some(Verdict::Return))
        }
        (Action::Pass, Owner::Profile) => (vec![], Some(Verdict::Return)),
    }
}

/// The nft rules of Calico rule `r`, or why it cannot be compiled.
pub(crate) fn compile(
    r: &Rule,
    ctx: &RuleCtx<'_>,
    sets: &mut SetRegistry,
) -> Result<Vec<nft::Rule>, String> {
    let src = Side {
        dir: Dir::Src,
        e: &r.source,
        sel: scope::scope_side(&r.source, ctx.namespace)?,
    };
    let dst = Side {
        dir: Dir::Dst,
        e: &r.destination,
        sel: scope::scope_side(&r.destination, ctx.namespace)?,
    };
    let fams = families(r);
    let variants: Vec<Option<Family>> = if has_addr_match(&src) || has_addr_match(&dst) {
        fams.iter().copied().map(Some).collect()
    } else if fams.len() == 1 {
        vec![Some(fams[0])]
    } else {
        vec![None]
    };
    let proto = r.protocol.as_ref().and_then(|p| p.number()).unwrap_or(0);
    let (stmts, verdict) = action(r.action, ctx);
    let mut out = Vec::new();
    let positive = has_positive_set(&src) || has_positive_set(&dst);
    for family in variants {
        if family.is_some_and(|f| positive && !ctx.present.contains(&f)) {
            continue;
        }
        let mut base = Vec::new();
        if let (Some(f), false) = (family, has_addr_match(&src) || has_addr_match(&dst)) {
            base.push(Match::NfProto(f));
        }
        proto_matches(r, &mut base);
        if let Some(f) = family {
            addr_matches(&src, f, sets, &mut base);
            addr_matches(&dst, f, sets, &mut base);
        }
        base.extend(not_port_match(&src));
        base.extend(not_port_match(&dst));
        for sa in port_alts(&r.source.ports) {
            for da in port_alts(&r.destination.ports) {
                let mut m = base.clone();
                m.extend(port_match(&src, &sa, proto, family, sets));
                m.extend(port_match(&dst, &da, proto, family, sets));
                out.push(nft::Rule {
                    matches: m,
                    stmts: stmts.clone(),
                    verdict: verdict.clone().map(nft::RuleVerdict::Fixed),
                });
            }
        }
    }
    Ok(out)
}
