//! Names and numbers felix uses in the kernel, with tortie's defaults.
//!
//! Route ownership (ARCHITECTURE.md, "Kernel ownership"): a kernel route is
//! felix's only when it carries one of felix's protocol numbers **and** lies
//! in a prefix tortie owns (see [`crate::Ownership`]). The numbers are chosen
//! so that no common routing daemon on Linux uses them: not one iproute2's
//! `rt_protos` names (0–4 kernel/boot/static, 8–18, 42 babel, 99 openr,
//! 186–192), not FRR's zebra (11, and 186 upward: bgp, isis, ospf, rip,
//! eigrp, …), not BIRD's 12.

use serde::{Deserialize, Serialize};

/// `rtm_protocol` of routes learned over BGP: 84 (ASCII `T`), a number no
/// routing daemon on Linux uses.
pub const PROTO_BGP: u8 = 84;
/// `rtm_protocol` of routes felix computes from the datastore (Calico's
/// felix uses 80 for its routes too).
pub const PROTO_FELIX: u8 = 80;
/// The number tortie 0.1 gave BGP routes. It is FRR's zebra `bgp` (iproute2
/// names it `bgp`), so it is never taken as ours: see docs/felix.md,
/// "Upgrading from protocol 186".
pub const OLD_PROTO_BGP: u8 = 186;
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

impl FelixConfig {
    /// The protocol numbers felix writes (computed, then BGP).
    pub fn protocols(&self) -> [u8; 2] {
        [self.proto_felix, self.proto_bgp]
    }
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
