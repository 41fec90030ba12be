//! A consistent view of what tortie-node reads from the datastore, and the
//! small pure questions asked of it (AS numbers, node IPs, affine blocks).

use std::net::IpAddr;

use ipnet::IpNet;
use tortie_model::{AsNumber, BgpConfigurationSpec, BgpPeer, IpPool, Node, WorkloadEndpoint};

/// The resources and IPAM affinities tortie-node acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every Node.
    pub nodes: Vec<Node>,
    /// The `default` BGPConfiguration's spec, when present.
    pub bgp_config: Option<BgpConfigurationSpec>,
    /// Every BGPPeer.
    pub bgp_peers: Vec<BgpPeer>,
    /// Every IPPool.
    pub pools: Vec<IpPool>,
    /// Every WorkloadEndpoint.
    pub workloads: Vec<WorkloadEndpoint>,
    /// Confirmed block affinities: (node, block).
    pub affinities: Vec<(String, IpNet)>,
}

impl Snapshot {
    /// The Node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.metadata.name == name)
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
