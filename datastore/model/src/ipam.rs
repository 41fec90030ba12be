//! IPAM objects stored in the datastore: allocation blocks, block
//! affinities, handles and the IPAM configuration.
//!
//! Field names follow Calico's libcalico-go backend model (the JSON it keeps
//! under `/calico/ipam/v2/...`), so a store written by one can be read by the
//! other. These are plain data with small pure helpers (ordinal ⇄ address);
//! the allocation algorithm lives in `tortie-ipam-core`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Prefix of a block's `affinity` field when the block belongs to a node.
pub const HOST_AFFINITY_PREFIX: &str = "host:";

/// Handle of the addresses of one pod: `k8s-pod-network.<containerID>`.
pub fn pod_handle(container_id: &str) -> String {
    format!("k8s-pod-network.{container_id}")
}

/// Handle of a node's IPIP tunnel address: `ipip-tunnel-addr-<node>`.
pub fn ipip_tunnel_handle(node: &str) -> String {
    format!("ipip-tunnel-addr-{node}")
}

/// Handle of a node's VXLAN tunnel address: `vxlan-tunnel-addr-<node>`.
pub fn vxlan_tunnel_handle(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// Who owns an allocation: a handle plus free-form secondary attributes
/// (`node`, `namespace`, `pod`, `type` ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AllocationAttribute {
    /// The handle that owns the addresses pointing at this attribute.
    #[serde(rename = "handle_id", default)]
    pub handle_id: Option<String>,
    /// Secondary attributes (Calico writes `node`, `namespace`, `pod`, `type`).
    #[serde(default)]
    pub secondary: BTreeMap<String, String>,
}

/// A block of a pool: 2^(host bits) addresses, usually affine to one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationBlock {
    /// The block's CIDR, e.g. `10.244.1.0/26`.
    pub cidr: IpNet,
    /// `host:<node>` when the block belongs to a node; `None` when released.
    #[serde(default)]
    pub affinity: Option<String>,
    /// Set when the block was created while strict affinity was on: no
    /// other node may borrow from it.
    #[serde(default)]
    pub strict_affinity: bool,
    /// One entry per address (ordinal): `Some(i)` indexes `attributes`,
    /// `None` is free.
    pub allocations: Vec<Option<usize>>,
    /// Free ordinals in reuse order: taken from the front, released ones go
    /// to the back, so the address freed longest ago is reused first.
    pub unallocated: Vec<usize>,
    /// Owners of the allocations.
    #[serde(default)]
    pub attributes: Vec<AllocationAttribute>,
    /// Bumped on every change of the block.
    #[serde(default)]
    pub sequence_number: u64,
    /// Marked while the block is being deleted.
    #[serde(default)]
    pub deleted: bool,
}

impl AllocationBlock {
    /// An empty block for `cidr` with every address free in ascending order.
    pub fn new(cidr: IpNet, affinity: Option<String>, strict_affinity: bool) -> Self {
        let size = block_size(&cidr);
        Self {
            cidr,
            affinity,
            strict_affinity,
            allocations: vec![None; size],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence_number: 0,
            deleted: false,
        }
    }

    /// Number of addresses in the block.
    pub fn size(&self) -> usize {
        self.allocations.len()
    }

    /// Number of addresses in use.
    pub fn in_use(&self) -> usize {
        self.allocations.iter().filter(|a| a.is_some()).count()
    }

    /// True when no address is allocated.
    pub fn is_empty(&self) -> bool {
        self.allocations.iter().all(Option::is_none)
    }

    /// The node this block is affine to (`affinity` without `host:`).
    pub fn host(&self) -> Option<&str> {
        self.affinity
            .as_deref()
            .and_then(|a| a.strip_prefix(HOST_AFFINITY_PREFIX))
    }

    /// The address at `ordinal`, if inside the block.
    pub fn ordinal_to_ip(&self, ordinal: usize) -> Option<IpAddr> {
        if ordinal >= self.size() {
            return None;
        }
        Some(match self.cidr.network() {
            IpAddr::V4(n) => IpAddr::V4((u32::from(n) + ordinal as u32).into()),
            IpAddr::V6(n) => IpAddr::V6((u128::from(n) + ordinal as u128).into()),
        })
    }

    /// The ordinal of `ip`, if the block contains it.
    pub fn ip_to_ordinal(&self, ip: IpAddr) -> Option<usize> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        let off = match (self.cidr.network(), ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => u128::from(u32::from(i) - u32::from(n)),
            (IpAddr::V6(n), IpAddr::V6(i)) => u128::from(i) - u128::from(n),
            _ => return None,
        };
        usize::try_from(off).ok()
    }

    /// The handle owning the address at `ordinal`, if allocated.
    pub fn handle_of(&self, ordinal: usize) -> Option<&str> {
        let idx = (*self.allocations.get(ordinal)?)?;
        self.attributes.get(idx)?.handle_id.as_deref()
    }
}

/// Number of addresses in a block CIDR (host bits capped at 2^20 so a
/// misconfigured huge block cannot exhaust memory).
pub fn block_size(cidr: &IpNet) -> usize {
    let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len()).min(20);
    1usize << host_bits
}

/// State of a node's claim on a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    /// Written before the block is created: a crash leaves this, never a
    /// half-claimed block without an affinity record.
    #[default]
    Pending,
    /// The block exists and is affine to the node.
    Confirmed,
    /// The node is giving the block up.
    PendingDeletion,
}

/// The affinity record `<prefix>/ipam/v2/host/<node>/ipv4/block/<cidr>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BlockAffinity {
    /// Claim state.
    pub state: AffinityState,
    /// Marked while the affinity is being deleted.
    #[serde(default)]
    pub deleted: bool,
}

/// A handle: how many addresses it owns in each block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IpamHandle {
    /// The handle's ID, e.g. `k8s-pod-network.<containerID>`.
    #[serde(rename = "handleID")]
    pub handle_id: String,
    /// Block CIDR (as text, `10.0.0.0/26`) → number of addresses there.
    #[serde(default)]
    pub block: BTreeMap<String, u64>,
    /// Marked while the handle is being deleted.
    #[serde(default)]
    pub deleted: bool,
}

impl IpamHandle {
    /// Total addresses the handle owns.
    pub fn total(&self) -> u64 {
        self.block.values().sum()
    }
}

/// Global IPAM settings (`<prefix>/ipam/v2/config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    /// No borrowing from other nodes' blocks.
    #[serde(default, alias = "strict_affinity")]
    pub strict_affinity: bool,
    /// Claim new blocks when a node's blocks are full.
    #[serde(default = "default_true", alias = "auto_allocate_blocks")]
    pub auto_allocate_blocks: bool,
    /// Most blocks one node may hold per IP version (0 = unlimited).
    #[serde(default)]
    pub max_blocks_per_host: u32,
}

fn default_true() -> bool {
    true
}

impl Default for IpamConfig {
    fn default() -> Self {
        Self {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_json_uses_calico_field_names() {
        let mut b = AllocationBlock::new("10.0.0.0/30".parse().unwrap(), None, false);
        b.affinity = Some("host:n1".into());
        b.allocations[0] = Some(0);
        b.unallocated.retain(|o| *o != 0);
        b.attributes.push(AllocationAttribute {
            handle_id: Some("h".into()),
            secondary: BTreeMap::new(),
        });
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["cidr"], "10.0.0.0/30");
        assert_eq!(v["affinity"], "host:n1");
        assert_eq!(v["strictAffinity"], false);
        assert_eq!(v["allocations"], serde_json::json!([0, null, null, null]));
        assert_eq!(v["unallocated"], serde_json::json!([1, 2, 3]));
        assert_eq!(v["attributes"][0]["handle_id"], "h");
        assert_eq!(v["sequenceNumber"], 0);
        let back: AllocationBlock = serde_json::from_value(v).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.host(), Some("n1"));
    }

    #[test]
    fn ordinals_map_to_addresses_both_ways_for_v4_and_v6() {
        let b4 = AllocationBlock::new("10.1.2.64/26".parse().unwrap(), None, false);
        assert_eq!(b4.size(), 64);
        let ip = b4.ordinal_to_ip(5).unwrap();
        assert_eq!(ip.to_string(), "10.1.2.69");
        assert_eq!(b4.ip_to_ordinal(ip), Some(5));
        assert_eq!(b4.ordinal_to_ip(64), None);
        assert_eq!(b4.ip_to_ordinal("10.1.2.128".parse().unwrap()), None);
        let b6 = AllocationBlock::new("fd00::40/122".parse().unwrap(), None, false);
        assert_eq!(b6.size(), 64);
        let ip6 = b6.ordinal_to_ip(63).unwrap();
        assert_eq!(ip6.to_string(), "fd00::7f");
        assert_eq!(b6.ip_to_ordinal(ip6), Some(63));
    }

    #[test]
    fn affinity_handle_and_config_use_calico_names() {
        let a = BlockAffinity {
            state: AffinityState::PendingDeletion,
            deleted: false,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"state":"pendingDeletion","deleted":false}"#
        );
        let h: IpamHandle =
            serde_json::from_str(r#"{"handleID":"x","block":{"10.0.0.0/26":2}}"#).unwrap();
        assert_eq!(h.total(), 2);
        let c: IpamConfig = serde_json::from_str(r#"{"strict_affinity":true}"#).unwrap();
        assert!(c.strict_affinity && c.auto_allocate_blocks);
        assert_eq!(c.max_blocks_per_host, 0);
    }
}
