//! Felix's own view of the cluster: what this node must know to compute the
//! kernel state. tortie-node converts the datastore model into these types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Encapsulation mode of a pool for IPIP or VXLAN, as Calico's `ipipMode` / `vxlanMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EncapMode {
    /// Never encapsulate.
    #[default]
    Never,
    /// Always encapsulate towards other nodes.
    Always,
    /// Encapsulate only towards nodes outside this node's subnet.
    CrossSubnet,
}

/// An IP pool as felix needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    /// The pool's CIDR.
    pub cidr: IpNet,
    /// IPIP mode.
    #[serde(default)]
    pub ipip_mode: EncapMode,
    /// VXLAN mode.
    #[serde(default)]
    pub vxlan_mode: EncapMode,
    /// Masquerade traffic from this pool leaving all pools.
    #[serde(default)]
    pub nat_outgoing: bool,
}

/// A pod interface on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalWorkload {
    /// Host-side veth name (`cali…`).
    pub interface: String,
    /// The pod's addresses (each becomes a /32 or /128 route).
    pub addresses: Vec<IpAddr>,
}

/// Where a path to a remote block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PathSource {
    /// Learned over BGP (route gets the BGP protocol number).
    #[default]
    Bgp,
    /// Computed from the datastore (route gets felix's protocol number).
    Datastore,
}

/// A block owned by another node, with the node(s) behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteBlock {
    /// The block CIDR (or a borrowed /32).
    pub cidr: IpNet,
    /// Next hops: node IPs. Several equal ones make an ECMP route.
    pub next_hops: Vec<IpAddr>,
    /// BGP or datastore.
    #[serde(default)]
    pub source: PathSource,
}

/// Another node's VXLAN tunnel endpoint (from the datastore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteVtep {
    /// Node name.
    pub node: String,
    /// Underlay (node) IP.
    pub node_ip: IpAddr,
    /// The node's VXLAN tunnel address.
    pub vtep_ip: IpAddr,
    /// The node's VTEP MAC, `aa:bb:cc:dd:ee:ff`.
    pub vtep_mac: String,
}

/// FelixConfiguration-like knobs (all optional; defaults are Calico's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FelixKnobs {
    /// Override the IPIP MTU (`ipipMTU`).
    #[serde(default)]
    pub ipip_mtu: Option<u32>,
    /// Override the VXLAN MTU (`vxlanMTU`).
    #[serde(default)]
    pub vxlan_mtu: Option<u32>,
    /// VXLAN VNI (`vxlanVNI`, default 4096).
    #[serde(default)]
    pub vxlan_vni: Option<u32>,
    /// VXLAN UDP port (`vxlanPort`, default 4789).
    #[serde(default)]
    pub vxlan_port: Option<u16>,
}

/// An up host interface, for MTU auto-detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInterface {
    /// Interface name.
    pub name: String,
    /// Its MTU.
    pub mtu: u32,
}

/// Everything felix needs to compute the desired kernel state of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FelixInput {
    /// This node's name.
    pub node_name: String,
    /// This node's IP with its prefix length (e.g. `10.0.1.5/24`): its
    /// subnet is the "same subnet" of `CrossSubnet` pools.
    pub node_ip: Option<IpNet>,
    /// Subnets of this node's interfaces (workload veths excluded): next
    /// hops there are on link, so a plain route via them is installable
    /// (see [`crate::nexthop`]); the shell fills this in.
    #[serde(default)]
    pub connected: Vec<IpNet>,
    /// This node's IPIP tunnel address (tunl0).
    #[serde(default)]
    pub ipip_tunnel_addr: Option<IpAddr>,
    /// This node's VXLAN tunnel address (vxlan.calico).
    #[serde(default)]
    pub vxlan_tunnel_addr: Option<IpAddr>,
    /// This node's VTEP MAC; derived from the node name when absent.
    #[serde(default)]
    pub vxlan_tunnel_mac: Option<String>,
    /// All IP pools.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// Pods on this node.
    #[serde(default)]
    pub workloads: Vec<LocalWorkload>,
    /// Blocks affine to this node (each gets a blackhole route).
    #[serde(default)]
    pub local_blocks: Vec<IpNet>,
    /// Blocks of other nodes.
    #[serde(default)]
    pub remote_blocks: Vec<RemoteBlock>,
    /// Other nodes' VTEPs, by node IP.
    #[serde(default)]
    pub remote_vteps: Vec<RemoteVtep>,
    /// Configuration knobs.
    #[serde(default)]
    pub knobs: FelixKnobs,
    /// Up host interfaces (for MTU detection); the shell fills this in.
    #[serde(default)]
    pub host_interfaces: Vec<HostInterface>,
}

impl FelixInput {
    /// The pool containing `net`, if any (the longest match wins).
    pub fn pool_of(&self, net: &IpNet) -> Option<&Pool> {
        self.pools
            .iter()
            .filter(|p| p.cidr.contains(net))
            .max_by_key(|p| p.cidr.prefix_len())
    }

    /// Remote VTEPs indexed by node IP.
    pub fn vteps_by_node_ip(&self) -> BTreeMap<IpAddr, &RemoteVtep> {
        self.remote_vteps.iter().map(|v| (v.node_ip, v)).collect()
    }
}
