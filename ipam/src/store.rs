//! The narrow store the IPAM algorithm runs over: five compare-and-swap
//! operations on JSON values under typed keys, plus typed helpers.

use std::fmt;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tortie_model::ipam::{AllocationBlock, BlockAffinity, IpamConfig, IpamHandle};

/// A store revision (etcd mod_revision, SQLite row version).
pub type Revision = u64;

/// One IPAM object's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpamKey {
    /// An allocation block by CIDR.
    Block(IpNet),
    /// A node's affinity for a block.
    Affinity {
        /// The node.
        node: String,
        /// The block CIDR.
        cidr: IpNet,
    },
    /// A handle by ID.
    Handle(String),
    /// The global IPAM configuration.
    Config,
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    /// Every block.
    Blocks,
    /// Affinities of one node, or of all nodes.
    Affinities(Option<String>),
    /// Every handle.
    Handles,
}

/// A stored value and the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// JSON text.
    pub value: String,
    /// Revision for the next compare-and-swap.
    pub revision: Revision,
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object changed since it was read (CAS lost).
    #[error("{0} changed concurrently")]
    Conflict(IpamKey),
    /// The object does not exist.
    #[error("{0} does not exist")]
    NotFound(IpamKey),
    /// The object exists already (create lost).
    #[error("{0} exists already")]
    AlreadyExists(IpamKey),
    /// A stored value is not valid JSON for its type.
    #[error("{key} holds invalid JSON: {source}")]
    Corrupt {
        /// The object.
        key: IpamKey,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The backend failed (I/O, connection, SQL).
    #[error("datastore: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for IpamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpamKey::Block(c) => write!(f, "block {c}"),
            IpamKey::Affinity { node, cidr } => write!(f, "affinity {node}/{cidr}"),
            IpamKey::Handle(h) => write!(f, "handle {h}"),
            IpamKey::Config => f.write_str("IPAM config"),
        }
    }
}

/// One write of an all-or-none [`IpamStore::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Create; fails with `AlreadyExists` when present.
    Create(IpamKey, String),
    /// Replace the object read at the revision; `Conflict` / `NotFound`.
    Update(IpamKey, String, Revision),
    /// Delete the object read at the revision; `Conflict` / `NotFound`.
    Delete(IpamKey, Revision),
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &IpamKey {
        match self {
            Write::Create(k, _) | Write::Update(k, _, _) | Write::Delete(k, _) => k,
        }
    }
}

/// The compare-and-swap store IPAM needs. Implementations: [`crate::MemoryStore`]
/// and the adapter over `tortie-datastore` ([`crate::DatastoreIpamStore`]).
pub trait IpamStore {
    /// Reads one object.
    fn get(&self, key: &IpamKey) -> Result<Option<Entry>, StoreError>;
    /// Lists objects (any order).
    fn list(&self, scope: &ListScope) -> Result<Vec<(IpamKey, Entry)>, StoreError>;
    /// Applies every write or none, each checked against its condition;
    /// the first failing condition is the error.
    fn commit(&self, writes: &[Write]) -> Result<Revision, StoreError>;
}

impl<T: IpamStore + ?Sized> IpamStore for &T {
    fn get(&self, key: &IpamKey) -> Result<Option<Entry>, StoreError> {
        (**self).get(key)
    }
    fn list(&self, scope: &ListScope) -> Result<Vec<(IpamKey, Entry)>, StoreError> {
        (**self).list(scope)
    }
    fn commit(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        (**self).commit(writes)
    }
}

impl<T: IpamStore + ?Sized> IpamStore for std::sync::Arc<T> {
    fn get(&self, key: &IpamKey) -> Result<Option<Entry>, StoreError> {
        (**self).get(key)
    }
    fn list(&self, scope: &ListScope) -> Result<Vec<(IpamKey, Entry)>, StoreError> {
        (**self).list(scope)
    }
    fn commit(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        (**self).commit(writes)
    }
}

/// A typed object and its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The object.
    pub value: T,
    /// Its revision.
    pub revision: Revision,
}

fn decode<T: DeserializeOwned>(key: &IpamKey, e: Entry) -> Result<Versioned<T>, StoreError> {
    let value = serde_json::from_str(&e.value).map_err(|source| StoreError::Corrupt {
        key: key.clone(),
        source,
    })?;
    Ok(Versioned {
        value,
        revision: e.revision,
    })
}

/// JSON text of a model object.
pub(crate) fn encode<T: Serialize>(v: &T) -> String {
    // Our model types serialize infallibly (no maps with non-string keys).
    serde_json::to_string(v).unwrap_or_default()
}

/// Typed reads and writes over any [`IpamStore`].
pub(crate) trait TypedStore: IpamStore {
    fn get_typed<T: DeserializeOwned>(
        &self,
        key: &IpamKey,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        self.get(key)?.map(|e| decode(key, e)).transpose()
    }
    fn create_typed<T: Serialize>(&self, key: &IpamKey, v: &T) -> Result<Revision, StoreError> {
        self.commit(&[Write::Create(key.clone(), encode(v))])
    }
    fn list_blocks(&self) -> Result<Vec<Versioned<AllocationBlock>>, StoreError> {
        self.list(&ListScope::Blocks)?
            .into_iter()
            .map(|(k, e)| decode(&k, e))
            .collect()
    }
    fn list_handles(&self) -> Result<Vec<Versioned<IpamHandle>>, StoreError> {
        self.list(&ListScope::Handles)?
            .into_iter()
            .map(|(k, e)| decode(&k, e))
            .collect()
    }
    fn list_affinities(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<(String, IpNet, Versioned<BlockAffinity>)>, StoreError> {
        let mut out = Vec::new();
        for (k, e) in self.list(&ListScope::Affinities(node.map(str::to_string)))? {
            if let IpamKey::Affinity { node, cidr } = &k {
                let (node, cidr) = (node.clone(), *cidr);
                out.push((node, cidr, decode(&k, e)?));
            }
        }
        Ok(out)
    }
    fn config(&self) -> Result<IpamConfig, StoreError> {
        Ok(self
            .get_typed::<IpamConfig>(&IpamKey::Config)?
            .map(|v| v.value)
            .unwrap_or_default())
    }
}

impl<S: IpamStore + ?Sized> TypedStore for S {}

/// Typed reads for callers outside the crate (tools, tests).
pub trait TypedStoreExt: IpamStore {
    /// Reads and decodes one object.
    fn get_json<T: DeserializeOwned>(&self, key: &IpamKey) -> Result<Option<T>, StoreError> {
        Ok(self.get_typed::<T>(key)?.map(|v| v.value))
    }
}

impl<S: IpamStore + ?Sized> TypedStoreExt for S {}

/// Key text for the store layout of Calico (`<prefix>/ipam/v2/...`).
pub mod keys {
    use super::IpamKey;
    use ipnet::IpNet;

    fn family(c: &IpNet) -> &'static str {
        match c {
            IpNet::V4(_) => "ipv4",
            IpNet::V6(_) => "ipv6",
        }
    }

    /// `10.0.0.0/26` → `10.0.0.0-26` (as in Calico's keys).
    pub fn cidr_segment(c: &IpNet) -> String {
        c.to_string().replace('/', "-")
    }

    /// `10.0.0.0-26` → `10.0.0.0/26`.
    pub fn parse_cidr_segment(s: &str) -> Option<IpNet> {
        let (ip, len) = s.rsplit_once('-')?;
        format!("{ip}/{len}").parse().ok()
    }

    /// The full key of `key` under `prefix` (e.g. `/calico`, may be empty).
    pub fn key_text(prefix: &str, key: &IpamKey) -> String {
        match key {
            IpamKey::Block(c) => format!(
                "{prefix}/ipam/v2/assignment/{}/block/{}",
                family(c),
                cidr_segment(c)
            ),
            IpamKey::Affinity { node, cidr } => format!(
                "{prefix}/ipam/v2/host/{node}/{}/block/{}",
                family(cidr),
                cidr_segment(cidr)
            ),
            IpamKey::Handle(h) => format!("{prefix}/ipam/v2/handle/{h}"),
            IpamKey::Config => format!("{prefix}/ipam/v2/config"),
        }
    }

    /// Parses a full key text back (the inverse of [`key_text`]).
    pub fn parse_key(prefix: &str, text: &str) -> Option<IpamKey> {
        let rest = text.strip_prefix(prefix)?.strip_prefix("/ipam/v2/")?;
        if rest == "config" {
            return Some(IpamKey::Config);
        }
        if let Some(h) = rest.strip_prefix("handle/") {
            return Some(IpamKey::Handle(h.to_string()));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["assignment", _, "block", c] => Some(IpamKey::Block(parse_cidr_segment(c)?)),
            ["host", node, _, "block", c] => Some(IpamKey::Affinity {
                node: node.to_string(),
                cidr: parse_cidr_segment(c)?,
            }),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn keys_follow_calicos_etcd_layout_and_parse_back() {
            let c: IpNet = "10.0.0.0/26".parse().unwrap();
            let c6: IpNet = "fd00::/122".parse().unwrap();
            let cases = [
                (
                    IpamKey::Block(c),
                    "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26",
                ),
                (
                    IpamKey::Block(c6),
                    "/calico/ipam/v2/assignment/ipv6/block/fd00::-122",
                ),
                (
                    IpamKey::Affinity {
                        node: "n1".into(),
                        cidr: c,
                    },
                    "/calico/ipam/v2/host/n1/ipv4/block/10.0.0.0-26",
                ),
                (
                    IpamKey::Handle("k8s-pod-network.abc".into()),
                    "/calico/ipam/v2/handle/k8s-pod-network.abc",
                ),
                (IpamKey::Config, "/calico/ipam/v2/config"),
            ];
            for (k, text) in cases {
                assert_eq!(key_text("/calico", &k), text);
                assert_eq!(parse_key("/calico", text), Some(k));
            }
            assert_eq!(parse_key("/calico", "/calico/ipam/v2/bogus/x"), None);
        }
    }
}
