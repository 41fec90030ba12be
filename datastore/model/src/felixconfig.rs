//! `FelixConfiguration`: dataplane settings (`default` cluster-wide,
//! `node.<name>` per node). The fields tortie's felix reads or that common
//! manifests set are modelled; a Calico field tortie does not implement is
//! refused by name (see `support`), a name Calico does not define as unknown.

mod fields;
mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::common::LogSeverity;
use crate::duration::GoDuration;
use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::validate;

/// A `FelixConfiguration` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FelixConfiguration {
    /// Name (`default` or `node.<nodename>`) and bookkeeping.
    pub metadata: ObjectMeta,
    /// The settings.
    pub spec: FelixConfigurationSpec,
}
resource_serde!(
    FelixConfiguration,
    FelixConfigurationSpec,
    "FelixConfiguration"
);

/// Default VXLAN network identifier.
pub const DEFAULT_VXLAN_VNI: u32 = 4096;
/// Default VXLAN UDP port (RFC 7348 §5).
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Default period of the full kernel route resync.
pub const DEFAULT_ROUTE_REFRESH_INTERVAL: Duration = Duration::from_secs(90);
/// Default prefix of host-side workload interfaces.
pub const DEFAULT_INTERFACE_PREFIX: &str = "cali";
/// tortie's default `rtm_protocol` of the routes felix computes
/// (`deviceRouteProtocol`): 80, as Calico's felix uses for its routes.
/// Calico's own default for `deviceRouteProtocol` is 3 (`boot`), which is
/// also what `ip route add` writes: tortie refuses it, see
/// [`route_protocol_user`].
pub const DEFAULT_DEVICE_ROUTE_PROTOCOL: u8 = 80;
/// tortie's default `rtm_protocol` of the routes learned over BGP
/// (`bgpRouteProtocol`, a tortie field): 84 (ASCII `T`).
pub const DEFAULT_BGP_ROUTE_PROTOCOL: u8 = 84;
/// The longest route refresh period honoured; `routeRefreshInterval: 0`
/// (Calico: no periodic refresh) means this.
pub const ROUTE_REFRESH_OFF: Duration = Duration::from_secs(365 * 24 * 3600);

/// Who else puts routes with `rtm_protocol` `n` into the kernel, if anyone
/// commonly does: the kernel and iproute2 (0–4: `unspec`, `redirect`,
/// `kernel`, `boot`, `static`), the daemons iproute2's `rt_protos` names
/// (8–18, 42, 99), FRR's zebra (11, and 186 upward: bgp, isis, ospf, rip,
/// eigrp, …) and BIRD (12). tortie refuses these for its own routes: a
/// route is tortie's by its protocol number (inside tortie's prefixes).
pub fn route_protocol_user(n: u8) -> Option<&'static str> {
    Some(match n {
        0 => "no protocol (unspec)",
        1 => "ICMP redirects",
        2 => "the kernel (connected routes)",
        3 => "`ip route add` without a protocol (boot)",
        4 => "static routes",
        8 => "gated",
        9 => "router advertisements (ra)",
        10 => "mrt",
        11 => "FRR's zebra",
        12 => "BIRD",
        13 => "dnrouted",
        14 => "XORP",
        15 => "ntk",
        16 => "DHCP clients",
        17 => "mrouted",
        18 => "keepalived",
        42 => "babeld",
        99 => "Open/R",
        186.. => "FRR's zebra (bgp 186, isis 187, ospf 188, rip 189, eigrp 192, …)",
        _ => return None,
    })
}

/// A range of kernel routing table indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTableRange {
    /// First table index.
    pub min: u32,
    /// Last table index.
    pub max: u32,
}

/// Where felix learns workload routes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteSource {
    /// From IPAM blocks.
    #[serde(rename = "CalicoIPAM")]
    CalicoIpam,
    /// From workload endpoint addresses.
    #[serde(rename = "WorkloadIPs")]
    WorkloadIps,
}

/// A protocol/port pair (failsafe ports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtoPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: u16,
    /// Restricts the entry to this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
}

/// `FelixConfiguration.spec` (Calico field names; every field optional).
///
/// The fields tortie's felix reads are typed; every other field Calico
/// defines is kept verbatim in `other`. [`FelixConfiguration::validate`]
/// refuses the fields tortie does not implement and names Calico does not
/// define.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FelixConfigurationSpec {
    /// Log level on stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<LogSeverity>,
    /// Log level of the log file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_file: Option<LogSeverity>,
    /// Log level sent to syslog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_sys: Option<LogSeverity>,
    /// Log file path (`none` to disable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file_path: Option<String>,
    /// Whether IPIP is used (default: auto from the pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_enabled: Option<bool>,
    /// MTU of `tunl0` (0 or unset: auto).
    #[serde(rename = "ipipMTU", default, skip_serializing_if = "Option::is_none")]
    pub ipip_mtu: Option<u32>,
    /// Whether VXLAN is used (default: auto from the pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_enabled: Option<bool>,
    /// MTU of the IPv4 VXLAN device (0 or unset: auto).
    #[serde(rename = "vxlanMTU", default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mtu: Option<u32>,
    /// MTU of the IPv6 VXLAN device (0 or unset: auto).
    #[serde(
        rename = "vxlanMTUV6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_mtu_v6: Option<u32>,
    /// VXLAN UDP port (default 4789).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_port: Option<u16>,
    /// VXLAN network identifier (default 4096).
    #[serde(rename = "vxlanVNI", default, skip_serializing_if = "Option::is_none")]
    pub vxlan_vni: Option<u32>,
    /// WireGuard (accepted; tortie has no WireGuard dataplane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_enabled: Option<bool>,
    /// Interfaces whose MTU bounds the automatic MTU (regex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_iface_pattern: Option<String>,
    /// Period of the full kernel route resync (default 90s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_refresh_interval: Option<GoDuration>,
    /// Period of the iptables resync (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_refresh_interval: Option<GoDuration>,
    /// Period of status reports (0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<GoDuration>,
    /// Timeout of one netlink request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netlink_timeout: Option<GoDuration>,
    /// Routing tables felix may use (default 1..250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table_range: Option<RouteTableRange>,
    /// Several routing table ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_table_ranges: Vec<RouteTableRange>,
    /// Where workload routes come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_source: Option<RouteSource>,
    /// Stop programming routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_sync_disabled: Option<bool>,
    /// Source address of device routes (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_route_source_address: Option<IpAddr>,
    /// Source address of device routes (IPv6).
    #[serde(
        rename = "deviceRouteSourceAddressIPv6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_route_source_address_ipv6: Option<IpAddr>,
    /// rtm_protocol of the routes felix computes (workloads, blackholes,
    /// VXLAN routes); default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_route_protocol: Option<u8>,
    /// rtm_protocol of the routes learned over BGP; default 84. A tortie
    /// field (Calico's BIRD writes 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_route_protocol: Option<u8>,
    /// Remove routes to workload interfaces that felix did not add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_external_routes: Option<bool>,
    /// Prefixes of host-side workload interfaces, comma separated (default `cali`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_prefix: Option<String>,
    /// Interfaces felix ignores (comma separated, `/regex/` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_exclude: Option<String>,
    /// IPv6 support.
    #[serde(
        rename = "ipv6Support",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_support: Option<bool>,
    /// `Enabled` or `Disabled`: set the forwarding sysctls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_forwarding: Option<String>,
    /// Source address for NAT-outgoing traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing_address: Option<IpAddr>,
    /// Whether the health endpoint runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_enabled: Option<bool>,
    /// Health endpoint address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_host: Option<String>,
    /// Health endpoint port (default 9099).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_port: Option<u16>,
    /// Whether Prometheus metrics are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_enabled: Option<bool>,
    /// Prometheus metrics address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_host: Option<String>,
    /// Prometheus metrics port (default 9091).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_port: Option<u16>,
    /// Workload-to-host traffic: `Drop`, `Accept` or `Return`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint_to_host_action: Option<String>,
    /// eBPF dataplane (accepted; tortie has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_enabled: Option<bool>,
    /// `Insert` or `Append` iptables chains (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_insert_mode: Option<String>,
    /// `Legacy`, `NFT` or `Auto` (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_backend: Option<String>,
    /// Feature detection overrides (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_detect_override: Option<String>,
    /// CIDRs of non-cluster nodes allowed to send IPIP/VXLAN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_nodes_list: Vec<String>,
    /// Host ports always open inbound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failsafe_inbound_host_ports: Vec<ProtoPort>,
    /// Host ports always open outbound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failsafe_outbound_host_ports: Vec<ProtoPort>,
    /// `Drop`, `Reject` or `Disabled` (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_loop_prevention: Option<String>,
    /// Calico fields tortie does not interpret, kept as written.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl FelixConfigurationSpec {
    /// Effective VXLAN VNI (default 4096).
    pub fn vxlan_vni(&self) -> u32 {
        self.vxlan_vni.unwrap_or(DEFAULT_VXLAN_VNI)
    }

    /// Effective VXLAN port (default 4789).
    pub fn vxlan_port(&self) -> u16 {
        self.vxlan_port.unwrap_or(DEFAULT_VXLAN_PORT)
    }

    /// Effective route resync period (default 90s; 0 turns the periodic
    /// refresh off: [`ROUTE_REFRESH_OFF`]).
    pub fn route_refresh_interval(&self) -> Duration {
        match self.route_refresh_interval.map(GoDuration::as_duration) {
            None => DEFAULT_ROUTE_REFRESH_INTERVAL,
            Some(Duration::ZERO) => ROUTE_REFRESH_OFF,
            Some(d) => d.min(ROUTE_REFRESH_OFF),
        }
    }

    /// Effective protocol of computed routes (default 80).
    pub fn device_route_protocol(&self) -> u8 {
        self.device_route_protocol
            .unwrap_or(DEFAULT_DEVICE_ROUTE_PROTOCOL)
    }

    /// Effective protocol of BGP-learned routes (default 84).
    pub fn bgp_route_protocol(&self) -> u8 {
        self.bgp_route_protocol
            .unwrap_or(DEFAULT_BGP_ROUTE_PROTOCOL)
    }

    /// Effective workload interface prefix (default `cali`).
    pub fn interface_prefix(&self) -> &str {
        self.interface_prefix
            .as_deref()
            .unwrap_or(DEFAULT_INTERFACE_PREFIX)
    }

    /// Effective routing table range (default 1..=250).
    pub fn route_table_range(&self) -> RouteTableRange {
        self.route_table_range
            .unwrap_or(RouteTableRange { min: 1, max: 250 })
    }

    /// Configured IPIP MTU; `None` means detect it.
    pub fn ipip_mtu(&self) -> Option<u32> {
        self.ipip_mtu.filter(|&m| m != 0)
    }

    /// Configured VXLAN MTU; `None` means detect it.
    pub fn vxlan_mtu(&self) -> Option<u32> {
        self.vxlan_mtu.filter(|&m| m != 0)
    }

    /// Effective health port (default 9099).
    pub fn health_port(&self) -> u16 {
        self.health_port.unwrap_or(9099)
    }

    /// Effective Prometheus port (default 9091).
    pub fn prometheus_metrics_port(&self) -> u16 {
        self.prometheus_metrics_port.unwrap_or(9091)
    }
}

impl FelixConfiguration {
    /// Felix applies its defaults at run time (as Calico's felix does), so
    /// nothing is written into the stored object; read the accessors.
    pub fn apply_defaults(&mut self) {}

    /// Checks the configuration the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("FelixConfiguration({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        let s = &self.spec;
        if let Some(vni) = s.vxlan_vni {
            if !(1..=0xff_ffff).contains(&vni) {
                let reason = Reason::OutOfRange {
                    min: 1,
                    max: 0xff_ffff,
                    context: " (24-bit VNI, RFC 7348)",
                };
                c.reject_display("spec.vxlanVNI", vni, reason);
            }
        }
        if s.vxlan_port == Some(0) {
            let reason = Reason::OutOfRange {
                min: 1,
                max: 65535,
                context: "",
            };
            c.reject_display("spec.vxlanPort", 0, reason);
        }
        check_mtus(&mut c, s);
        check_route_protocols(&mut c, s);
        check_route_tables(&mut c, s);
        check_choices(&mut c, s);
        support::check(&mut c, s);
        c.finish()
    }
}

fn check_mtus(c: &mut Checker, s: &FelixConfigurationSpec) {
    let mtus = [
        ("spec.ipipMTU", s.ipip_mtu),
        ("spec.vxlanMTU", s.vxlan_mtu),
        ("spec.vxlanMTUV6", s.vxlan_mtu_v6),
    ];
    for (field, mtu) in mtus {
        if let Some(m) = mtu.filter(|&m| m != 0 && !(68..=65535).contains(&m)) {
            let reason = Reason::OutOfRange {
                min: 68,
                max: 65535,
                context: " (or 0 to detect)",
            };
            c.reject_display(field, m, reason);
        }
    }
}

fn check_route_protocols(c: &mut Checker, s: &FelixConfigurationSpec) {
    let fields = [
        ("spec.deviceRouteProtocol", s.device_route_protocol),
        ("spec.bgpRouteProtocol", s.bgp_route_protocol),
    ];
    for (field, n) in fields {
        if let Some((n, by)) = n.and_then(|n| Some((n, route_protocol_user(n)?))) {
            c.reject_display(field, n, Reason::RouteProtocolInUse { by });
        }
    }
    if s.device_route_protocol() == s.bgp_route_protocol() {
        let reason = Reason::NotAllowed(
            "must differ from deviceRouteProtocol (computed and BGP-learned routes are told apart by it)",
        );
        c.reject_display("spec.bgpRouteProtocol", s.bgp_route_protocol(), reason);
    }
}

fn check_route_tables(c: &mut Checker, s: &FelixConfigurationSpec) {
    let ranges = s
        .route_table_range
        .iter()
        .map(|r| ("spec.routeTableRange".to_owned(), r));
    let many = s
        .route_table_ranges
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("spec.routeTableRanges[{i}]"), r));
    for (field, r) in ranges.chain(many) {
        if r.min == 0 || r.min > r.max {
            let reason = Reason::NotAllowed("needs 1 <= min <= max");
            c.reject(&field, r, reason);
        }
    }
}

fn check_choices(c: &mut Checker, s: &FelixConfigurationSpec) {
    let choices: [(&str, &Option<String>, &[&str], &'static str); 1] = [(
        "spec.ipForwarding",
        &s.ip_forwarding,
        &["Enabled", "Disabled"],
        "Enabled, Disabled",
    )];
    for (field, value, allowed, list) in choices {
        if let Some(v) = value {
            if !allowed.contains(&v.as_str()) {
                c.reject(field, v, Reason::NotOneOf { allowed: list });
            }
        }
    }
}

#[cfg(test)]
mod tests;
