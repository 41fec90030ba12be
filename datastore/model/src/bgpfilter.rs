//! `BGPFilter` (Calico 3.26+): rules that accept or reject routes imported
//! from and exported to the BGP peers whose `BGPPeer.filters` name it. The
//! rules of a list are tried in order and the first that matches decides;
//! when none does, Calico's own rules decide.
//!
//! Supported rule fields: `action`, `cidr` with `matchOperator`,
//! `prefixLength` (with `In` / `NotIn`), `source: RemotePeers` (export rules).
//! Refused by name: `interface` (it matches routes by the kernel interface
//! they leave through; tortie's speaker holds no kernel or interface routes,
//! so the condition could never be evaluated as BIRD does), and fields of
//! later Calico versions (`peerType`, `communities`, `asPathPrefix`,
//! `priority`, `operations`) are unknown fields.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::net::opt_cidr_or_ip;
use crate::validate;

/// A `BGPFilter` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpFilter {
    /// Name (what `BGPPeer.filters` lists).
    pub metadata: ObjectMeta,
    /// The rules.
    pub spec: BgpFilterSpec,
}
resource_serde!(BgpFilter, BgpFilterSpec, "BGPFilter");

/// `spec` of a BGPFilter: one rule list per direction and family.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpFilterSpec {
    /// Rules for IPv4 routes sent to the peer.
    #[serde(default, rename = "exportV4", skip_serializing_if = "Vec::is_empty")]
    pub export_v4: Vec<BgpFilterRule>,
    /// Rules for IPv4 routes received from the peer.
    #[serde(default, rename = "importV4", skip_serializing_if = "Vec::is_empty")]
    pub import_v4: Vec<BgpFilterRule>,
    /// Rules for IPv6 routes sent to the peer.
    #[serde(default, rename = "exportV6", skip_serializing_if = "Vec::is_empty")]
    pub export_v6: Vec<BgpFilterRule>,
    /// Rules for IPv6 routes received from the peer.
    #[serde(default, rename = "importV6", skip_serializing_if = "Vec::is_empty")]
    pub import_v6: Vec<BgpFilterRule>,
}

/// `Accept` or `Reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BgpFilterAction {
    /// Take the route.
    Accept,
    /// Drop the route.
    Reject,
}

/// How `cidr` is compared with a route's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BgpFilterMatchOperator {
    /// The prefix is the CIDR.
    Equal,
    /// The prefix is not the CIDR.
    NotEqual,
    /// The prefix lies inside the CIDR.
    In,
    /// The prefix does not lie inside the CIDR.
    NotIn,
}

/// `source`: where the route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BgpFilterSource {
    /// Learned from a BGP peer (not originated by this node).
    RemotePeers,
}

/// `prefixLength`: the range of prefix lengths an `In` / `NotIn` CIDR takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpFilterPrefixLength {
    /// Shortest length (at least the CIDR's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    /// Longest length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i32>,
}

/// One rule: conditions (all must hold; none = always) and an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpFilterRule {
    /// The CIDR compared with (needs `matchOperator`).
    #[serde(
        default,
        rename = "cidr",
        with = "opt_cidr_or_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub cidr: Option<IpNet>,
    /// Lengths `cidr` takes (needs `cidr` and `In` or `NotIn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<BgpFilterPrefixLength>,
    /// How `cidr` is compared (needs `cidr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_operator: Option<BgpFilterMatchOperator>,
    /// Only routes from this source (export rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BgpFilterSource>,
    /// Refused: the interface a route leaves through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// What to do on a match.
    pub action: BgpFilterAction,
}

/// Which list a rule is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct List {
    field: &'static str,
    v4: bool,
    export: bool,
}

const LISTS: [List; 4] = [
    List {
        field: "exportV4",
        v4: true,
        export: true,
    },
    List {
        field: "importV4",
        v4: true,
        export: false,
    },
    List {
        field: "exportV6",
        v4: false,
        export: true,
    },
    List {
        field: "importV6",
        v4: false,
        export: false,
    },
];

impl BgpFilterSpec {
    fn list(&self, l: List) -> &[BgpFilterRule] {
        match (l.export, l.v4) {
            (true, true) => &self.export_v4,
            (false, true) => &self.import_v4,
            (true, false) => &self.export_v6,
            (false, false) => &self.import_v6,
        }
    }
}

impl BgpFilterRule {
    fn check(&self, c: &mut Checker, path: &str, list: List) {
        let max_len: i32 = if list.v4 { 32 } else { 128 };
        if let Some(cidr) = &self.cidr {
            validate::check_masked(c, &format!("{path}.cidr"), cidr);
            if matches!(cidr, IpNet::V4(_)) != list.v4 {
                let want = if list.v4 { "an IPv4" } else { "an IPv6" };
                let why = format!("must be {want} CIDR in spec.{}", list.field);
                c.reject_display(&format!("{path}.cidr"), cidr, Reason::Invalid(why));
            }
        }
        match (&self.cidr, &self.match_operator) {
            (Some(cidr), None) => {
                let why = Reason::Invalid(
                    "cidr needs matchOperator (Equal, NotEqual, In or NotIn)".into(),
                );
                c.reject_display(&format!("{path}.cidr"), cidr, why);
            }
            (None, Some(op)) => {
                let why = Reason::Invalid("matchOperator needs cidr".into());
                c.reject(&format!("{path}.matchOperator"), op, why);
            }
            _ => {}
        }
        if let Some(pl) = &self.prefix_length {
            self.check_lengths(c, path, pl, max_len);
        }
        if let (Some(s), false) = (self.source, list.export) {
            let why = Reason::Invalid("source is not applicable to import rules".into());
            c.reject(&format!("{path}.source"), s, why);
        }
        if let Some(i) = &self.interface {
            let why = Reason::Unsupported(
                "it matches routes by the kernel interface they leave through, and tortie's \
                 speaker holds no kernel or interface routes",
            );
            c.reject(&format!("{path}.interface"), i, why);
        }
    }

    fn check_lengths(&self, c: &mut Checker, path: &str, pl: &BgpFilterPrefixLength, max_len: i32) {
        let field = format!("{path}.prefixLength");
        if self.cidr.is_none() {
            c.reject(
                &field,
                pl,
                Reason::Invalid("prefixLength needs cidr".into()),
            );
        }
        if matches!(
            self.match_operator,
            Some(BgpFilterMatchOperator::Equal | BgpFilterMatchOperator::NotEqual)
        ) {
            let why = "prefixLength needs matchOperator In or NotIn (Equal and NotEqual compare one prefix)";
            c.reject(&field, pl, Reason::Invalid(why.into()));
        }
        for (name, v) in [("min", pl.min), ("max", pl.max)] {
            if let Some(v) = v.filter(|v| !(0..=max_len).contains(v)) {
                let reason = Reason::OutOfRange {
                    min: 0,
                    max: max_len as u64,
                    context: "",
                };
                c.reject_display(&format!("{field}.{name}"), v, reason);
            }
        }
        if let (Some(lo), Some(hi)) = (pl.min, pl.max) {
            if lo > hi {
                c.reject_display(
                    &format!("{field}.min"),
                    lo,
                    Reason::Invalid("must not exceed max".into()),
                );
            }
        }
    }
}

impl BgpFilter {
    /// Nothing to fill.
    pub fn apply_defaults(&mut self) {}

    /// Checks the filter the way Calico does, and refuses what tortie does
    /// not implement; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("BGPFilter({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        for l in LISTS {
            for (i, r) in self.spec.list(l).iter().enumerate() {
                r.check(&mut c, &format!("spec.{}[{i}]", l.field), l);
            }
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests;
