//! Release: by address, by handle, and a node's empty blocks when the node
//! goes away; plus `ipam configure`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_model::ipam::{AllocationBlock, IpamConfig, IpamHandle};

use crate::allocate::{handle_write, Ipam};
use crate::block_ops::{self, Freed, Selection};
use crate::cas::Attempt;
use crate::error::IpamError;
use crate::store::{encode, IpamKey, IpamStore, StoreError, TypedStore, Write};

/// What happened to a node's blocks when its affinities were released.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeRelease {
    /// Empty blocks deleted together with their affinity.
    pub released: Vec<IpNet>,
    /// Blocks kept because they still hold addresses.
    pub kept: Vec<IpNet>,
}

impl<S: IpamStore> Ipam<S> {
    /// Releases `ips`; returns the ones that were not allocated.
    pub fn release_ips(&self, ips: &[IpAddr]) -> Result<Vec<IpAddr>, IpamError> {
        let freed = self.release_selected(ips, None)?;
        Ok(ips
            .iter()
            .filter(|ip| !freed.contains(ip))
            .copied()
            .collect())
    }

    /// Releases `ip` only while `handle` still owns it (so a stale report
    /// never frees an address reallocated since). True when released.
    pub fn release_ip_if_owned(&self, ip: IpAddr, handle: &str) -> Result<bool, IpamError> {
        Ok(!self.release_selected(&[ip], Some(handle))?.is_empty())
    }

    pub(crate) fn release_selected(
        &self,
        ips: &[IpAddr],
        handle: Option<&str>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let blocks: Vec<IpNet> = self
            .store
            .list_blocks()?
            .into_iter()
            .map(|b| b.value.cidr)
            .collect();
        let mut by_block: BTreeMap<IpNet, Vec<IpAddr>> = BTreeMap::new();
        for ip in ips {
            if let Some(c) = blocks.iter().find(|c| c.contains(ip)) {
                by_block.entry(*c).or_default().push(*ip);
            }
        }
        let mut freed = Vec::new();
        for (cidr, ips) in by_block {
            let sel = match handle {
                Some(h) => Selection::IpsOwnedBy(&ips, h),
                None => Selection::Ips(&ips),
            };
            freed.extend(self.release_in_block(cidr, sel)?.into_iter().map(|f| f.ip));
        }
        Ok(freed)
    }

    /// Releases every address of `handle` and deletes the handle. Returns
    /// the addresses freed (empty when the handle does not exist).
    pub fn release_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        let key = IpamKey::Handle(handle.to_string());
        let Some(h) = self.store.get_typed::<IpamHandle>(&key)? else {
            return Ok(Vec::new());
        };
        let mut freed = Vec::new();
        for cidr in h.value.block.keys().filter_map(|c| c.parse::<IpNet>().ok()) {
            freed.extend(
                self.release_in_block(cidr, Selection::Handle(handle))?
                    .into_iter()
                    .map(|f| f.ip),
            );
        }
        // Counts that named no real allocation (should not happen: block and
        // handle change in one commit) must not keep the handle alive.
        if let Some(left) = self.store.get_typed::<IpamHandle>(&key)? {
            match self.store.commit(&[Write::Delete(key, left.revision)]) {
                Ok(_) | Err(StoreError::NotFound(_) | StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(freed)
    }

    fn release_in_block(&self, cidr: IpNet, sel: Selection<'_>) -> Result<Vec<Freed>, IpamError> {
        let key = IpamKey::Block(cidr);
        self.cas_retry(&key, || {
            let Some(mut b) = self.store.get_typed::<AllocationBlock>(&key)? else {
                return Ok(Attempt::Done(Vec::new()));
            };
            let freed = block_ops::release(&mut b.value, sel);
            if freed.is_empty() {
                return Ok(Attempt::Done(freed));
            }
            let mut per_handle: BTreeMap<&str, i64> = BTreeMap::new();
            for f in &freed {
                if let Some(h) = &f.handle_id {
                    *per_handle.entry(h).or_default() -= 1;
                }
            }
            let mut writes = vec![if b.value.is_empty() && b.value.affinity.is_none() {
                Write::Delete(key.clone(), b.revision)
            } else {
                Write::Update(key.clone(), encode(&b.value), b.revision)
            }];
            for (h, delta) in per_handle {
                writes.extend(handle_write(&self.store, h, cidr, delta)?);
            }
            Ok(Attempt::Commit(writes, freed))
        })
    }

    /// Releases `node`'s empty blocks (block and affinity deleted together);
    /// blocks that still hold addresses stay affine to the node.
    pub fn release_node_affinities(&self, node: &str) -> Result<NodeRelease, IpamError> {
        let mut out = NodeRelease::default();
        for (_, cidr, aff) in self.store.list_affinities(Some(node))? {
            let akey = IpamKey::Affinity {
                node: node.to_string(),
                cidr,
            };
            let block = self
                .store
                .get_typed::<AllocationBlock>(&IpamKey::Block(cidr))?;
            let mut writes = vec![Write::Delete(akey, aff.revision)];
            match &block {
                Some(b) if b.value.host() == Some(node) && !b.value.is_empty() => {
                    out.kept.push(cidr);
                    continue;
                }
                Some(b) if b.value.host() == Some(node) => {
                    writes.push(Write::Delete(IpamKey::Block(cidr), b.revision));
                }
                _ => {} // stale affinity: the block is gone or another node's
            }
            match self.store.commit(&writes) {
                Ok(_) => out.released.push(cidr),
                // Changed meanwhile (an allocation landed): keep it.
                Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => out.kept.push(cidr),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Sets strict affinity (`tortiectl ipam configure --strictaffinity`).
    pub fn set_strict_affinity(&self, strict: bool) -> Result<IpamConfig, IpamError> {
        self.cas_retry(&IpamKey::Config, || {
            let current = self.store.get_typed::<IpamConfig>(&IpamKey::Config)?;
            let mut cfg = current
                .as_ref()
                .map(|c| c.value.clone())
                .unwrap_or_default();
            cfg.strict_affinity = strict;
            let write = match current {
                Some(c) => Write::Update(IpamKey::Config, encode(&cfg), c.revision),
                None => Write::Create(IpamKey::Config, encode(&cfg)),
            };
            Ok(Attempt::Commit(vec![write], cfg))
        })
    }

    /// Writes the whole IPAM configuration (create or replace).
    pub fn set_config(&self, cfg: &IpamConfig) -> Result<(), IpamError> {
        let current = self.store.get_typed::<IpamConfig>(&IpamKey::Config)?;
        let write = match current {
            Some(c) => Write::Update(IpamKey::Config, encode(cfg), c.revision),
            None => Write::Create(IpamKey::Config, encode(cfg)),
        };
        self.store.commit(&[write])?;
        Ok(())
    }
}
