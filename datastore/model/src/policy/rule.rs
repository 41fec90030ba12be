//! The rule types shared by policies and profiles (Calico's `Rule`,
//! `EntityRule`, `ICMPFields`), the action and direction enums and the
//! policy `order`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::net::cidr_list;
use crate::protocol::{Port, Protocol};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Accept the packet; no later rule or policy is evaluated.
    Allow,
    /// Drop the packet.
    Deny,
    /// Log the packet and go on with the next rule.
    Log,
    /// Skip the rest of the tier: go on with the profiles.
    Pass,
}

/// A direction a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    /// Traffic to the endpoint.
    Ingress,
    /// Traffic from the endpoint.
    Egress,
}

/// A policy's `order`: a finite number; lower orders apply first.
#[derive(Debug, Clone, Copy)]
pub struct PolicyOrder(pub f64);

impl PolicyOrder {
    /// The value.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl PartialEq for PolicyOrder {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}

impl Eq for PolicyOrder {}

impl PartialOrd for PolicyOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PolicyOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl fmt::Display for PolicyOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whole numbers are written without a fraction, as calicoctl prints them.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

impl Serialize for PolicyOrder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < MAX_EXACT {
            // Exact: |v| < 2^53 and v is whole.
            s.serialize_i64(v as i64)
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for PolicyOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() {
            Ok(PolicyOrder(v))
        } else {
            Err(serde::de::Error::custom("order must be a finite number"))
        }
    }
}

/// ICMP type and code (Calico's `ICMPFields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpFields {
    /// ICMP type (0–254), e.g. 8 for echo request.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code (0–255); needs a type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// The source or destination criteria of a rule (Calico's `EntityRule`).
/// Every criterion given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityRule {
    /// The address is in one of these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "cidr_list")]
    pub nets: Vec<IpNet>,
    /// The address is in none of these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "cidr_list")]
    pub not_nets: Vec<IpNet>,
    /// The address belongs to an endpoint or network set this selects
    /// (scoped to the policy's namespace for a NetworkPolicy, unless a
    /// namespaceSelector is given).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// The address belongs to no endpoint or network set this selects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_selector: String,
    /// Only endpoints in namespaces whose labels this selects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    /// The port is one of these (numbers, ranges, named ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// The port is none of these (numbers and ranges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<Port>,
    /// Refused: Kubernetes Services are not modelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<serde_json::Value>,
    /// Refused: service accounts are not modelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<serde_json::Value>,
}

impl EntityRule {
    /// True if no criterion is given.
    pub fn is_empty(&self) -> bool {
        *self == EntityRule::default()
    }

    /// Every CIDR of `nets` and `notNets`.
    pub fn all_nets(&self) -> impl Iterator<Item = &IpNet> {
        self.nets.iter().chain(&self.not_nets)
    }
}

/// Free-form annotations of a rule (kept, never interpreted).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMetadata {
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One rule: match criteria and the action when all of them hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// Only IPv4 (4) or IPv6 (6) packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    /// Only this protocol (needed for ports and ICMP fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Any protocol but this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    /// ICMP type/code (protocol ICMP or ICMPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpFields>,
    /// Not this ICMP type/code.
    #[serde(rename = "notICMP", default, skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpFields>,
    /// Source criteria.
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub source: EntityRule,
    /// Destination criteria.
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub destination: EntityRule,
    /// Refused: application-layer (HTTP) matches need a proxy tortie lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// Annotations (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

impl Rule {
    /// A rule with `action` and no criteria (matches every packet).
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            ip_version: None,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source: EntityRule::default(),
            destination: EntityRule::default(),
            http: None,
            metadata: None,
        }
    }
}
