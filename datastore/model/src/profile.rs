//! `Profile`: rules and labels that endpoints listing the profile in
//! `spec.profiles` get. Rules apply after every policy tier; `labelsToApply`
//! are inherited by the endpoints (their own labels win). The profile
//! `kns.<namespace>` is what a Kubernetes `Namespace` converts to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::policy::{check, Rule};
use crate::validate;

/// Name prefix of the profiles converted from Kubernetes Namespaces.
pub const NAMESPACE_PROFILE_PREFIX: &str = "kns.";

/// A `Profile` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Name and bookkeeping.
    pub metadata: ObjectMeta,
    /// Rules and inherited labels.
    pub spec: ProfileSpec,
}
resource_serde!(Profile, ProfileSpec, "Profile");

/// `Profile.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSpec {
    /// Ingress rules, after every policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules, after every policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Labels the profile's endpoints inherit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_to_apply: BTreeMap<String, String>,
}

impl Profile {
    /// Nothing to fill.
    pub fn apply_defaults(&mut self) {}

    /// Checks the profile the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("Profile({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        let s = &self.spec;
        check::check_rules(&mut c, "spec.ingress", &s.ingress);
        check::check_rules(&mut c, "spec.egress", &s.egress);
        for (k, v) in &s.labels_to_apply {
            let field = format!("spec.labelsToApply[{k}]");
            if !validate::is_qualified_name(k) {
                c.reject(&field, k, Reason::NotQualifiedName);
            }
            if !validate::is_label_value(v) {
                c.reject(&field, v, Reason::NotLabelValue);
            }
        }
        c.finish()
    }
}
