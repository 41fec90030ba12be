//! Kubernetes-style object metadata (the `ObjectMeta` subset Calico uses)
//! and the `apiVersion`/`kind` envelope every resource carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only API version tortie reads and writes.
pub const API_VERSION: &str = "projectcalico.org/v3";

/// Object metadata: the subset of Kubernetes `ObjectMeta` that Calico
/// resources use. Fields the datastore owns (`resourceVersion`, `uid`,
/// `creationTimestamp`) are accepted on input so that the output of
/// `tortiectl get -o yaml` (or `calicoctl get -o yaml`) applies unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// The resource name (a DNS-1123 subdomain for every kind).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The namespace; only `WorkloadEndpoint` is namespaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels, matched by selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Opaque version the datastore assigns on every write (used for
    /// compare-and-swap updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Unique id the datastore assigns on creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// RFC 3339 creation time the datastore assigns on creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Kubernetes generation counter; accepted and kept, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Kubernetes name prefix for generated names; accepted and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Kubernetes deletion time; accepted and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Kubernetes finalizers; accepted and kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Kubernetes owner references (e.g. set by the Calico operator);
    /// accepted and kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<serde_json::Value>,
}

impl ObjectMeta {
    /// Metadata carrying only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// Implements `Serialize`/`Deserialize` for a resource struct with the
/// `apiVersion`, `kind`, `metadata`, `spec` envelope. `apiVersion` and `kind`
/// may be absent on input (items of a typed list); when present they must
/// match. Unknown top-level fields are rejected.
macro_rules! resource_serde {
    ($ty:ident, $spec:ty, $kind:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let mut s = serializer.serialize_struct($kind, 4)?;
                s.serialize_field("apiVersion", $crate::meta::API_VERSION)?;
                s.serialize_field("kind", $kind)?;
                s.serialize_field("metadata", &self.metadata)?;
                s.serialize_field("spec", &self.spec)?;
                s.end()
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Envelope {
                    #[serde(rename = "apiVersion", default)]
                    api_version: Option<String>,
                    #[serde(default)]
                    kind: Option<String>,
                    #[serde(default)]
                    metadata: $crate::meta::ObjectMeta,
                    #[serde(default)]
                    spec: Option<$spec>,
                }
                let env = Envelope::deserialize(deserializer)?;
                $crate::meta::check_envelope::<D::Error>(
                    env.api_version.as_deref(),
                    env.kind.as_deref(),
                    $kind,
                )?;
                let spec = match env.spec {
                    Some(spec) => spec,
                    // A missing spec reads as an empty one, so that the
                    // spec's own required fields are reported.
                    None => <$spec>::deserialize(
                        serde::de::value::MapDeserializer::<_, D::Error>::new(std::iter::empty::<(
                            (),
                            (),
                        )>()),
                    )?,
                };
                Ok($ty {
                    metadata: env.metadata,
                    spec,
                })
            }
        }
    };
}
pub(crate) use resource_serde;

/// Checks the `apiVersion` and `kind` of a typed document.
pub(crate) fn check_envelope<E: serde::de::Error>(
    api_version: Option<&str>,
    kind: Option<&str>,
    expected_kind: &str,
) -> Result<(), E> {
    if let Some(v) = api_version {
        if v != API_VERSION {
            return Err(E::custom(format_args!(
                "apiVersion `{v}` is not supported; use `{API_VERSION}`"
            )));
        }
    }
    if let Some(k) = kind {
        if k != expected_kind {
            return Err(E::custom(format_args!(
                "kind `{k}` where `{expected_kind}` was expected"
            )));
        }
    }
    Ok(())
}
