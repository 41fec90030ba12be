//! The `Kind` of each resource (with the names `tortiectl` accepts) and the
//! `Resource` sum over all kinds.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bgpconfig::BgpConfiguration;
use crate::bgpfilter::BgpFilter;
use crate::bgppeer::BgpPeer;
use crate::error::FieldError;
use crate::felixconfig::FelixConfiguration;
use crate::ippool::IpPool;
use crate::meta::ObjectMeta;
use crate::networkset::{GlobalNetworkSet, NetworkSet};
use crate::node::Node;
use crate::policy::{GlobalNetworkPolicy, NetworkPolicy};
use crate::profile::Profile;
use crate::workload_endpoint::WorkloadEndpoint;

/// The resource kinds tortie models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `IPPool`.
    IpPool,
    /// `BGPConfiguration`.
    BgpConfiguration,
    /// `BGPPeer`.
    BgpPeer,
    /// `BGPFilter`.
    BgpFilter,
    /// `Node`.
    Node,
    /// `FelixConfiguration`.
    FelixConfiguration,
    /// `WorkloadEndpoint`.
    WorkloadEndpoint,
    /// `NetworkPolicy` (namespaced).
    NetworkPolicy,
    /// `GlobalNetworkPolicy`.
    GlobalNetworkPolicy,
    /// `NetworkSet` (namespaced).
    NetworkSet,
    /// `GlobalNetworkSet`.
    GlobalNetworkSet,
    /// `Profile`.
    Profile,
}

impl Kind {
    /// Every kind, in the order a manifest is best applied.
    pub const ALL: [Kind; 12] = [
        Kind::IpPool,
        Kind::BgpConfiguration,
        Kind::FelixConfiguration,
        Kind::Node,
        Kind::BgpFilter,
        Kind::BgpPeer,
        Kind::Profile,
        Kind::GlobalNetworkSet,
        Kind::NetworkSet,
        Kind::GlobalNetworkPolicy,
        Kind::NetworkPolicy,
        Kind::WorkloadEndpoint,
    ];

    /// The `kind:` value in manifests, e.g. `IPPool`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::IpPool => "IPPool",
            Kind::BgpConfiguration => "BGPConfiguration",
            Kind::BgpPeer => "BGPPeer",
            Kind::BgpFilter => "BGPFilter",
            Kind::Node => "Node",
            Kind::FelixConfiguration => "FelixConfiguration",
            Kind::WorkloadEndpoint => "WorkloadEndpoint",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            Kind::NetworkSet => "NetworkSet",
            Kind::GlobalNetworkSet => "GlobalNetworkSet",
            Kind::Profile => "Profile",
        }
    }

    /// The plural `tortiectl get` prints and accepts, e.g. `ippools`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::IpPool => "ippools",
            Kind::BgpConfiguration => "bgpconfigs",
            Kind::BgpPeer => "bgppeers",
            Kind::BgpFilter => "bgpfilters",
            Kind::Node => "nodes",
            Kind::FelixConfiguration => "felixconfigs",
            Kind::WorkloadEndpoint => "workloadendpoints",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::GlobalNetworkPolicy => "globalnetworkpolicies",
            Kind::NetworkSet => "networksets",
            Kind::GlobalNetworkSet => "globalnetworksets",
            Kind::Profile => "profiles",
        }
    }

    /// Every name `tortiectl` accepts for the kind (lower case), as calicoctl.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Kind::IpPool => &["ippool", "ippools", "ipp", "ipps", "pool", "pools"],
            Kind::BgpConfiguration => &[
                "bgpconfiguration",
                "bgpconfigurations",
                "bgpconfig",
                "bgpconfigs",
            ],
            Kind::BgpPeer => &["bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"],
            Kind::BgpFilter => &["bgpfilter", "bgpfilters"],
            Kind::Node => &["node", "nodes", "no", "nos"],
            Kind::FelixConfiguration => &[
                "felixconfiguration",
                "felixconfigurations",
                "felixconfig",
                "felixconfigs",
            ],
            Kind::WorkloadEndpoint => &["workloadendpoint", "workloadendpoints", "wep", "weps"],
            Kind::NetworkPolicy => &[
                "networkpolicy",
                "networkpolicies",
                "policy",
                "policies",
                "pol",
                "pols",
                "np",
                "nps",
            ],
            Kind::GlobalNetworkPolicy => &[
                "globalnetworkpolicy",
                "globalnetworkpolicies",
                "globalpolicy",
                "globalpolicies",
                "gnp",
                "gnps",
            ],
            Kind::NetworkSet => &["networkset", "networksets", "netset", "netsets"],
            Kind::GlobalNetworkSet => &[
                "globalnetworkset",
                "globalnetworksets",
                "globalnetset",
                "globalnetsets",
            ],
            Kind::Profile => &["profile", "profiles", "pro", "pros"],
        }
    }

    /// The kind a command-line name means (case-insensitive; kind names
    /// such as `IPPool` work too).
    pub fn from_cli_name(name: &str) -> Option<Kind> {
        let lower = name.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| k.aliases().contains(&lower.as_str()))
    }

    /// The kind with this exact `kind:` value.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// True if resources of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        matches!(
            self,
            Kind::WorkloadEndpoint | Kind::NetworkPolicy | Kind::NetworkSet
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Any tortie resource.
// FelixConfiguration is large, but resources are few and short-lived
// enough that boxing would only make matching on them clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// An IP pool.
    IpPool(IpPool),
    /// A BGP configuration.
    BgpConfiguration(BgpConfiguration),
    /// A BGP peer.
    BgpPeer(BgpPeer),
    /// A BGP filter.
    BgpFilter(BgpFilter),
    /// A node.
    Node(Node),
    /// A felix configuration.
    FelixConfiguration(FelixConfiguration),
    /// A workload endpoint.
    WorkloadEndpoint(WorkloadEndpoint),
    /// A namespaced network policy.
    NetworkPolicy(NetworkPolicy),
    /// A global network policy.
    GlobalNetworkPolicy(GlobalNetworkPolicy),
    /// A namespaced network set.
    NetworkSet(NetworkSet),
    /// A global network set.
    GlobalNetworkSet(GlobalNetworkSet),
    /// A profile.
    Profile(Profile),
}

macro_rules! each {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Resource::IpPool($r) => $e,
            Resource::BgpConfiguration($r) => $e,
            Resource::BgpPeer($r) => $e,
            Resource::BgpFilter($r) => $e,
            Resource::Node($r) => $e,
            Resource::FelixConfiguration($r) => $e,
            Resource::WorkloadEndpoint($r) => $e,
            Resource::NetworkPolicy($r) => $e,
            Resource::GlobalNetworkPolicy($r) => $e,
            Resource::NetworkSet($r) => $e,
            Resource::GlobalNetworkSet($r) => $e,
            Resource::Profile($r) => $e,
        }
    };
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::IpPool(_) => Kind::IpPool,
            Resource::BgpConfiguration(_) => Kind::BgpConfiguration,
            Resource::BgpPeer(_) => Kind::BgpPeer,
            Resource::BgpFilter(_) => Kind::BgpFilter,
            Resource::Node(_) => Kind::Node,
            Resource::FelixConfiguration(_) => Kind::FelixConfiguration,
            Resource::WorkloadEndpoint(_) => Kind::WorkloadEndpoint,
            Resource::NetworkPolicy(_) => Kind::NetworkPolicy,
            Resource::GlobalNetworkPolicy(_) => Kind::GlobalNetworkPolicy,
            Resource::NetworkSet(_) => Kind::NetworkSet,
            Resource::GlobalNetworkSet(_) => Kind::GlobalNetworkSet,
            Resource::Profile(_) => Kind::Profile,
        }
    }

    /// The metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each!(self, r => &r.metadata)
    }

    /// The metadata, mutably (the store sets resourceVersion, uid, ...).
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each!(self, r => &mut r.metadata)
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The namespace of namespaced kinds (`default` when unset), else `None`.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Resource::WorkloadEndpoint(w) => Some(w.namespace()),
            Resource::NetworkPolicy(p) => Some(p.namespace()),
            Resource::NetworkSet(s) => Some(s.namespace()),
            _ => None,
        }
    }

    /// `Kind(name)` or `Kind(namespace/name)`, as error paths start.
    pub fn id(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}({ns}/{})", self.kind(), self.name()),
            None => format!("{}({})", self.kind(), self.name()),
        }
    }

    /// Fills every defaulted field in place.
    pub fn apply_defaults(&mut self) {
        each!(self, r => r.apply_defaults())
    }

    /// The resource with its defaults filled, as it is stored.
    pub fn defaulted(mut self) -> Self {
        self.apply_defaults();
        self
    }

    /// Every validation error; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        each!(self, r => r.validate())
    }

    /// YAML text of the resource.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("resources always serialize")
    }

    /// Compact JSON text of the resource.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("resources always serialize")
    }
}

macro_rules! from_kind {
    ($($variant:ident),*) => {$(
        impl From<$variant> for Resource {
            fn from(r: $variant) -> Self {
                Resource::$variant(r)
            }
        }
    )*};
}
from_kind!(
    IpPool,
    BgpConfiguration,
    BgpPeer,
    BgpFilter,
    Node,
    FelixConfiguration,
    WorkloadEndpoint,
    NetworkPolicy,
    GlobalNetworkPolicy,
    NetworkSet,
    GlobalNetworkSet,
    Profile
);

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        each!(self, r => r.serialize(serializer))
    }
}

impl<'de> Deserialize<'de> for Resource {
    /// Reads one resource document, dispatching on its `kind`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        crate::manifest::resource_from_value(value, &crate::manifest::Location::default())
            .map_err(serde::de::Error::custom)
    }
}
