//! Per-peer route filters: Calico's `BGPFilter` rules (Calico 3.26+), as
//! confd renders them into BIRD functions called before Calico's own rules.
//!
//! A peer's filters are the rules of its BGPFilters, in the order the
//! BGPPeer lists them, one list per direction and address family. Rules are
//! tried in order and the first whose conditions all hold decides (`accept`
//! or `reject` ends BIRD's filter at once, even inside a called function);
//! when none matches, the peer's default rules decide: Calico's export
//! filter ([`crate::PolicyConfig::exportable`]) outward, and inward the
//! cluster import rules for another node or accept-all for an external peer.
//!
//! Conditions, as confd writes them: the prefix against `cidr` with
//! `matchOperator` (`=`, `!=`, `~`, `!~`; with `prefixLength` the CIDR
//! becomes BIRD's prefix pattern `cidr{min,max}`), and `source:
//! RemotePeers` (BIRD's `source ~ [RTS_BGP]`: the route was learned over
//! BGP, not originated here). A rule without conditions always matches.

use serde::{Deserialize, Serialize};
use tortie_bgp_wire::Prefix;

use crate::policy::contains;

/// What a filter rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterAction {
    /// Take the route.
    Accept,
    /// Drop the route.
    Reject,
}

/// How a rule's CIDR is matched (Calico BGPFilter `matchOperator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MatchOperator {
    /// The prefix is exactly the CIDR (BIRD `net = cidr`).
    Equal,
    /// The prefix is not exactly the CIDR (`net != cidr`).
    NotEqual,
    /// The prefix is inside the CIDR, its length within the range (`net ~`).
    In,
    /// The opposite of `In` (`net !~`).
    NotIn,
}

/// The prefix condition of a rule: `cidr`, `matchOperator`, `prefixLength`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PrefixMatch {
    /// How to compare.
    pub operator: MatchOperator,
    /// The CIDR compared with.
    #[serde(with = "prefix_text")]
    pub cidr: Prefix,
    /// Shortest length `In` / `NotIn` take (at least the CIDR's own).
    pub min_len: u8,
    /// Longest length `In` / `NotIn` take (32 or 128 without `prefixLength.max`).
    pub max_len: u8,
}

impl PrefixMatch {
    /// Calico's match without `prefixLength`: lengths from the CIDR's own
    /// to the family's longest.
    pub fn new(operator: MatchOperator, cidr: Prefix) -> Self {
        let max_len = if cidr.is_ipv4() { 32 } else { 128 };
        PrefixMatch {
            operator,
            cidr,
            min_len: cidr.len(),
            max_len,
        }
    }

    /// With `prefixLength {min, max}`, each bound clamped as confd does:
    /// min at least the CIDR's length, max at most the family's longest.
    pub fn with_lengths(mut self, min: Option<u8>, max: Option<u8>) -> Self {
        if let Some(m) = min {
            self.min_len = self.min_len.max(m);
        }
        if let Some(m) = max {
            self.max_len = self.max_len.min(m);
        }
        self
    }

    fn in_range(&self, p: &Prefix) -> bool {
        contains(&self.cidr, p) && (self.min_len..=self.max_len).contains(&p.len())
    }

    /// True when `p` satisfies the condition.
    pub fn matches(&self, p: &Prefix) -> bool {
        match self.operator {
            MatchOperator::Equal => *p == self.cidr,
            MatchOperator::NotEqual => *p != self.cidr,
            MatchOperator::In => self.in_range(p),
            MatchOperator::NotIn => !self.in_range(p),
        }
    }
}

/// One rule: conditions (all must hold) and an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FilterRule {
    /// What to do on a match.
    pub action: FilterAction,
    /// The prefix condition, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<PrefixMatch>,
    /// `source: RemotePeers`: only routes learned from a BGP peer match
    /// (export rules only; our own prefixes never do).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learned_only: bool,
}

impl FilterRule {
    /// True when the rule applies to `prefix`; `learned` = the route came
    /// from a BGP peer rather than from this node.
    pub fn matches(&self, prefix: &Prefix, learned: bool) -> bool {
        (!self.learned_only || learned) && self.prefix.is_none_or(|m| m.matches(prefix))
    }
}

/// The rules of one direction: IPv4 rules for IPv4 prefixes, IPv6 rules
/// for IPv6 prefixes (Calico's `*V4` and `*V6` lists).
/// Few and short: update groups compare and hash them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FilterRules {
    /// `importV4` / `exportV4` rules of every filter, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub v4: Vec<FilterRule>,
    /// `importV6` / `exportV6` rules of every filter, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub v6: Vec<FilterRule>,
}

impl FilterRules {
    /// The rules for `prefix`'s family.
    pub fn for_family(&self, v4: bool) -> &[FilterRule] {
        if v4 {
            &self.v4
        } else {
            &self.v6
        }
    }

    /// The action of the first rule that matches, or `None` (the peer's
    /// default rules decide).
    pub fn decide(&self, prefix: &Prefix, learned: bool) -> Option<FilterAction> {
        self.for_family(prefix.is_ipv4())
            .iter()
            .find(|r| r.matches(prefix, learned))
            .map(|r| r.action)
    }

    /// True without any rule.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// A peer's filters (its BGPPeer's `filters`, resolved).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerFilters {
    /// Rules for routes received from the peer.
    #[serde(default, skip_serializing_if = "FilterRules::is_empty")]
    pub import: FilterRules,
    /// Rules for routes sent to the peer.
    #[serde(default, skip_serializing_if = "FilterRules::is_empty")]
    pub export: FilterRules,
}

impl PeerFilters {
    /// True without any rule.
    pub fn is_empty(&self) -> bool {
        self.import.is_empty() && self.export.is_empty()
    }
}

/// Serde of a prefix as its text (`10.0.0.0/8`).
mod prefix_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use tortie_bgp_wire::Prefix;

    pub(super) fn serialize<S: Serializer>(p: &Prefix, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(p)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format_args!("`{text}` is not a prefix")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn rule(action: FilterAction, op: MatchOperator, cidr: &str) -> FilterRule {
        FilterRule {
            action,
            prefix: Some(PrefixMatch::new(op, p(cidr))),
            learned_only: false,
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_none_leaves_it_to_the_defaults() {
        let f = FilterRules {
            v4: vec![
                rule(FilterAction::Reject, MatchOperator::In, "10.0.0.0/8"),
                rule(FilterAction::Accept, MatchOperator::Equal, "10.1.0.0/16"),
            ],
            v6: vec![],
        };
        assert_eq!(
            f.decide(&p("10.1.0.0/16"), true),
            Some(FilterAction::Reject)
        );
        assert_eq!(f.decide(&p("192.0.2.0/24"), true), None);
        assert_eq!(FilterRules::default().decide(&p("0.0.0.0/0"), true), None);
    }

    #[test]
    fn each_operator_compares_as_birds() {
        let cidr = p("10.1.0.0/16");
        let m = |op| PrefixMatch::new(op, cidr);
        assert!(m(MatchOperator::Equal).matches(&cidr));
        assert!(!m(MatchOperator::Equal).matches(&p("10.1.2.0/24")));
        assert!(m(MatchOperator::NotEqual).matches(&p("10.1.2.0/24")));
        assert!(!m(MatchOperator::NotEqual).matches(&cidr));
        assert!(m(MatchOperator::In).matches(&p("10.1.2.0/24")));
        assert!(m(MatchOperator::In).matches(&cidr));
        assert!(!m(MatchOperator::In).matches(&p("10.0.0.0/8")));
        assert!(m(MatchOperator::NotIn).matches(&p("10.0.0.0/8")));
        assert!(!m(MatchOperator::NotIn).matches(&p("10.1.9.9/32")));
    }

    #[test]
    fn prefix_length_bounds_are_clamped_as_confd_does() {
        // 55.0.0.0/16 {min 30}: /30../32 inside the CIDR only.
        let m = PrefixMatch::new(MatchOperator::In, p("55.0.0.0/16")).with_lengths(Some(30), None);
        assert!((m.min_len, m.max_len) == (30, 32));
        assert!(m.matches(&p("55.0.1.4/30")));
        assert!(!m.matches(&p("55.0.1.0/24")));
        // A min below the CIDR's length and a max beyond the family's are clamped.
        let m =
            PrefixMatch::new(MatchOperator::NotIn, p("10.0.0.0/8")).with_lengths(Some(4), Some(40));
        assert_eq!((m.min_len, m.max_len), (8, 32));
        let m = PrefixMatch::new(MatchOperator::In, p("10.0.0.0/8")).with_lengths(None, Some(24));
        assert!(m.matches(&p("10.2.0.0/24")));
        assert!(!m.matches(&p("10.2.0.0/25")));
        let not = PrefixMatch {
            operator: MatchOperator::NotIn,
            ..m
        };
        assert!(not.matches(&p("10.2.0.0/25")));
    }

    #[test]
    fn remote_peers_rules_match_learned_routes_only() {
        let r = FilterRule {
            action: FilterAction::Accept,
            prefix: None,
            learned_only: true,
        };
        assert!(r.matches(&p("8.8.8.0/24"), true));
        assert!(!r.matches(&p("8.8.8.0/24"), false));
        // No condition at all: always.
        let all = FilterRule {
            learned_only: false,
            ..r
        };
        assert!(all.matches(&p("8.8.8.0/24"), false));
    }

    #[test]
    fn v4_rules_never_judge_v6_prefixes() {
        let f = FilterRules {
            v4: vec![FilterRule {
                action: FilterAction::Reject,
                prefix: None,
                learned_only: false,
            }],
            v6: vec![],
        };
        assert_eq!(f.decide(&p("fd00::/64"), true), None);
        assert_eq!(f.decide(&p("10.0.0.0/8"), true), Some(FilterAction::Reject));
    }

    #[test]
    fn filters_round_trip_through_json() {
        let f = PeerFilters {
            import: FilterRules {
                v4: vec![rule(FilterAction::Reject, MatchOperator::In, "10.0.0.0/8")],
                v6: vec![],
            },
            export: FilterRules::default(),
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<PeerFilters>(&text).unwrap(), f);
        assert_eq!(
            serde_json::to_string(&PeerFilters::default()).unwrap(),
            "{}"
        );
    }
}
