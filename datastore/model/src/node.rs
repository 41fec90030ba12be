//! `Node`: one tortie node, its BGP identity and tunnel addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::asn::AsNumber;
use crate::error::{Checker, FieldError, Reason};
use crate::meta::{check_envelope, ObjectMeta, API_VERSION};
use crate::net::opt_cidr_or_ip;
use crate::validate;

/// A `Node` resource (cluster-scoped). Unlike the other kinds it has a
/// `status`, which the node itself writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Name (the node name), labels matched by selectors, bookkeeping.
    pub metadata: ObjectMeta,
    /// The node's configuration.
    pub spec: NodeSpec,
    /// Observed state.
    pub status: NodeStatus,
}

/// `Node.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// BGP identity; absent on nodes that run no BGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// IPv4 address of the node's VXLAN device.
    #[serde(
        rename = "ipv4VXLANTunnelAddr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<Ipv4Addr>,
    /// MAC address of the node's IPv4 VXLAN device.
    #[serde(
        rename = "vxlanTunnelMACAddr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
    /// IPv6 address of the node's VXLAN device.
    #[serde(
        rename = "ipv6VXLANTunnelAddr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<Ipv6Addr>,
    /// MAC address of the node's IPv6 VXLAN device.
    #[serde(
        rename = "vxlanTunnelMACAddrV6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr_v6: Option<String>,
    /// The node's names in orchestrators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
    /// Addresses the node is reachable at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// WireGuard addresses (accepted for compatibility; tortie has no WireGuard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<NodeWireguardSpec>,
}

/// `Node.spec.bgp`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBgpSpec {
    /// The node's AS (default: `BGPConfiguration default` asNumber).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// IPv4 address with the prefix length of its subnet (`10.0.1.5/24`).
    #[serde(
        rename = "ipv4Address",
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_cidr_or_ip"
    )]
    pub ipv4_address: Option<IpNet>,
    /// IPv6 address with the prefix length of its subnet.
    #[serde(
        rename = "ipv6Address",
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_cidr_or_ip"
    )]
    pub ipv6_address: Option<IpNet>,
    /// Address of the node's IPIP device `tunl0`.
    #[serde(
        rename = "ipv4IPIPTunnelAddr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_ipip_tunnel_addr: Option<Ipv4Addr>,
    /// Makes the node a route reflector of this cluster id (RFC 4456).
    #[serde(
        rename = "routeReflectorClusterID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
}

/// A node's name in one orchestrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrchRef {
    /// The node's name there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The orchestrator (`k8s`).
    pub orchestrator: String,
}

/// One address of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    /// The address, optionally with a prefix length.
    pub address: String,
    /// `CalicoNodeIP`, `InternalIP` or `ExternalIP`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// WireGuard interface addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeWireguardSpec {
    /// IPv4 interface address.
    #[serde(
        rename = "interfaceIPv4Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_ipv4_address: Option<Ipv4Addr>,
    /// IPv6 interface address.
    #[serde(
        rename = "interfaceIPv6Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_ipv6_address: Option<Ipv6Addr>,
}

/// `Node.status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatus {
    /// Pod CIDRs Kubernetes assigned to the node.
    #[serde(rename = "podCIDRs", default, skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
    /// IPv4 WireGuard public key (accepted, unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_public_key: Option<String>,
    /// IPv6 WireGuard public key (accepted, unused).
    #[serde(
        rename = "wireguardPublicKeyV6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_public_key_v6: Option<String>,
}

impl NodeStatus {
    fn is_empty(&self) -> bool {
        *self == NodeStatus::default()
    }
}

impl Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Node", 5)?;
        s.serialize_field("apiVersion", API_VERSION)?;
        s.serialize_field("kind", "Node")?;
        s.serialize_field("metadata", &self.metadata)?;
        s.serialize_field("spec", &self.spec)?;
        if !self.status.is_empty() {
            s.serialize_field("status", &self.status)?;
        }
        s.end()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Envelope {
            #[serde(rename = "apiVersion", default)]
            api_version: Option<String>,
            #[serde(default)]
            kind: Option<String>,
            #[serde(default)]
            metadata: ObjectMeta,
            #[serde(default)]
            spec: NodeSpec,
            #[serde(default)]
            status: NodeStatus,
        }
        let env = Envelope::deserialize(deserializer)?;
        check_envelope::<D::Error>(env.api_version.as_deref(), env.kind.as_deref(), "Node")?;
        Ok(Node {
            metadata: env.metadata,
            spec: env.spec,
            status: env.status,
        })
    }
}

impl Node {
    /// A node named `name` with an empty spec.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            metadata: ObjectMeta::named(name),
            spec: NodeSpec::default(),
            status: NodeStatus::default(),
        }
    }

    /// Nothing to default: a node's unset AS number means "the cluster's".
    pub fn apply_defaults(&mut self) {}

    /// True if the node is a route reflector.
    pub fn is_route_reflector(&self) -> bool {
        self.spec
            .bgp
            .as_ref()
            .is_some_and(|b| b.route_reflector_cluster_id.is_some())
    }

    /// Checks the node the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("Node({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        if let Some(bgp) = &self.spec.bgp {
            check_bgp(&mut c, bgp);
        }
        let macs = [
            ("spec.vxlanTunnelMACAddr", &self.spec.vxlan_tunnel_mac_addr),
            (
                "spec.vxlanTunnelMACAddrV6",
                &self.spec.vxlan_tunnel_mac_addr_v6,
            ),
        ];
        for (field, mac) in macs {
            if let Some(m) = mac {
                if !validate::is_mac(m) {
                    c.reject(field, m, Reason::NotMac);
                }
            }
        }
        c.finish()
    }
}

fn check_bgp(c: &mut Checker, bgp: &NodeBgpSpec) {
    if *bgp == NodeBgpSpec::default() {
        let reason = Reason::NotAllowed(
            "must not be empty: set ipv4Address or ipv6Address, or remove spec.bgp",
        );
        c.reject_display("spec.bgp", "{}", reason);
    }
    if let Some(a) = bgp.ipv4_address {
        if !matches!(a, IpNet::V4(_)) {
            let reason = Reason::WrongAddress {
                expected: "an IPv4 address with prefix length, e.g. 10.0.1.5/24",
            };
            c.reject_display("spec.bgp.ipv4Address", a, reason);
        }
    }
    if let Some(a) = bgp.ipv6_address {
        if !matches!(a, IpNet::V6(_)) {
            let reason = Reason::WrongAddress {
                expected: "an IPv6 address with prefix length, e.g. fd00::5/64",
            };
            c.reject_display("spec.bgp.ipv6Address", a, reason);
        }
    }
    if let Some(AsNumber(0)) = bgp.as_number {
        let reason = Reason::OutOfRange {
            min: 1,
            max: u64::from(u32::MAX),
            context: "",
        };
        c.reject_display("spec.bgp.asNumber", 0, reason);
    }
}

#[cfg(test)]
mod tests;
