//! A consistent view of what tortie-node reads from the datastore, and the
//! small pure questions asked of it (AS numbers, node IPs, affine blocks).

use std::net::IpAddr;

use ipnet::IpNet;
use tortie_felix::policy::PolicyInput;
use tortie_model::ipam::AllocationBlock;
use tortie_model::{
    AsNumber, BgpConfigurationSpec, BgpFilterSpec, BgpPeer, FelixConfiguration, IpPool, Node,
    WorkloadEndpoint,
};

/// What network policy reads: felix's own [`PolicyInput`] (its
/// `node_name` is filled in by the policy task), empty and `enabled: false`
/// when the agent does not enforce policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyResources {
    /// The syncer follows the policy kinds (a policy-enforcing agent).
    pub enabled: bool,
    /// Every WorkloadEndpoint of the cluster (slimmed to what policy
    /// reads), every policy, network set and profile.
    pub input: PolicyInput,
}

/// The resources and IPAM affinities tortie-node acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every Node.
    pub nodes: Vec<Node>,
    /// The `default` BGPConfiguration's spec, when present.
    pub bgp_config: Option<BgpConfigurationSpec>,
    /// `node.<name>` BGPConfigurations by node name: they override
    /// `logSeverityScreen`, `listenPort` and `prefixAdvertisements` (Calico).
    pub bgp_node_configs: std::collections::BTreeMap<String, BgpConfigurationSpec>,
    /// Every BGPPeer.
    pub bgp_peers: Vec<BgpPeer>,
    /// Every BGPFilter's spec by name (what `BGPPeer.filters` lists).
    pub bgp_filters: std::collections::BTreeMap<String, BgpFilterSpec>,
    /// Every IPPool.
    pub pools: Vec<IpPool>,
    /// Every WorkloadEndpoint.
    pub workloads: Vec<WorkloadEndpoint>,
    /// Every FelixConfiguration (`default` and `node.<name>`).
    pub felix_configs: Vec<FelixConfiguration>,
    /// Confirmed block affinities: (node, block).
    pub affinities: Vec<(String, IpNet)>,
    /// Every IPAM block with its allocations (borrowed addresses, the
    /// allocations-in-use metric).
    pub blocks: Vec<AllocationBlock>,
    /// What network policy reads.
    pub policy: PolicyResources,
}

impl Snapshot {
    /// The Node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.metadata.name == name)
    }

    /// A BGPConfiguration setting for node `node`: its `node.<name>`
    /// configuration's, else the `default` one's.
    pub fn bgp_setting<T>(
        &self,
        node: &str,
        get: impl Fn(&BgpConfigurationSpec) -> Option<T>,
    ) -> Option<T> {
        self.bgp_node_configs
            .get(node)
            .and_then(&get)
            .or_else(|| self.bgp_config.as_ref().and_then(&get))
    }

    /// The cluster default AS (BGPConfiguration asNumber, else 64512).
    pub fn default_asn(&self) -> u32 {
        self.bgp_config
            .as_ref()
            .and_then(|c| c.as_number)
            .unwrap_or(AsNumber::DEFAULT)
            .0
    }

    /// Whether the node-to-node mesh is on (default true).
    pub fn mesh_enabled(&self) -> bool {
        self.bgp_config
            .as_ref()
            .and_then(|c| c.node_to_node_mesh_enabled)
            .unwrap_or(true)
    }

    /// A node's AS: its own, else the cluster default.
    pub fn node_asn(&self, node: &Node) -> u32 {
        node.spec
            .bgp
            .as_ref()
            .and_then(|b| b.as_number)
            .map_or_else(|| self.default_asn(), |a| a.0)
    }

    /// The blocks affine to `node`, sorted.
    pub fn blocks_of(&self, node: &str) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = self
            .affinities
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, b)| *b)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Addresses allocated to node `me` per pool (every pool listed, zero
    /// included), counted from the IPAM blocks: an allocation is this
    /// node's when its `node` attribute names it, or, without that
    /// attribute, when its block is affine to it. Borrowed addresses count
    /// for the node that holds them, not the block's owner.
    pub fn allocations_in_use(&self, me: &str) -> Vec<(IpNet, u64)> {
        let mut out: Vec<(IpNet, u64)> = self.pools.iter().map(|p| (p.spec.cidr, 0)).collect();
        for b in self.blocks.iter().filter(|b| !b.deleted) {
            let mine = b
                .allocations
                .iter()
                .flatten()
                .filter(|idx| {
                    match b
                        .attributes
                        .get(**idx)
                        .and_then(|a| a.secondary.get("node"))
                    {
                        Some(n) => n == me,
                        None => b.host() == Some(me),
                    }
                })
                .count() as u64;
            let pool = self.pool_of(&b.cidr).map(|p| p.spec.cidr);
            if let Some(slot) = out.iter_mut().find(|(c, _)| Some(*c) == pool) {
                slot.1 += mine;
            }
        }
        out
    }

    /// The pool containing `net` (longest match).
    pub fn pool_of(&self, net: &IpNet) -> Option<&IpPool> {
        self.pools
            .iter()
            .filter(|p| p.spec.cidr.contains(net))
            .max_by_key(|p| p.spec.cidr.prefix_len())
    }
}

/// A node's IPv4 address with prefix length, from `spec.bgp.ipv4Address`.
pub fn node_ipv4(node: &Node) -> Option<IpNet> {
    node.spec.bgp.as_ref().and_then(|b| b.ipv4_address)
}

/// A node's IPv4 address without prefix length.
pub fn node_addr(node: &Node) -> Option<IpAddr> {
    node_ipv4(node).map(|n| n.addr())
}

/// The node's route reflector cluster ID, when it is one.
pub fn rr_cluster(node: &Node) -> Option<std::net::Ipv4Addr> {
    node.spec
        .bgp
        .as_ref()
        .and_then(|b| b.route_reflector_cluster_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_model::ipam::AllocationAttribute;

    fn block(cidr: &str, host: &str, used: &[(usize, Option<&str>)]) -> AllocationBlock {
        let mut b =
            AllocationBlock::new(cidr.parse().unwrap(), Some(format!("host:{host}")), false);
        for (ordinal, node) in used {
            let mut a = AllocationAttribute::default();
            if let Some(n) = node {
                a.secondary.insert("node".into(), n.to_string());
            }
            b.attributes.push(a);
            b.allocations[*ordinal] = Some(b.attributes.len() - 1);
        }
        b
    }

    #[test]
    fn allocations_in_use_count_this_nodes_addresses_per_pool() {
        let s = Snapshot {
            pools: vec![
                IpPool::new("a", "10.244.0.0/16".parse().unwrap()),
                IpPool::new("b", "10.245.0.0/16".parse().unwrap()),
            ],
            blocks: vec![
                // Ours: two pods and a tunnel address without a node attribute.
                block(
                    "10.244.1.0/26",
                    "n1",
                    &[(0, Some("n1")), (1, Some("n1")), (2, None)],
                ),
                // n2's block: one of its own pods and one borrowed by us.
                block("10.244.2.0/26", "n2", &[(0, Some("n2")), (7, Some("n1"))]),
            ],
            ..Default::default()
        };
        let got: Vec<(String, u64)> = s
            .allocations_in_use("n1")
            .into_iter()
            .map(|(c, n)| (c.to_string(), n))
            .collect();
        assert_eq!(
            got,
            [
                ("10.244.0.0/16".to_string(), 4),
                ("10.245.0.0/16".to_string(), 0)
            ]
        );
        assert_eq!(s.allocations_in_use("n2")[0].1, 1);
    }
}
