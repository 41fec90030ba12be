//! Maintenance over the store: reading everything for `ipam show`, running
//! `ipam check`, and releasing what a check report found.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tortie_model::ipam::{AllocationBlock, BlockAffinity, IpamHandle};

use crate::allocate::Ipam;
use crate::check::{check, CheckInput, CheckReport};
use crate::error::IpamError;
use crate::store::{IpamStore, TypedStore};

/// What `release --from-report` did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportRelease {
    /// Leaked addresses released.
    pub released: Vec<IpAddr>,
    /// Leaked addresses left alone: released or reassigned since the report.
    pub skipped: Vec<IpAddr>,
    /// Empty blocks of deleted nodes released.
    pub blocks_released: Vec<IpNet>,
}

impl<S: IpamStore> Ipam<S> {
    /// Every block, sorted by CIDR.
    pub fn blocks(&self) -> Result<Vec<AllocationBlock>, IpamError> {
        let mut v: Vec<_> = self
            .store
            .list_blocks()?
            .into_iter()
            .map(|b| b.value)
            .collect();
        v.sort_by_key(|b| b.cidr);
        Ok(v)
    }

    /// Every handle, sorted by ID.
    pub fn handles(&self) -> Result<Vec<IpamHandle>, IpamError> {
        let mut v: Vec<_> = self
            .store
            .list_handles()?
            .into_iter()
            .map(|h| h.value)
            .collect();
        v.sort_by(|a, b| a.handle_id.cmp(&b.handle_id));
        Ok(v)
    }

    /// Every affinity (node, block, record), sorted.
    pub fn affinities(&self) -> Result<Vec<(String, IpNet, BlockAffinity)>, IpamError> {
        let mut v: Vec<_> = self
            .store
            .list_affinities(None)?
            .into_iter()
            .map(|(n, c, a)| (n, c, a.value))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(v)
    }

    /// Runs `ipam check` given the existing nodes and the addresses in use.
    pub fn check(
        &self,
        nodes: BTreeSet<String>,
        in_use: BTreeMap<IpAddr, String>,
    ) -> Result<CheckReport, IpamError> {
        let input = CheckInput {
            blocks: self.blocks()?,
            handles: self.handles()?,
            affinities: self.affinities()?,
            nodes,
            in_use,
        };
        Ok(check(&input))
    }

    /// Releases the leaks of `report` (each only while its handle still owns
    /// it) and the empty blocks of nodes that are still absent from `nodes`.
    pub fn release_from_report(
        &self,
        report: &CheckReport,
        nodes: &BTreeSet<String>,
    ) -> Result<ReportRelease, IpamError> {
        let mut out = ReportRelease::default();
        for leak in &report.leaked {
            let done = match &leak.handle {
                Some(h) => self.release_ip_if_owned(leak.ip, h)?,
                None => false,
            };
            if done {
                out.released.push(leak.ip);
            } else {
                out.skipped.push(leak.ip);
            }
        }
        let gone: BTreeSet<&str> = report
            .deleted_node_blocks
            .iter()
            .map(|d| d.node.as_str())
            .filter(|n| !nodes.contains(*n))
            .collect();
        for node in gone {
            out.blocks_released
                .extend(self.release_node_affinities(node)?.released);
        }
        Ok(out)
    }
}
