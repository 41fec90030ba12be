//! Names and numbers felix uses in the kernel, with Calico's defaults.

use serde::{Deserialize, Serialize};

/// `rtm_protocol` of routes learned over BGP (the number BIRD uses for `bird`).
pub const PROTO_BGP: u8 = 186;
/// `rtm_protocol` of routes felix computes (Calico's felix uses 80).
pub const PROTO_FELIX: u8 = 80;
/// The main routing table.
pub const TABLE_MAIN: u32 = 254;

/// Static configuration of the felix dataplane (device names, numbers, paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FelixConfig {
    /// Protocol number of BGP-learned routes.
    pub proto_bgp: u8,
    /// Protocol number of computed routes.
    pub proto_felix: u8,
    /// Routing table felix programs.
    pub table: u32,
    /// IPIP device name.
    pub ipip_device: String,
    /// VXLAN device name.
    pub vxlan_device: String,
    /// Prefix of host-side workload veths.
    pub workload_prefix: String,
    /// File the CNI plugin reads the pod MTU from.
    pub mtu_file: String,
    /// VXLAN VNI.
    pub vxlan_vni: u32,
    /// VXLAN UDP port.
    pub vxlan_port: u16,
    /// Regex-free interface name prefixes considered for MTU detection
    /// (Calico's `MTUIfacePattern` matches `eth*`, `en*`, `wl*`, `ww*`, `sl*`, `ib*`).
    pub mtu_iface_prefixes: Vec<String>,
    /// nftables table felix owns for NAT outgoing.
    pub nat_table: String,
}

impl Default for FelixConfig {
    fn default() -> Self {
        Self {
            proto_bgp: PROTO_BGP,
            proto_felix: PROTO_FELIX,
            table: TABLE_MAIN,
            ipip_device: "tunl0".into(),
            vxlan_device: "vxlan.calico".into(),
            workload_prefix: "cali".into(),
            mtu_file: "/var/lib/calico/mtu".into(),
            vxlan_vni: 4096,
            vxlan_port: 4789,
            mtu_iface_prefixes: ["eth", "en", "wl", "ww", "sl", "ib"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            nat_table: "tortie-nat".into(),
        }
    }
}
