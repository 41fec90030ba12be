//! Reading manifests: YAML or JSON, one or many documents (`---`), plain
//! resources or `kind: List` / `kind: <Kind>List` with `items`. Every
//! problem in every document is collected; a manifest with any problem
//! yields no resources, so callers apply all or nothing.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::error::FieldError;
use crate::ippool::IpPool;
use crate::meta::API_VERSION;
use crate::resource::{Kind, Resource};

/// Where in a manifest something is: 1-based document and list item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based document number (0: not from a multi-document manifest).
    pub document: usize,
    /// 1-based item number within a list document.
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.document, self.item) {
            (0, None) => f.write_str("manifest"),
            (0, Some(i)) => write!(f, "item {i}"),
            (d, None) => write!(f, "document {d}"),
            (d, Some(i)) => write!(f, "document {d} item {i}"),
        }
    }
}

/// One problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML/JSON.
    #[error("{location}: not valid YAML or JSON: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document that is not a mapping.
    #[error("{location}: expected a resource (a mapping with apiVersion, kind, metadata, spec)")]
    NotAMapping {
        /// Where.
        location: Location,
    },
    /// A document without `kind`.
    #[error("{location}: kind is missing; use one of {}", kind_names())]
    MissingKind {
        /// Where.
        location: Location,
    },
    /// A kind tortie does not model.
    #[error(
        "{location}: kind `{found}` is not supported; use one of {}",
        kind_names()
    )]
    UnknownKind {
        /// Where.
        location: Location,
        /// The kind given.
        found: String,
    },
    /// An `apiVersion` other than `projectcalico.org/v3`.
    #[error("{location}: {resource}.apiVersion: `{found}` is not supported; use `{API_VERSION}`")]
    ApiVersion {
        /// Where.
        location: Location,
        /// `Kind(name)` of the document.
        resource: String,
        /// The apiVersion given.
        found: String,
    },
    /// A field that does not decode: unknown, wrong type, bad value.
    #[error("{location}: {path}: {message}")]
    Decode {
        /// Where.
        location: Location,
        /// `Kind(name).field.path`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A field that decodes but is invalid.
    #[error("{location}: {error}")]
    Invalid {
        /// Where.
        location: Location,
        /// The field error.
        error: FieldError,
    },
    /// The same resource twice in one manifest.
    #[error("{location}: {resource} appears more than once in the manifest")]
    Duplicate {
        /// Where the second copy is.
        location: Location,
        /// `Kind(name)`.
        resource: String,
    },
}

fn kind_names() -> String {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    format!(
        "{} (apiVersion {API_VERSION}), NetworkPolicy ({}), Namespace ({}) (or a List of them)",
        names.join(", "),
        crate::k8s::NETWORKING_V1,
        crate::k8s::CORE_V1
    )
}

/// Every problem found in a manifest, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses and validates a manifest. Returns every resource in order, or
/// every problem of every document. Defaults are not filled in: call
/// [`Resource::defaulted`] before storing.
pub fn parse_manifest(text: &str) -> Result<Vec<Resource>, ManifestErrors> {
    let mut errors = Vec::new();
    let documents = split_documents(text, &mut errors);
    let mut resources = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, doc) in documents.into_iter().enumerate() {
        let location = Location {
            document: n + 1,
            item: None,
        };
        for (location, item) in expand_lists(doc, location, &mut errors) {
            match decode_document(item, location) {
                Ok((r, invalid)) => {
                    let id = (
                        r.kind(),
                        r.namespace().map(str::to_owned),
                        r.name().to_owned(),
                    );
                    if !seen.insert(id) {
                        errors.push(ManifestError::Duplicate {
                            location,
                            resource: r.id(),
                        });
                    }
                    errors.extend(
                        invalid
                            .into_iter()
                            .map(|error| ManifestError::Invalid { location, error }),
                    );
                    resources.push((location, r));
                }
                Err(e) => errors.push(e),
            }
        }
    }
    errors.extend(pool_overlaps(&resources));
    if errors.is_empty() {
        Ok(resources.into_iter().map(|(_, r)| r).collect())
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Pools of one manifest must not overlap each other (overlaps with pools
/// already stored are the store's to check, with [`IpPool::overlaps`]).
fn pool_overlaps(resources: &[(Location, Resource)]) -> Vec<ManifestError> {
    let pools: Vec<(Location, &IpPool)> = resources
        .iter()
        .filter_map(|(l, r)| match r {
            Resource::IpPool(p) => Some((*l, p)),
            _ => None,
        })
        .collect();
    let mut errors = Vec::new();
    for (i, (location, later)) in pools.iter().enumerate() {
        let clash = pools[..i]
            .iter()
            .find(|(_, p)| p.metadata.name != later.metadata.name && p.overlaps(later));
        if let Some((_, earlier)) = clash {
            errors.push(ManifestError::Invalid {
                location: *location,
                error: later.overlap_error(earlier),
            });
        }
    }
    errors
}

/// Splits the text into documents: a JSON stream when it starts with `{`
/// or `[`, YAML documents otherwise. Empty documents are dropped.
fn split_documents(text: &str, errors: &mut Vec<ManifestError>) -> Vec<Value> {
    let trimmed = text.trim_start();
    let mut docs = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        for (n, v) in serde_json::Deserializer::from_str(text)
            .into_iter::<serde_json::Value>()
            .enumerate()
        {
            let location = Location {
                document: n + 1,
                item: None,
            };
            match v.map(|v| serde_yaml::to_value(v).expect("JSON maps to YAML")) {
                Ok(Value::Sequence(items)) => docs.push(list_value(items)),
                Ok(v) => docs.push(v),
                Err(e) => {
                    let message = e.to_string();
                    errors.push(ManifestError::Syntax { location, message });
                    break;
                }
            }
        }
        return docs;
    }
    for (n, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        // `<<` merge keys are expanded as Go's YAML reader does.
        let doc = Value::deserialize(de).and_then(|mut v| v.apply_merge().map(|()| v));
        match doc {
            Ok(Value::Null) => {}
            Ok(v) => docs.push(v),
            Err(e) => {
                let location = Location {
                    document: n + 1,
                    item: None,
                };
                let message = e.to_string();
                errors.push(ManifestError::Syntax { location, message });
                break;
            }
        }
    }
    docs
}

/// A top-level JSON array read as `kind: List`.
fn list_value(items: Vec<Value>) -> Value {
    let mut m = Mapping::new();
    m.insert("kind".into(), "List".into());
    m.insert("items".into(), Value::Sequence(items));
    Value::Mapping(m)
}

/// Expands a `List`/`<Kind>List` document into its items; other documents
/// are returned as they are.
fn expand_lists(
    doc: Value,
    location: Location,
    errors: &mut Vec<ManifestError>,
) -> Vec<(Location, Value)> {
    let Value::Mapping(map) = &doc else {
        errors.push(ManifestError::NotAMapping { location });
        return Vec::new();
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let item_kind = match kind {
        "List" => None,
        k if k.ends_with("List") && Kind::from_name(&k[..k.len() - 4]).is_some() => {
            Some(&k[..k.len() - 4])
        }
        _ => return vec![(location, doc)],
    };
    let list_version = map.get("apiVersion").cloned();
    let items = match map.get("items") {
        Some(Value::Sequence(items)) => items.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            errors.push(ManifestError::Decode {
                location,
                path: format!("{kind}.items"),
                message: "must be a list of resources".into(),
            });
            return Vec::new();
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            // Items of a typed list inherit the list's kind and apiVersion.
            if let (Some(k), Value::Mapping(m)) = (item_kind, &mut item) {
                if !m.contains_key("kind") {
                    m.insert("kind".into(), k.into());
                }
                if let (false, Some(v)) = (m.contains_key("apiVersion"), &list_version) {
                    m.insert("apiVersion".into(), v.clone());
                }
            }
            let loc = Location {
                document: location.document,
                item: Some(i + 1),
            };
            (loc, item)
        })
        .collect()
}

/// Decodes one manifest document: a Kubernetes kind tortie converts
/// (checked as Kubernetes, then converted) or a `projectcalico.org/v3`
/// resource; with every validation error of the document.
fn decode_document(
    value: Value,
    location: Location,
) -> Result<(Resource, Vec<FieldError>), ManifestError> {
    let k8s = match &value {
        Value::Mapping(map) => {
            let get = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or_default();
            crate::k8s::K8sKind::of(get("apiVersion"), get("kind")).map(|k| (k, display_name(map)))
        }
        _ => None,
    };
    let Some((kind, name)) = k8s else {
        let r = resource_from_value(value, &location)?;
        let invalid = r.validate();
        return Ok((r, invalid));
    };
    crate::k8s::decode(kind, value).map_err(|(path, message)| {
        let resource = format!("{}({name})", kind.display());
        ManifestError::Decode {
            location,
            path: if path.is_empty() {
                resource
            } else {
                format!("{resource}.{path}")
            },
            message,
        }
    })
}

/// Decodes one resource document into its typed form (no validation).
pub(crate) fn resource_from_value(
    value: Value,
    location: &Location,
) -> Result<Resource, ManifestError> {
    let location = *location;
    let Value::Mapping(map) = &value else {
        return Err(ManifestError::NotAMapping { location });
    };
    let kind_text = match map.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(other) => format!("{other:?}"),
        None => return Err(ManifestError::MissingKind { location }),
    };
    let Some(kind) = Kind::from_name(&kind_text) else {
        return Err(ManifestError::UnknownKind {
            location,
            found: kind_text,
        });
    };
    let resource = format!("{kind}({})", display_name(map));
    match map.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(other) => {
            let found = other
                .as_str()
                .map_or_else(|| format!("{other:?}"), str::to_owned);
            return Err(ManifestError::ApiVersion {
                location,
                resource,
                found,
            });
        }
        None => {
            return Err(ManifestError::ApiVersion {
                location,
                resource,
                found: String::new(),
            })
        }
    }
    decode(kind, value).map_err(|(path, message)| ManifestError::Decode {
        location,
        path: if path.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{path}")
        },
        message,
    })
}

fn display_name(map: &Mapping) -> String {
    let meta = map.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    match (get("namespace"), get("name")) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.to_owned(),
        _ => String::new(),
    }
}

/// Typed decoding with the path of the first offending field; the message
/// quotes the offending value when there is one.
pub(crate) fn decode_typed<T: serde::de::DeserializeOwned>(
    value: Value,
) -> Result<T, (String, String)> {
    let original = value.clone();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let offending = value_at(&original, e.path()).cloned();
        let mut message = e.into_inner().to_string();
        if let Some(text) = offending.and_then(|v| serde_json::to_string(&v).ok()) {
            if !message.contains('`') && !message.contains(&text) {
                message = format!("{text} is invalid: {message}");
            }
        }
        let path = if path == "." { String::new() } else { path };
        (path, message)
    })
}

/// Typed decoding of a `projectcalico.org/v3` kind.
fn decode(kind: Kind, value: Value) -> Result<Resource, (String, String)> {
    use decode_typed as typed;
    Ok(match kind {
        Kind::IpPool => Resource::IpPool(typed(value)?),
        Kind::BgpConfiguration => Resource::BgpConfiguration(typed(value)?),
        Kind::BgpPeer => Resource::BgpPeer(typed(value)?),
        Kind::BgpFilter => Resource::BgpFilter(typed(value)?),
        Kind::Node => Resource::Node(typed(value)?),
        Kind::FelixConfiguration => Resource::FelixConfiguration(typed(value)?),
        Kind::WorkloadEndpoint => Resource::WorkloadEndpoint(typed(value)?),
        Kind::NetworkPolicy => Resource::NetworkPolicy(typed(value)?),
        Kind::GlobalNetworkPolicy => Resource::GlobalNetworkPolicy(typed(value)?),
        Kind::NetworkSet => Resource::NetworkSet(typed(value)?),
        Kind::GlobalNetworkSet => Resource::GlobalNetworkSet(typed(value)?),
        Kind::Profile => Resource::Profile(typed(value)?),
    })
}

/// The scalar at `path` in `value`, if the path leads to one.
fn value_at<'a>(value: &'a Value, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    use serde_path_to_error::Segment;
    let mut cur = value;
    for seg in path.iter() {
        cur = match (seg, cur) {
            (Segment::Seq { index }, Value::Sequence(items)) => items.get(*index)?,
            (Segment::Map { key }, Value::Mapping(m)) => m.get(key.as_str())?,
            _ => return None,
        };
    }
    match cur {
        Value::Mapping(_) | Value::Sequence(_) => None,
        v => Some(v),
    }
}

/// Renders resources of one kind as a `<Kind>List` document, the way
/// `calicoctl get -o yaml|json` prints several resources.
pub fn list_value_of(kind: Kind, items: &[Resource]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": format!("{}List", kind.name()),
        "items": items,
    })
}

#[cfg(test)]
mod tests;
