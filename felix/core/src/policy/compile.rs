//! The policy table of one node: which policies apply to each local
//! endpoint in which order, their chains, the profile chains, the
//! per-endpoint chains hooked by interface name, and the static chains.
//!
//! Layout (table `inet <table>`):
//! ```text
//! fwd-egress  (forward, prio -2): iifname "cali*" jump from-wl
//! fwd-ingress (forward, prio -1): oifname "cali*" jump to-wl
//! in-egress   (input,   prio -1): ICMPv6 ND from workloads accept; iifname "cali*" jump from-wl
//! from-wl: ct established,related accept; ct invalid drop; encapsulation drop;
//!          iifname vmap @from-wl-map (goto fw-<iface>); drop (unknown interface)
//! to-wl:   the same with oifname, @to-wl-map, tw-<iface>
//! fw-<iface> / tw-<iface>: clear pass bit; jump po-/pi-<policy> for each
//!          policy unless the pass bit is set; drop unless set (end of tier);
//!          clear it; jump pro-/pri-<profile> for each profile; drop
//! po-/pi-<policy>, pro-/pri-<profile>: the rules (Allow accept, Deny drop,
//!          Pass set bit + return, Log log)
//! ```
//! Egress and ingress run in different base chains, so that an `accept`
//! of the sender's egress policy still leaves the receiver's ingress
//! policy to decide (two pods on one node).

use std::collections::{BTreeMap, BTreeSet};

use tortie_model::policy::{PolicyOrder, PolicyType, Rule};
use tortie_model::selector::Expr;

use super::nft::{
    self, BaseChain, Chain, CtMatch, Family, Hook, Iface, Match, Ruleset, Stmt, Verdict,
};
use super::rules::{self, Owner, RuleCtx};
use super::scope;
use super::sets::SetRegistry;
use super::view::{LocalEndpoint, View};
use super::{PolicyConfig, PolicyInput, PolicyProblem};

/// Chain names of the static part.
pub mod names {
    /// Forward hook, egress stage.
    pub const FWD_EGRESS: &str = "fwd-egress";
    /// Forward hook, ingress stage.
    pub const FWD_INGRESS: &str = "fwd-ingress";
    /// Input hook (workload to host), egress stage.
    pub const IN_EGRESS: &str = "in-egress";
    /// Dispatch of traffic from workloads.
    pub const FROM_WL: &str = "from-wl";
    /// Dispatch of traffic to workloads.
    pub const TO_WL: &str = "to-wl";
    /// Interface → `goto fw-<iface>`.
    pub const FROM_WL_MAP: &str = "from-wl-map";
    /// Interface → `goto tw-<iface>`.
    pub const TO_WL_MAP: &str = "to-wl-map";
}

/// ICMPv6 types a workload may always send to its host (MLD, router and
/// neighbour solicitation/advertisement), as Calico allows them.
const ICMPV6_TO_HOST: [u8; 6] = [130, 131, 132, 133, 135, 136];

/// One policy as the compiler needs it.
struct PolicyItem<'a> {
    /// Chain id: `<name>` (global) or `<namespace>/<name>`.
    id: String,
    order: Option<PolicyOrder>,
    namespace: Option<&'a str>,
    selector: Expr,
    ingress: Option<&'a [Rule]>,
    egress: Option<&'a [Rule]>,
}

impl PolicyItem<'_> {
    fn rules(&self, dir: PolicyType) -> Option<&[Rule]> {
        match dir {
            PolicyType::Ingress => self.ingress,
            PolicyType::Egress => self.egress,
        }
    }
}

fn typed<'a>(types: &[PolicyType], t: PolicyType, rules: &'a [Rule]) -> Option<&'a [Rule]> {
    types.contains(&t).then_some(rules)
}

/// Every policy, ordered as Calico orders them: by `order` (absent last),
/// then by name (`namespace/name` for NetworkPolicies).
fn policies<'a>(input: &'a PolicyInput, problems: &mut Vec<PolicyProblem>) -> Vec<PolicyItem<'a>> {
    let mut out = Vec::new();
    for p in &input.network_policies {
        let ns = p.namespace();
        let id = format!("{ns}/{}", p.metadata.name);
        let s = &p.spec;
        match scope::network_policy_selector(&s.selector, ns) {
            Ok(selector) => out.push(PolicyItem {
                order: s.order,
                namespace: Some(ns),
                selector,
                ingress: typed(&s.types, PolicyType::Ingress, &s.ingress),
                egress: typed(&s.types, PolicyType::Egress, &s.egress),
                id,
            }),
            Err(why) => problems.push(PolicyProblem::Policy { policy: id, why }),
        }
    }
    for p in &input.global_network_policies {
        let id = p.metadata.name.clone();
        let s = &p.spec;
        match scope::global_policy_selector(&s.selector, &s.namespace_selector) {
            Ok(selector) => out.push(PolicyItem {
                order: s.order,
                namespace: None,
                selector,
                ingress: typed(&s.types, PolicyType::Ingress, &s.ingress),
                egress: typed(&s.types, PolicyType::Egress, &s.egress),
                id,
            }),
            Err(why) => problems.push(PolicyProblem::Policy { policy: id, why }),
        }
    }
    out.sort_by(|a, b| match (a.order, b.order) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.id.cmp(&b.id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.id.cmp(&b.id),
    });
    out
}

/// A chain name `<prefix><id>` that nft accepts: readable when `id` is
/// short and plain, else a hash.
pub fn chain_name(prefix: &str, id: &str) -> String {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'/'));
    if plain && id.len() <= 180 {
        format!("{prefix}{id}")
    } else {
        let keep: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/'))
            .take(60)
            .collect();
        format!("{prefix}{keep}~{:016x}", nft::fnv64(id.as_bytes()))
    }
}

fn policy_chain(dir: PolicyType, id: &str) -> String {
    match dir {
        PolicyType::Ingress => chain_name("pi-", id),
        PolicyType::Egress => chain_name("po-", id),
    }
}

fn profile_chain(dir: PolicyType, name: &str) -> String {
    match dir {
        PolicyType::Ingress => chain_name("pri-", name),
        PolicyType::Egress => chain_name("pro-", name),
    }
}

/// What [`compile`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compiled {
    /// The table's content.
    pub ruleset: Ruleset,
    /// What could not be applied, in words (to be logged).
    pub problems: Vec<PolicyProblem>,
    /// For each local interface, the policies applying in each direction
    /// (ingress, egress), in order.
    pub applied: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

struct Builder<'a> {
    cfg: &'a PolicyConfig,
    sets: SetRegistry,
    rs: Ruleset,
    problems: Vec<PolicyProblem>,
}

impl Builder<'_> {
    fn rule_chain(&mut self, name: String, rules: &[Rule], ctx: &RuleCtx<'_>, what: &str) {
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match rules::compile(r, ctx, &mut self.sets) {
                Ok(mut v) => out.append(&mut v),
                Err(why) => self.problems.push(PolicyProblem::Policy {
                    policy: what.to_string(),
                    why: format!("rule {i} skipped: {why}"),
                }),
            }
        }
        self.rs.chains.insert(
            name,
            Chain {
                base: None,
                rules: out,
            },
        );
    }

    fn endpoint_chain(
        &self,
        dir: PolicyType,
        policies: &[&PolicyItem<'_>],
        ep: &LocalEndpoint,
    ) -> Chain {
        let pass = self.cfg.pass_mark;
        let mut rules = Vec::new();
        if !policies.is_empty() {
            rules.push(stmt_rule(Stmt::ClearMark(pass)));
            for p in policies {
                rules.push(nft::Rule::new(
                    vec![Match::Mark {
                        bits: pass,
                        clear: true,
                    }],
                    Verdict::Jump(policy_chain(dir, &p.id)),
                ));
            }
            // End of tier: a policy applied but none decided.
            rules.push(nft::Rule::new(
                vec![Match::Mark {
                    bits: pass,
                    clear: true,
                }],
                Verdict::Drop,
            ));
            rules.push(stmt_rule(Stmt::ClearMark(pass)));
        }
        for prof in &ep.profiles {
            rules.push(nft::Rule::new(
                vec![],
                Verdict::Jump(profile_chain(dir, prof)),
            ));
        }
        rules.push(nft::Rule::new(vec![], Verdict::Drop));
        Chain { base: None, rules }
    }
}

fn stmt_rule(s: Stmt) -> nft::Rule {
    nft::Rule {
        matches: vec![],
        stmts: vec![s],
        verdict: None,
    }
}

/// Computes the policy table of node `input.node_name`.
pub fn compile(input: &PolicyInput, cfg: &PolicyConfig) -> Compiled {
    let mut view = View::build(input);
    let mut b = Builder {
        cfg,
        sets: SetRegistry::default(),
        rs: Ruleset::default(),
        problems: std::mem::take(&mut view.problems),
    };
    let items = policies(input, &mut b.problems);
    let present: Vec<Family> = Family::BOTH
        .into_iter()
        .filter(|f| {
            view.entities
                .iter()
                .any(|e| e.nets.iter().any(|n| Family::of_net(n) == *f))
        })
        .collect();
    let mut used_policies: BTreeSet<(usize, PolicyType)> = BTreeSet::new();
    let mut used_profiles: BTreeSet<&str> = BTreeSet::new();
    let mut applied = BTreeMap::new();
    let mut from_map = BTreeMap::new();
    let mut to_map = BTreeMap::new();
    for ep in &view.locals {
        let mut names = (Vec::new(), Vec::new());
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            let mine: Vec<(usize, &PolicyItem<'_>)> = items
                .iter()
                .enumerate()
                .filter(|(_, p)| p.rules(dir).is_some() && p.selector.matches(&ep.labels))
                .collect();
            used_policies.extend(mine.iter().map(|(i, _)| (*i, dir)));
            let list: Vec<String> = mine.iter().map(|(_, p)| p.id.clone()).collect();
            let refs: Vec<&PolicyItem<'_>> = mine.into_iter().map(|(_, p)| p).collect();
            let chain = b.endpoint_chain(dir, &refs, ep);
            let (prefix, map, slot) = match dir {
                PolicyType::Ingress => ("tw-", &mut to_map, &mut names.0),
                PolicyType::Egress => ("fw-", &mut from_map, &mut names.1),
            };
            *slot = list;
            let name = format!("{prefix}{}", ep.interface);
            map.insert(ep.interface.clone(), Verdict::Goto(name.clone()));
            b.rs.chains.insert(name, chain);
        }
        used_profiles.extend(ep.profiles.iter().map(String::as_str));
        applied.insert(ep.interface.clone(), names);
    }
    for (i, dir) in used_policies {
        let p = &items[i];
        let ctx = RuleCtx {
            namespace: p.namespace,
            owner: Owner::Policy,
            pass_mark: cfg.pass_mark,
            log_prefix: &cfg.log_prefix,
            present: &present,
        };
        let rules = p.rules(dir).unwrap_or_default();
        b.rule_chain(policy_chain(dir, &p.id), rules, &ctx, &p.id);
    }
    for name in used_profiles {
        let ctx = RuleCtx {
            namespace: None,
            owner: Owner::Profile,
            pass_mark: cfg.pass_mark,
            log_prefix: &cfg.log_prefix,
            present: &present,
        };
        let (ingress, egress) = match view.profiles.get(name) {
            Some(p) => (p.spec.ingress.as_slice(), p.spec.egress.as_slice()),
            // A missing profile has no rules (as in Calico).
            None => (&[][..], &[][..]),
        };
        b.rule_chain(
            profile_chain(PolicyType::Ingress, name),
            ingress,
            &ctx,
            name,
        );
        b.rule_chain(profile_chain(PolicyType::Egress, name), egress, &ctx, name);
    }
    static_chains(cfg, &mut b.rs);
    b.rs.maps.insert(names::FROM_WL_MAP.into(), from_map);
    b.rs.maps.insert(names::TO_WL_MAP.into(), to_map);
    b.rs.sets = b.sets.finish(&view.entities);
    Compiled {
        ruleset: b.rs,
        problems: b.problems,
        applied,
    }
}

fn base(hook: Hook, priority: i32, rules: Vec<nft::Rule>) -> Chain {
    Chain {
        base: Some(BaseChain { hook, priority }),
        rules,
    }
}

/// The hooks and dispatch chains every policy table has.
fn static_chains(cfg: &PolicyConfig, rs: &mut Ruleset) {
    let wl = format!("{}*", cfg.workload_prefix);
    let iif = || Match::IfName(Iface::In, wl.clone());
    let oif = || Match::IfName(Iface::Out, wl.clone());
    rs.chains.insert(
        names::FWD_EGRESS.into(),
        base(
            Hook::Forward,
            -2,
            vec![nft::Rule::new(
                vec![iif()],
                Verdict::Jump(names::FROM_WL.into()),
            )],
        ),
    );
    rs.chains.insert(
        names::FWD_INGRESS.into(),
        base(
            Hook::Forward,
            -1,
            vec![nft::Rule::new(
                vec![oif()],
                Verdict::Jump(names::TO_WL.into()),
            )],
        ),
    );
    let nd = Match::IcmpTypes(Family::V6, ICMPV6_TO_HOST.to_vec());
    rs.chains.insert(
        names::IN_EGRESS.into(),
        base(
            Hook::Input,
            -1,
            vec![
                nft::Rule::new(
                    vec![
                        iif(),
                        Match::NfProto(Family::V6),
                        Match::L4Proto {
                            proto: 58,
                            negate: false,
                        },
                        nd,
                    ],
                    Verdict::Accept,
                ),
                nft::Rule::new(vec![iif()], Verdict::Jump(names::FROM_WL.into())),
            ],
        ),
    );
    let mut from = conntrack();
    // Encapsulated packets from workloads could bypass egress policy (as Calico).
    from.push(nft::Rule::new(
        vec![
            Match::L4Proto {
                proto: 17,
                negate: false,
            },
            Match::Port {
                dir: nft::Dir::Dst,
                ranges: vec![(cfg.vxlan_port, cfg.vxlan_port)],
                negate: false,
            },
        ],
        Verdict::Drop,
    ));
    from.push(nft::Rule::new(
        vec![Match::L4Proto {
            proto: 4,
            negate: false,
        }],
        Verdict::Drop,
    ));
    from.push(vmap(Iface::In, names::FROM_WL_MAP));
    from.push(nft::Rule::new(vec![], Verdict::Drop));
    rs.chains.insert(
        names::FROM_WL.into(),
        Chain {
            base: None,
            rules: from,
        },
    );
    let mut to = conntrack();
    to.push(vmap(Iface::Out, names::TO_WL_MAP));
    to.push(nft::Rule::new(vec![], Verdict::Drop));
    rs.chains.insert(
        names::TO_WL.into(),
        Chain {
            base: None,
            rules: to,
        },
    );
}

fn conntrack() -> Vec<nft::Rule> {
    vec![
        nft::Rule::new(
            vec![Match::Ct(CtMatch::EstablishedRelated)],
            Verdict::Accept,
        ),
        nft::Rule::new(vec![Match::Ct(CtMatch::Invalid)], Verdict::Drop),
    ]
}

fn vmap(i: Iface, map: &str) -> nft::Rule {
    nft::Rule {
        matches: vec![],
        stmts: vec![],
        verdict: Some(nft::RuleVerdict::Vmap(i, map.into())),
    }
}
