//! Kubernetes `networking.k8s.io/v1 NetworkPolicy` and `v1 Namespace`,
//! read from manifests, checked as the Kubernetes API server checks them
//! (and defaulted as it defaults them), then converted the way Calico's
//! Kubernetes datastore converts them (`libcalico-go/lib/backend/k8s/
//! conversion`): a NetworkPolicy becomes the Calico `NetworkPolicy`
//! `knp.default.<name>` in its namespace (order 1000); a Namespace becomes
//! the `Profile` `kns.<name>` that allows everything and gives its
//! endpoints the namespace's labels under the `pcns.` prefix, which rule
//! `namespaceSelector`s match.
//!
//! tortie stores only the converted Calico resources: `tortiectl delete -f`
//! of the same manifest deletes them.

mod check;
mod convert;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::error::FieldError;
use crate::meta::ObjectMeta;
use crate::resource::Resource;

pub use convert::{
    namespace_profile, namespace_to_profile, network_policy_to_calico, K8S_NAMESPACE_NAME_LABEL,
    NAMESPACE_NAME_LABEL,
};

/// `apiVersion` of Kubernetes NetworkPolicy.
pub const NETWORKING_V1: &str = "networking.k8s.io/v1";
/// `apiVersion` of Kubernetes core kinds (Namespace).
pub const CORE_V1: &str = "v1";

/// A Kubernetes kind tortie converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K8sKind {
    /// `networking.k8s.io/v1 NetworkPolicy`.
    NetworkPolicy,
    /// `v1 Namespace`.
    Namespace,
}

impl K8sKind {
    /// The kind for an `apiVersion` and `kind`, if tortie converts it.
    pub fn of(api_version: &str, kind: &str) -> Option<K8sKind> {
        match (api_version, kind) {
            (NETWORKING_V1, "NetworkPolicy") => Some(K8sKind::NetworkPolicy),
            (CORE_V1, "Namespace") => Some(K8sKind::Namespace),
            _ => None,
        }
    }

    /// How error paths name documents of this kind.
    pub fn display(self) -> &'static str {
        match self {
            K8sKind::NetworkPolicy => "NetworkPolicy.networking.k8s.io",
            K8sKind::Namespace => "Namespace",
        }
    }
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must have these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements, all of which must hold.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A port number or a port name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name.
    Str(String),
}

/// A `NetworkPolicyPort`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyPort {
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Port number or named port (absent: every port).
    #[serde(default)]
    pub port: Option<IntOrString>,
    /// Last port of a range starting at `port`.
    #[serde(default)]
    pub end_port: Option<i64>,
}

/// An `ipBlock` peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBlock {
    /// The CIDR.
    pub cidr: String,
    /// CIDRs inside `cidr` that are excluded.
    #[serde(default)]
    pub except: Vec<String>,
}

/// A `NetworkPolicyPeer`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyPeer {
    /// Pods (in the policy's namespace, or in the selected namespaces).
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// Addresses.
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}

/// A `NetworkPolicyIngressRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// Sources (empty: every source).
    #[serde(default)]
    pub from: Vec<PolicyPeer>,
    /// Ports (empty: every port).
    #[serde(default)]
    pub ports: Vec<PolicyPort>,
}

/// A `NetworkPolicyEgressRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    /// Destinations (empty: every destination).
    #[serde(default)]
    pub to: Vec<PolicyPeer>,
    /// Ports (empty: every port).
    #[serde(default)]
    pub ports: Vec<PolicyPort>,
}

/// A `NetworkPolicySpec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sNetworkPolicySpec {
    /// The pods of the namespace the policy isolates (required; `{}`: all).
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    /// `Ingress` and/or `Egress` (defaulted as the API server does).
    #[serde(default)]
    pub policy_types: Vec<String>,
    /// Ingress rules (OR-ed).
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
    /// Egress rules (OR-ed).
    #[serde(default)]
    pub egress: Vec<EgressRule>,
}

/// A Kubernetes `NetworkPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sNetworkPolicy {
    /// `networking.k8s.io/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `NetworkPolicy`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policy.
    #[serde(default)]
    pub spec: K8sNetworkPolicySpec,
    /// Accepted only empty (as `kubectl` prints it).
    #[serde(default)]
    pub status: Option<serde_json::Value>,
}

/// A Kubernetes `Namespace`: only its name and labels matter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sNamespace {
    /// `v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Namespace`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name and labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Accepted only empty (as `kubectl` prints it).
    #[serde(default)]
    pub spec: Option<serde_json::Value>,
    /// Accepted only empty (as `kubectl` prints it).
    #[serde(default)]
    pub status: Option<serde_json::Value>,
}

impl K8sNetworkPolicy {
    /// Namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `policyTypes` as the API server defaults them: `Ingress`, plus
    /// `Egress` when there are egress rules, when none are given.
    pub fn effective_policy_types(&self) -> Vec<String> {
        let s = &self.spec;
        if !s.policy_types.is_empty() {
            return s.policy_types.clone();
        }
        let mut t = vec!["Ingress".to_string()];
        if !s.egress.is_empty() {
            t.push("Egress".to_string());
        }
        t
    }

    /// Every validation error, as the API server reports them.
    pub fn validate(&self) -> Vec<FieldError> {
        check::network_policy(self)
    }
}

impl K8sNamespace {
    /// Every validation error.
    pub fn validate(&self) -> Vec<FieldError> {
        check::namespace(self)
    }
}

/// Decodes one Kubernetes document (already known to be `kind`): the
/// converted Calico resource and every validation error, or the
/// `(path, message)` of a field that does not decode.
pub(crate) fn decode(
    kind: K8sKind,
    value: Value,
) -> Result<(Resource, Vec<FieldError>), (String, String)> {
    match kind {
        K8sKind::NetworkPolicy => {
            let np: K8sNetworkPolicy = crate::manifest::decode_typed(value)?;
            let errors = np.validate();
            Ok((
                Resource::NetworkPolicy(network_policy_to_calico(&np)),
                errors,
            ))
        }
        K8sKind::Namespace => {
            let ns: K8sNamespace = crate::manifest::decode_typed(value)?;
            let errors = ns.validate();
            Ok((Resource::Profile(namespace_to_profile(&ns)), errors))
        }
    }
}

#[cfg(test)]
mod tests;
