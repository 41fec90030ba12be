//! Typed `projectcalico.org/v3` resources over a [`Store`]: validation
//! before every write, Calico's key layout, resourceVersion = the store
//! revision, and multi-resource writes that happen all-or-none (one store
//! transaction).

use std::collections::BTreeMap;

use tortie_model::{FieldError, Kind, Resource};

use crate::error::StoreError;
use crate::keys;
use crate::store::{KeyValue, Revision, Store, TxnOp};

/// Why a typed operation failed; `Display` gives one line per problem.
#[derive(Debug, thiserror::Error)]
pub enum TypedError {
    /// Resources failed validation; nothing was written.
    #[error("{}", lines(.0))]
    Invalid(Vec<FieldError>),
    /// The resource does not exist.
    #[error("resource does not exist: {id}")]
    NotFound {
        /// `Kind(name)` or `Kind(namespace/name)`.
        id: String,
    },
    /// The resource exists already (create).
    #[error("resource already exists: {id}")]
    AlreadyExists {
        /// `Kind(name)`.
        id: String,
    },
    /// The resource changed since it was read (its resourceVersion differs).
    #[error("update conflict: {id} was modified (resourceVersion {expected}, now {actual}); get it again and retry")]
    Conflict {
        /// `Kind(name)`.
        id: String,
        /// The resourceVersion the write expected.
        expected: Revision,
        /// The current one (0: deleted).
        actual: Revision,
    },
    /// A `metadata.resourceVersion` that is not a revision number.
    #[error(
        "{id}.metadata.resourceVersion: {value:?} is invalid: must be a number returned by get"
    )]
    BadResourceVersion {
        /// `Kind(name)`.
        id: String,
        /// The value given.
        value: String,
    },
    /// A stored value that does not decode as its kind.
    #[error("stored value at {key} does not decode: {message}")]
    Corrupt {
        /// The store key.
        key: String,
        /// The decoder's message.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Result of the typed layer.
pub type Result<T, E = TypedError> = std::result::Result<T, E>;

/// The future of a multi-resource write ([`create`], [`apply`], [`replace`],
/// [`delete`]), so that callers can pick one at run time.
pub type BoxedWrite<'a> = futures::future::BoxFuture<'a, Result<Vec<Resource>>>;

/// The etcd plural Calico uses in keys (`bgpconfigurations`, not `bgpconfigs`).
pub fn key_plural(kind: Kind) -> &'static str {
    match kind {
        Kind::IpPool => "ippools",
        Kind::BgpConfiguration => "bgpconfigurations",
        Kind::BgpPeer => "bgppeers",
        Kind::Node => "nodes",
        Kind::FelixConfiguration => "felixconfigurations",
        Kind::WorkloadEndpoint => "workloadendpoints",
        Kind::NetworkPolicy => "networkpolicies",
        Kind::GlobalNetworkPolicy => "globalnetworkpolicies",
        Kind::NetworkSet => "networksets",
        Kind::GlobalNetworkSet => "globalnetworksets",
        Kind::BgpFilter => "bgpfilters",
        Kind::Profile => "profiles",
    }
}

/// The store key of a resource of `kind` (namespace only for namespaced kinds;
/// `default` when not given).
pub fn key_of(kind: Kind, namespace: Option<&str>, name: &str) -> String {
    if kind.is_namespaced() {
        keys::namespaced_resource(key_plural(kind), namespace.unwrap_or("default"), name)
    } else {
        keys::resource(key_plural(kind), name)
    }
}

/// The store key of `r`.
pub fn key_of_resource(r: &Resource) -> String {
    key_of(r.kind(), r.namespace(), r.name())
}

fn id_of(kind: Kind, namespace: Option<&str>, name: &str) -> String {
    match (kind.is_namespaced(), namespace) {
        (true, ns) => format!("{kind}({}/{name})", ns.unwrap_or("default")),
        (false, _) => format!("{kind}({name})"),
    }
}

/// Decodes a stored value, setting `resourceVersion` to its revision.
pub fn decode(kv: &KeyValue) -> Result<Resource> {
    let mut r: Resource = serde_json::from_slice(&kv.value).map_err(|e| TypedError::Corrupt {
        key: kv.key.clone(),
        message: e.to_string(),
    })?;
    r.metadata_mut().resource_version = Some(kv.revision.to_string());
    Ok(r)
}

/// The JSON stored for `r` (resourceVersion is the store's, never stored).
fn encode(r: &Resource) -> Vec<u8> {
    let mut r = r.clone();
    r.metadata_mut().resource_version = None;
    r.to_json().into_bytes()
}

/// The node index key of a WorkloadEndpoint ([`keys::workload_index`]);
/// `None` for other kinds and endpoints without a node.
pub fn workload_index_key(r: &Resource) -> Option<String> {
    let Resource::WorkloadEndpoint(w) = r else {
        return None;
    };
    if w.spec.node.is_empty() {
        return None;
    }
    let ns = r.namespace().unwrap_or("default");
    Some(keys::workload_index(&w.spec.node, ns, r.name()))
}

/// The writes that keep the node index of WorkloadEndpoints current when
/// `old` (stored) becomes `new` (written; `None`: deleted): the entry under
/// the new node is the same value as the endpoint, the entry under a
/// previous node goes (when present: endpoints stored before the index
/// have none).
async fn index_ops(
    store: &dyn Store,
    new: Option<&Resource>,
    old: Option<&Resource>,
) -> Result<Vec<TxnOp>> {
    let new_key = new.and_then(workload_index_key);
    let mut ops = Vec::new();
    if let Some(k) = old.and_then(workload_index_key) {
        if Some(&k) != new_key.as_ref() {
            if let Some(kv) = store.get(&k).await? {
                ops.push(TxnOp::Delete {
                    key: k,
                    expected: Some(kv.revision),
                });
            }
        }
    }
    if let (Some(key), Some(r)) = (new_key, new) {
        ops.push(TxnOp::Put {
            key,
            value: encode(r),
        });
    }
    Ok(ops)
}

/// The resourceVersion the caller gave, as a revision.
fn given_version(r: &Resource) -> Result<Option<Revision>> {
    match &r.metadata().resource_version {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| TypedError::BadResourceVersion {
                id: r.id(),
                value: v.clone(),
            }),
    }
}

/// Fills defaults and validates every resource; all errors or the defaulted set.
pub fn prepare(resources: Vec<Resource>) -> Result<Vec<Resource>> {
    let resources: Vec<Resource> = resources.into_iter().map(Resource::defaulted).collect();
    let errors: Vec<FieldError> = resources.iter().flat_map(Resource::validate).collect();
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(TypedError::Invalid(errors))
    }
}

/// One resource.
pub async fn get(
    store: &dyn Store,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<Resource> {
    let key = key_of(kind, namespace, name);
    match store.get(&key).await? {
        Some(kv) => decode(&kv),
        None => Err(TypedError::NotFound {
            id: id_of(kind, namespace, name),
        }),
    }
}

/// Every resource of `kind` (of one namespace, or all when `None`), by key order.
pub async fn list(store: &dyn Store, kind: Kind, namespace: Option<&str>) -> Result<Vec<Resource>> {
    let prefix = match (kind.is_namespaced(), namespace) {
        (true, Some(ns)) => keys::namespaced_prefix(key_plural(kind), ns),
        _ => keys::resource_prefix(key_plural(kind)),
    };
    store
        .list(&prefix)
        .await?
        .items
        .iter()
        .map(decode)
        .collect()
}

/// Maps a store error of a transaction back to the resource it names.
fn typed_err(e: StoreError, ids: &BTreeMap<String, String>) -> TypedError {
    let id = |key: &str| ids.get(key).cloned().unwrap_or_else(|| key.to_string());
    match e {
        StoreError::NotFound { key } => TypedError::NotFound { id: id(&key) },
        StoreError::AlreadyExists { key } => TypedError::AlreadyExists { id: id(&key) },
        StoreError::Conflict {
            key,
            expected,
            actual,
        } => TypedError::Conflict {
            id: id(&key),
            expected,
            actual,
        },
        e => TypedError::Store(e),
    }
}

async fn commit(
    store: &dyn Store,
    ops: Vec<TxnOp>,
    ids: &BTreeMap<String, String>,
) -> Result<Revision> {
    store.txn(ops).await.map_err(|e| typed_err(e, ids))
}

fn ids_of(resources: &[Resource]) -> BTreeMap<String, String> {
    resources
        .iter()
        .map(|r| (key_of_resource(r), r.id()))
        .collect()
}

/// Stamps creation metadata (uid, creationTimestamp) the store owns.
fn stamp_new(r: &mut Resource) {
    let m = r.metadata_mut();
    m.uid = Some(new_uid());
    m.creation_timestamp = Some(now_rfc3339());
    m.resource_version = None;
}

/// Keeps the stored uid and creationTimestamp on a replacement.
fn keep_identity(r: &mut Resource, current: &Resource) {
    let old = current.metadata();
    let m = r.metadata_mut();
    m.uid = old.uid.clone().or_else(|| Some(new_uid()));
    m.creation_timestamp = old
        .creation_timestamp
        .clone()
        .or_else(|| Some(now_rfc3339()));
}

/// A random (version 4) UUID.
fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Creates every resource or none; `AlreadyExists` names the first present.
pub async fn create(store: &dyn Store, resources: Vec<Resource>) -> Result<Vec<Resource>> {
    let mut resources = prepare(resources)?;
    let ids = ids_of(&resources);
    let mut ops = Vec::with_capacity(resources.len());
    for r in &mut resources {
        stamp_new(r);
        ops.push(TxnOp::Create {
            key: key_of_resource(r),
            value: encode(r),
        });
        ops.extend(index_ops(store, Some(r), None).await?);
    }
    let rev = commit(store, ops, &ids).await?;
    Ok(with_version(resources, rev))
}

fn with_version(mut resources: Vec<Resource>, rev: Revision) -> Vec<Resource> {
    for r in &mut resources {
        r.metadata_mut().resource_version = Some(rev.to_string());
    }
    resources
}

/// Replaces every resource or none: each must exist, and when it carries a
/// resourceVersion, the stored one must match.
pub async fn replace(store: &dyn Store, resources: Vec<Resource>) -> Result<Vec<Resource>> {
    let mut resources = prepare(resources)?;
    let ids = ids_of(&resources);
    let mut ops = Vec::with_capacity(resources.len());
    for r in &mut resources {
        let key = key_of_resource(r);
        let given = given_version(r)?;
        let Some(kv) = store.get(&key).await? else {
            return Err(TypedError::NotFound { id: r.id() });
        };
        let old = decode(&kv)?;
        keep_identity(r, &old);
        ops.push(TxnOp::Update {
            key,
            value: encode(r),
            expected: given.unwrap_or(kv.revision),
        });
        ops.extend(index_ops(store, Some(r), Some(&old)).await?);
    }
    let rev = commit(store, ops, &ids).await?;
    Ok(with_version(resources, rev))
}

/// Creates or replaces every resource, all-or-none. Concurrent writers are
/// detected (compare-and-swap on what was read) and the apply re-reads and
/// retries a few times before reporting the conflict.
pub async fn apply(store: &dyn Store, resources: Vec<Resource>) -> Result<Vec<Resource>> {
    let resources = prepare(resources)?;
    let ids = ids_of(&resources);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut out = resources.clone();
        let mut ops = Vec::with_capacity(out.len());
        for r in &mut out {
            let key = key_of_resource(r);
            let given = given_version(r)?;
            match store.get(&key).await? {
                Some(kv) => {
                    let old = decode(&kv)?;
                    keep_identity(r, &old);
                    let expected = given.unwrap_or(kv.revision);
                    ops.push(TxnOp::Update {
                        key,
                        value: encode(r),
                        expected,
                    });
                    ops.extend(index_ops(store, Some(r), Some(&old)).await?);
                }
                None => {
                    stamp_new(r);
                    ops.push(TxnOp::Create {
                        key,
                        value: encode(r),
                    });
                    ops.extend(index_ops(store, Some(r), None).await?);
                }
            }
        }
        let retry_ok = resources
            .iter()
            .all(|r| r.metadata().resource_version.is_none());
        match commit(store, ops, &ids).await {
            Ok(rev) => return Ok(with_version(out, rev)),
            Err(
                TypedError::Conflict { .. }
                | TypedError::AlreadyExists { .. }
                | TypedError::NotFound { .. },
            ) if retry_ok && attempt < 5 => {}
            Err(e) => return Err(e),
        }
    }
}

/// Deletes every named resource or none; each must exist (and match its
/// resourceVersion when one is given). Returns what was deleted.
pub async fn delete(store: &dyn Store, resources: Vec<Resource>) -> Result<Vec<Resource>> {
    let ids = ids_of(&resources);
    let mut ops = Vec::with_capacity(resources.len());
    let mut deleted = Vec::with_capacity(resources.len());
    for r in &resources {
        let key = key_of_resource(r);
        let given = given_version(r)?;
        let Some(kv) = store.get(&key).await? else {
            return Err(TypedError::NotFound { id: r.id() });
        };
        let old = decode(&kv)?;
        ops.push(TxnOp::Delete {
            key,
            expected: Some(given.unwrap_or(kv.revision)),
        });
        ops.extend(index_ops(store, None, Some(&old)).await?);
        deleted.push(old);
    }
    commit(store, ops, &ids).await?;
    Ok(deleted)
}

/// Deletes one resource by kind and name.
pub async fn delete_one(
    store: &dyn Store,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<Resource> {
    let current = get(store, kind, namespace, name).await?;
    let mut deleted = delete(store, vec![current]).await?;
    Ok(deleted.remove(0))
}
