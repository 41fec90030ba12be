//! The shell over `tortie-datastore`: [`IpamStore`] on a real store (SQLite
//! or etcd, through its blocking face), and the reads IPAM needs from the
//! resources: pools as a node sees them, existing nodes, addresses in use.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use tortie_datastore::store::TxnOp;
use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_model::ippool::AssignmentMode;
use tortie_model::{Kind, Resource, Selector};

use crate::pools::{AllowedUse, Assignment, NodeMatch, PoolView};
use crate::store::keys::{key_text, parse_key};
use crate::store::{Entry, IpamKey, IpamStore, ListScope, Revision, StoreError, Write};

/// [`IpamStore`] over a `tortie-datastore` store, keyed as Calico's etcd
/// layout (`/ipam/v2/...`); a commit is one store transaction.
#[derive(Debug)]
pub struct DatastoreIpamStore {
    store: BlockingStore,
}

fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn key_of(text: &str) -> Option<IpamKey> {
    parse_key("", text)
}

fn rev(r: tortie_datastore::Revision) -> Revision {
    Revision::try_from(r).unwrap_or(0)
}

fn store_rev(r: Revision) -> tortie_datastore::Revision {
    tortie_datastore::Revision::try_from(r).unwrap_or(i64::MAX)
}

fn map_err(e: tortie_datastore::StoreError) -> StoreError {
    use tortie_datastore::StoreError as E;
    let k = |key: &str| key_of(key);
    match e {
        E::NotFound { key } if k(&key).is_some() => {
            StoreError::NotFound(k(&key).unwrap_or(IpamKey::Config))
        }
        E::AlreadyExists { key } if k(&key).is_some() => {
            StoreError::AlreadyExists(k(&key).unwrap_or(IpamKey::Config))
        }
        E::Conflict { key, .. } if k(&key).is_some() => {
            StoreError::Conflict(k(&key).unwrap_or(IpamKey::Config))
        }
        e => backend(e),
    }
}

impl DatastoreIpamStore {
    /// Opens `url` (`sqlite:///path` or `etcd://host:port`).
    pub fn open(url: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        Ok(Self::new(
            BlockingStore::open(url, options).map_err(backend)?,
        ))
    }

    /// Wraps an open store.
    pub fn new(store: BlockingStore) -> Self {
        Self { store }
    }

    /// The underlying store (for resource reads and writes).
    pub fn blocking(&self) -> &BlockingStore {
        &self.store
    }

    fn resources(&self, kind: Kind) -> Result<Vec<Resource>, StoreError> {
        let s = self.store.store().as_ref();
        self.store
            .block_on(typed::list(s, kind, None))
            .map_err(backend)
    }

    /// Every IPPool as `node` sees it (its nodeSelector evaluated against
    /// the node's labels; a node without a Node resource has no labels).
    pub fn pool_views(&self, node: &str) -> Result<Vec<PoolView>, StoreError> {
        let s = self.store.store().as_ref();
        let labels = match self.store.block_on(typed::get(s, Kind::Node, None, node)) {
            Ok(r) => r.metadata().labels.clone(),
            Err(typed::TypedError::NotFound { .. }) => Default::default(),
            Err(e) => return Err(backend(e)),
        };
        let mut out = Vec::new();
        for r in self.resources(Kind::IpPool)? {
            let Resource::IpPool(p) = r else { continue };
            let spec = &p.spec;
            let selected = match spec.node_selector.as_deref() {
                None | Some("") => true,
                Some(text) => Selector::parse(text)
                    .map(|s| s.matches(&labels))
                    .unwrap_or(false),
            };
            let uses: Vec<AllowedUse> = if spec.allowed_uses.is_empty() {
                vec![AllowedUse::Workload, AllowedUse::Tunnel]
            } else {
                spec.allowed_uses
                    .iter()
                    .filter_map(|u| match u {
                        tortie_model::AllowedUse::Workload => Some(AllowedUse::Workload),
                        tortie_model::AllowedUse::Tunnel => Some(AllowedUse::Tunnel),
                        tortie_model::AllowedUse::LoadBalancer => None,
                    })
                    .collect()
            };
            out.push(PoolView {
                cidr: spec.cidr,
                block_size: spec.block_size(),
                disabled: spec.disabled,
                node_match: if selected {
                    NodeMatch::Selected
                } else {
                    NodeMatch::NotSelected
                },
                allowed_uses: uses,
                assignment: match spec.assignment_mode {
                    Some(AssignmentMode::Manual) => Assignment::Manual,
                    _ => Assignment::Automatic,
                },
            });
        }
        Ok(out)
    }

    /// Names of the Node resources.
    pub fn node_names(&self) -> Result<BTreeSet<String>, StoreError> {
        Ok(self
            .resources(Kind::Node)?
            .iter()
            .map(|r| r.name().to_string())
            .collect())
    }

    /// Addresses in use as Calico's `ipam check` defines them: listed in a
    /// WorkloadEndpoint's `ipNetworks`, or a Node's IPIP/VXLAN tunnel address.
    pub fn addresses_in_use(&self) -> Result<BTreeMap<IpAddr, String>, StoreError> {
        let mut out = BTreeMap::new();
        for r in self.resources(Kind::WorkloadEndpoint)? {
            let Resource::WorkloadEndpoint(w) = r else {
                continue;
            };
            let who = format!(
                "workloadendpoint {}/{}",
                w.metadata.namespace.as_deref().unwrap_or("default"),
                w.metadata.name
            );
            for n in &w.spec.ip_networks {
                out.insert(n.addr(), who.clone());
            }
        }
        for r in self.resources(Kind::Node)? {
            let Resource::Node(n) = r else { continue };
            let name = &n.metadata.name;
            let ipip = n
                .spec
                .bgp
                .as_ref()
                .and_then(|b| b.ipv4_ipip_tunnel_addr)
                .map(IpAddr::V4);
            let vx4 = n.spec.ipv4_vxlan_tunnel_addr.map(IpAddr::V4);
            let vx6 = n.spec.ipv6_vxlan_tunnel_addr.map(IpAddr::V6);
            for (ip, what) in [(ipip, "ipip"), (vx4, "vxlan"), (vx6, "vxlan-v6")] {
                if let Some(ip) = ip {
                    out.insert(ip, format!("node {name} {what} tunnel address"));
                }
            }
        }
        Ok(out)
    }
}

impl IpamStore for DatastoreIpamStore {
    fn get(&self, key: &IpamKey) -> Result<Option<Entry>, StoreError> {
        let kv = self.store.get(&key_text("", key)).map_err(map_err)?;
        Ok(kv.map(|kv| Entry {
            value: String::from_utf8_lossy(&kv.value).into_owned(),
            revision: rev(kv.revision),
        }))
    }

    fn list(&self, scope: &ListScope) -> Result<Vec<(IpamKey, Entry)>, StoreError> {
        let prefix = match scope {
            ListScope::Blocks => "/ipam/v2/assignment/".to_string(),
            ListScope::Affinities(Some(node)) => format!("/ipam/v2/host/{node}/"),
            ListScope::Affinities(None) => "/ipam/v2/host/".to_string(),
            ListScope::Handles => "/ipam/v2/handle/".to_string(),
        };
        let items = self.store.list(&prefix).map_err(map_err)?.items;
        Ok(items
            .into_iter()
            .filter_map(|kv| {
                let key = key_of(&kv.key)?;
                let value = String::from_utf8_lossy(&kv.value).into_owned();
                Some((
                    key,
                    Entry {
                        value,
                        revision: rev(kv.revision),
                    },
                ))
            })
            .collect())
    }

    fn commit(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        let ops = writes
            .iter()
            .map(|w| match w {
                Write::Create(k, v) => TxnOp::Create {
                    key: key_text("", k),
                    value: v.clone().into_bytes(),
                },
                Write::Update(k, v, r) => TxnOp::Update {
                    key: key_text("", k),
                    value: v.clone().into_bytes(),
                    expected: store_rev(*r),
                },
                Write::Delete(k, r) => TxnOp::Delete {
                    key: key_text("", k),
                    expected: Some(store_rev(*r)),
                },
            })
            .collect();
        self.store.txn(ops).map(rev).map_err(map_err)
    }
}
