//! `NetworkSet` (namespaced) and `GlobalNetworkSet`: labelled lists of
//! CIDRs that rule selectors match like endpoints, so that policy can name
//! outside networks by label.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::net::cidr_list;
use crate::validate;
use crate::workload_endpoint::LABEL_NAMESPACE;

/// A `NetworkSet` resource (namespaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSet {
    /// Name, namespace and the labels selectors match.
    pub metadata: ObjectMeta,
    /// The networks.
    pub spec: NetworkSetSpec,
}
resource_serde!(NetworkSet, NetworkSetSpec, "NetworkSet");

/// A `GlobalNetworkSet` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalNetworkSet {
    /// Name and the labels selectors match.
    pub metadata: ObjectMeta,
    /// The networks.
    pub spec: NetworkSetSpec,
}
resource_serde!(GlobalNetworkSet, NetworkSetSpec, "GlobalNetworkSet");

/// `spec` of both network set kinds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSetSpec {
    /// The CIDRs (bare addresses are host prefixes).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "cidr_list")]
    pub nets: Vec<IpNet>,
    /// Refused: domain-based egress needs a DNS proxy tortie does not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_egress_domains: Option<serde_json::Value>,
}

impl NetworkSetSpec {
    fn check(&self, c: &mut Checker, meta: &ObjectMeta) {
        validate::check_meta(c, meta);
        for (i, n) in self.nets.iter().enumerate() {
            validate::check_masked(c, &format!("spec.nets[{i}]"), n);
        }
        if let Some(v) = &self.allowed_egress_domains {
            c.reject_display(
                "spec.allowedEgressDomains",
                v,
                Reason::Unsupported("domain-based egress needs a DNS proxy tortie does not run"),
            );
        }
        if meta.labels.contains_key(LABEL_NAMESPACE) {
            c.reject(
                &format!("metadata.labels[{LABEL_NAMESPACE}]"),
                LABEL_NAMESPACE,
                Reason::NotAllowed(
                    "projectcalico.org/namespace is reserved (it is set from the namespace)",
                ),
            );
        }
    }
}

impl NetworkSet {
    /// Namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Fills the namespace.
    pub fn apply_defaults(&mut self) {
        if self.metadata.namespace.is_none() {
            self.metadata.namespace = Some("default".to_owned());
        }
    }

    /// Checks the set the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let id = format!("NetworkSet({}/{})", self.namespace(), self.metadata.name);
        let mut c = Checker::new(id);
        if let Some(ns) = &self.metadata.namespace {
            if !validate::is_dns1123_label(ns) {
                c.reject("metadata.namespace", ns, Reason::NotDns1123Label);
            }
        }
        self.spec.check(&mut c, &self.metadata);
        c.finish()
    }
}

impl GlobalNetworkSet {
    /// Nothing to fill.
    pub fn apply_defaults(&mut self) {}

    /// Checks the set the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("GlobalNetworkSet({})", self.metadata.name));
        self.spec.check(&mut c, &self.metadata);
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_sets_read_bare_addresses_and_refuse_domains() {
        let s: NetworkSet = serde_yaml::from_str(
            "metadata: {name: ext, namespace: ns1, labels: {role: db}}\nspec:\n  nets: [198.51.100.0/24, 203.0.113.7]\n",
        )
        .unwrap();
        assert_eq!(s.spec.nets[1].to_string(), "203.0.113.7/32");
        assert_eq!(s.validate(), vec![]);
        let g: GlobalNetworkSet = serde_yaml::from_str(
            "metadata: {name: g, labels: {projectcalico.org/namespace: x}}\nspec:\n  nets: [10.0.0.1/8]\n  allowedEgressDomains: [example.com]\n",
        )
        .unwrap();
        let paths: Vec<String> = g.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "GlobalNetworkSet(g).spec.nets[0]",
                "GlobalNetworkSet(g).spec.allowedEgressDomains",
                "GlobalNetworkSet(g).metadata.labels[projectcalico.org/namespace]",
            ]
        );
    }
}
