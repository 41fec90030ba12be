//! Network policy: Calico's `NetworkPolicy` (namespaced) and
//! `GlobalNetworkPolicy` with their rules (`projectcalico.org/v3`), the
//! shared rule types (also used by `Profile`), their defaults and
//! validation.
//!
//! Semantics (applied by felix, not here): a policy applies to the
//! workload endpoints its `selector` picks (a `NetworkPolicy` only in its
//! namespace); policies are ordered by `order` (absent: last) then name;
//! in each direction the first rule whose match criteria all hold decides
//! (`Allow`, `Deny`), `Pass` skips to the profiles, `Log` logs and goes on;
//! a packet no rule decided is dropped when any policy applied in that
//! direction. Calico fields tortie does not implement are refused by name.

pub(crate) mod check;
mod rule;

use serde::{Deserialize, Serialize};

use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::validate;

pub use rule::{Action, EntityRule, IcmpFields, PolicyOrder, PolicyType, Rule, RuleMetadata};

/// The only policy tier tortie has.
pub const DEFAULT_TIER: &str = "default";
/// Name prefix of the policies converted from Kubernetes NetworkPolicies.
pub const K8S_POLICY_PREFIX: &str = "knp.default.";

/// A `NetworkPolicy` resource (namespaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Name, namespace and bookkeeping.
    pub metadata: ObjectMeta,
    /// The policy.
    pub spec: NetworkPolicySpec,
}
resource_serde!(NetworkPolicy, NetworkPolicySpec, "NetworkPolicy");

/// `NetworkPolicy.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Tier (only `default` exists in tortie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Order among policies (lower first; absent: after every ordered one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<PolicyOrder>,
    /// The endpoints of this namespace the policy applies to (empty: all).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Directions the policy applies to (defaulted from the rules present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Refused: service accounts are not modelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<serde_json::Value>,
    /// Refused: a dataplane hint tortie has no use for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_hints: Option<serde_json::Value>,
}

/// A `GlobalNetworkPolicy` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalNetworkPolicy {
    /// Name and bookkeeping.
    pub metadata: ObjectMeta,
    /// The policy.
    pub spec: GlobalNetworkPolicySpec,
}
resource_serde!(
    GlobalNetworkPolicy,
    GlobalNetworkPolicySpec,
    "GlobalNetworkPolicy"
);

/// `GlobalNetworkPolicy.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalNetworkPolicySpec {
    /// Tier (only `default` exists in tortie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Order among policies (lower first; absent: after every ordered one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<PolicyOrder>,
    /// The endpoints the policy applies to (empty: all).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Only endpoints in namespaces whose labels this selects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    /// Directions the policy applies to (defaulted from the rules present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Host-endpoint forwarding; workload endpoints are policed either way
    /// (as in Calico), so the value changes nothing tortie enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_on_forward: Option<bool>,
    /// Untracked host-endpoint policy: only `false` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_track: Option<bool>,
    /// Pre-DNAT host-endpoint policy: only `false` is accepted.
    #[serde(rename = "preDNAT", default, skip_serializing_if = "Option::is_none")]
    pub pre_dnat: Option<bool>,
    /// Refused: service accounts are not modelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<serde_json::Value>,
    /// Refused: a dataplane hint tortie has no use for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_hints: Option<serde_json::Value>,
}

/// Calico's defaulting of `types`: Ingress when there are no egress
/// rules, Egress when there are egress rules only, both when both.
pub fn default_types(ingress: &[Rule], egress: &[Rule]) -> Vec<PolicyType> {
    match (ingress.is_empty(), egress.is_empty()) {
        (_, true) => vec![PolicyType::Ingress],
        (true, false) => vec![PolicyType::Egress],
        (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
    }
}

impl NetworkPolicy {
    /// Namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Fills the namespace, the tier and `types`.
    pub fn apply_defaults(&mut self) {
        if self.metadata.namespace.is_none() {
            self.metadata.namespace = Some("default".to_owned());
        }
        let s = &mut self.spec;
        s.tier.get_or_insert_with(|| DEFAULT_TIER.to_owned());
        if s.types.is_empty() {
            s.types = default_types(&s.ingress, &s.egress);
        }
    }

    /// Checks the policy the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let id = format!("NetworkPolicy({}/{})", self.namespace(), self.metadata.name);
        let mut c = Checker::new(id);
        validate::check_meta(&mut c, &self.metadata);
        check_policy_name(&mut c, &self.metadata.name, true);
        if let Some(ns) = &self.metadata.namespace {
            if !validate::is_dns1123_label(ns) {
                c.reject("metadata.namespace", ns, Reason::NotDns1123Label);
            }
        }
        let s = &self.spec;
        check::check_common(
            &mut c,
            &check::Common {
                tier: s.tier.as_deref(),
                selector: &s.selector,
                types: &s.types,
                ingress: &s.ingress,
                egress: &s.egress,
            },
        );
        check::refuse(
            &mut c,
            "spec.serviceAccountSelector",
            s.service_account_selector.as_ref(),
            "service accounts are not modelled",
        );
        check::refuse(
            &mut c,
            "spec.performanceHints",
            s.performance_hints.as_ref(),
            "a dataplane hint tortie has no use for",
        );
        c.finish()
    }
}

impl GlobalNetworkPolicy {
    /// Fills the tier and `types`.
    pub fn apply_defaults(&mut self) {
        let s = &mut self.spec;
        s.tier.get_or_insert_with(|| DEFAULT_TIER.to_owned());
        if s.types.is_empty() {
            s.types = default_types(&s.ingress, &s.egress);
        }
    }

    /// Checks the policy the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("GlobalNetworkPolicy({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        check_policy_name(&mut c, &self.metadata.name, false);
        let s = &self.spec;
        check::check_common(
            &mut c,
            &check::Common {
                tier: s.tier.as_deref(),
                selector: &s.selector,
                types: &s.types,
                ingress: &s.ingress,
                egress: &s.egress,
            },
        );
        validate::check_selector(
            &mut c,
            "spec.namespaceSelector",
            non_empty(&s.namespace_selector),
        );
        for (field, v) in [
            ("spec.doNotTrack", s.do_not_track),
            ("spec.preDNAT", s.pre_dnat),
        ] {
            if v == Some(true) {
                c.reject(
                    field,
                    true,
                    Reason::Unsupported("it applies to host endpoints, which tortie does not have"),
                );
            }
        }
        check::refuse(
            &mut c,
            "spec.serviceAccountSelector",
            s.service_account_selector.as_ref(),
            "service accounts are not modelled",
        );
        check::refuse(
            &mut c,
            "spec.performanceHints",
            s.performance_hints.as_ref(),
            "a dataplane hint tortie has no use for",
        );
        c.finish()
    }
}

/// `Some(s)` unless empty.
pub(crate) fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Policy names are DNS-1123 labels; a NetworkPolicy may also be a
/// converted Kubernetes policy `knp.default.<subdomain>` (as Calico).
fn check_policy_name(c: &mut Checker, name: &str, namespaced: bool) {
    // check_meta already reports names that are not even subdomains.
    if !validate::is_dns1123_subdomain(name) || validate::is_dns1123_label(name) {
        return;
    }
    let converted = name
        .strip_prefix(K8S_POLICY_PREFIX)
        .is_some_and(validate::is_dns1123_subdomain);
    if !(namespaced && converted) {
        c.reject("metadata.name", name, Reason::NotDns1123Label);
    }
}

#[cfg(test)]
mod tests;
