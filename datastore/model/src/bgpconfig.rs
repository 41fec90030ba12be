//! `BGPConfiguration`: cluster-wide (`default`) and per-node
//! (`node.<name>`) BGP settings.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::asn::AsNumber;
use crate::common::{BgpPassword, CidrBlock, LogSeverity};
use crate::duration::GoDuration;
use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::validate;

/// A `BGPConfiguration` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfiguration {
    /// Name (`default` or `node.<nodename>`) and bookkeeping.
    pub metadata: ObjectMeta,
    /// The settings.
    pub spec: BgpConfigurationSpec,
}
resource_serde!(BgpConfiguration, BgpConfigurationSpec, "BGPConfiguration");

/// Name of the cluster-wide BGPConfiguration.
pub const DEFAULT_BGP_CONFIGURATION: &str = "default";
/// The BGP port (RFC 4271 §8.2.1).
pub const DEFAULT_BGP_PORT: u16 = 179;

/// Which addresses the BGP listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum BindMode {
    /// All addresses.
    #[default]
    None,
    /// Only the node's own address (`Node.spec.bgp.ipv4Address`/`ipv6Address`).
    #[serde(rename = "NodeIP")]
    NodeIp,
}

/// A named BGP community value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    /// Name usable in `prefixAdvertisements`.
    pub name: String,
    /// `aa:nn` (standard, RFC 1997) or `aa:nn:mm` (large, RFC 8092).
    pub value: String,
}

/// Communities attached to routes within one CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisement {
    /// The routes this applies to.
    pub cidr: IpNet,
    /// Community names (from `spec.communities`) or literal values.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// `BGPConfiguration.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpConfigurationSpec {
    /// Log level of the BGP speaker (default `Info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<LogSeverity>,
    /// Full node-to-node iBGP mesh (default true; `default` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// Default AS number of nodes (default 64512; `default` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Service LoadBalancer ranges to advertise.
    #[serde(
        rename = "serviceLoadBalancerIPs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<CidrBlock>,
    /// Service external IP ranges to advertise.
    #[serde(
        rename = "serviceExternalIPs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<CidrBlock>,
    /// Service cluster IP ranges to advertise.
    #[serde(
        rename = "serviceClusterIPs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<CidrBlock>,
    /// Named community values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// Per-prefix communities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// TCP port the speaker listens on (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// TCP-MD5 password of mesh sessions (`default` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,
    /// Graceful-restart time of mesh sessions (default 120s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<GoDuration>,
    /// Listener bind mode (default `None`: all addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_mode: Option<BindMode>,
    /// Interfaces whose routes are ignored (refused by validation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
    /// IPv4 address local workloads peer with (refused by validation).
    #[serde(
        rename = "localWorkloadPeeringIPV4",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv4: Option<IpAddr>,
    /// IPv6 address local workloads peer with (refused by validation).
    #[serde(
        rename = "localWorkloadPeeringIPV6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv6: Option<IpAddr>,
}

impl BgpConfigurationSpec {
    /// Effective mesh setting (default true).
    pub fn node_to_node_mesh_enabled(&self) -> bool {
        self.node_to_node_mesh_enabled.unwrap_or(true)
    }

    /// Effective default AS number (default 64512).
    pub fn as_number(&self) -> AsNumber {
        self.as_number.unwrap_or(AsNumber::DEFAULT)
    }

    /// Effective listen port (default 179).
    pub fn listen_port(&self) -> u16 {
        self.listen_port.unwrap_or(DEFAULT_BGP_PORT)
    }

    /// Effective log level (default `Info`).
    pub fn log_severity_screen(&self) -> LogSeverity {
        self.log_severity_screen.unwrap_or(LogSeverity::Info)
    }

    /// Effective bind mode.
    pub fn bind_mode(&self) -> BindMode {
        self.bind_mode.unwrap_or_default()
    }

    /// The value of a community given by name or literally.
    pub fn community_value<'a>(&'a self, name_or_value: &'a str) -> Option<&'a str> {
        if validate::is_community_value(name_or_value) {
            return Some(name_or_value);
        }
        self.communities
            .iter()
            .find(|c| c.name == name_or_value)
            .map(|c| c.value.as_str())
    }
}

impl BgpConfiguration {
    /// True for the cluster-wide `default` configuration.
    pub fn is_default(&self) -> bool {
        self.metadata.name == DEFAULT_BGP_CONFIGURATION
    }

    /// Fills the defaults of the `default` configuration.
    /// A per-node configuration gets none: what it leaves out comes from
    /// `default`.
    pub fn apply_defaults(&mut self) {
        if self.metadata.name != DEFAULT_BGP_CONFIGURATION {
            return;
        }
        let s = &mut self.spec;
        s.log_severity_screen = Some(s.log_severity_screen());
        s.listen_port = Some(s.listen_port());
        s.bind_mode = Some(s.bind_mode());
        s.node_to_node_mesh_enabled = Some(s.node_to_node_mesh_enabled());
        s.as_number = Some(s.as_number());
    }

    /// Checks the configuration the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("BGPConfiguration({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        let s = &self.spec;
        if s.log_severity_screen == Some(LogSeverity::Trace) {
            let reason = Reason::NotOneOf {
                allowed: "Debug, Info, Warning, Error, Fatal",
            };
            c.reject("spec.logSeverityScreen", "Trace", reason);
        }
        if s.listen_port == Some(0) {
            let reason = Reason::OutOfRange {
                min: 1,
                max: 65535,
                context: "",
            };
            c.reject_display("spec.listenPort", 0, reason);
        }
        if let Some(AsNumber(0)) = s.as_number {
            let reason = Reason::OutOfRange {
                min: 1,
                max: u64::from(u32::MAX),
                context: "",
            };
            c.reject_display("spec.asNumber", 0, reason);
        }
        self.check_default_only(&mut c);
        check_unsupported(&mut c, s);
        if let Some(pw) = &s.node_mesh_password {
            pw.check(&mut c, "spec.nodeMeshPassword");
        }
        check_blocks(&mut c, s);
        check_communities(&mut c, s);
        c.finish()
    }

    /// Fields Calico allows on the `default` configuration only.
    fn check_default_only(&self, c: &mut Checker) {
        if self.is_default() {
            return;
        }
        let s = &self.spec;
        let msg = Reason::NotAllowed("may only be set in the BGPConfiguration named `default`");
        if let Some(v) = s.node_to_node_mesh_enabled {
            c.reject("spec.nodeToNodeMeshEnabled", v, msg.clone());
        }
        if let Some(v) = s.as_number {
            c.reject_display("spec.asNumber", v, msg.clone());
        }
        if s.node_mesh_password.is_some() {
            c.reject("spec.nodeMeshPassword", &s.node_mesh_password, msg.clone());
        }
        if let Some(v) = s.node_mesh_max_restart_time {
            c.reject_display("spec.nodeMeshMaxRestartTime", v, msg.clone());
        }
        // Calico: a node.<name> configuration overrides only
        // logSeverityScreen, listenPort and prefixAdvertisements (with the
        // communities they name).
        let msg = Reason::NotAllowed(
            "may only be set in the BGPConfiguration named `default`; node.<name> overrides only logSeverityScreen, listenPort and prefixAdvertisements",
        );
        if let Some(v) = s.bind_mode {
            c.reject("spec.bindMode", v, msg.clone());
        }
        let lists = [
            ("spec.serviceClusterIPs", &s.service_cluster_ips),
            ("spec.serviceExternalIPs", &s.service_external_ips),
            ("spec.serviceLoadBalancerIPs", &s.service_load_balancer_ips),
        ];
        for (field, list) in lists {
            if !list.is_empty() {
                c.reject_display(field, list.len(), msg.clone());
            }
        }
    }
}

/// Calico fields tortie does not implement: refused by name.
fn check_unsupported(c: &mut Checker, s: &BgpConfigurationSpec) {
    if !s.ignored_interfaces.is_empty() {
        let why = Reason::Unsupported(
            "tortie's BGP speaker does not read interface routes, so there are none to ignore",
        );
        c.reject("spec.ignoredInterfaces", &s.ignored_interfaces, why);
    }
    let why = Reason::Unsupported("tortie does not peer with local workloads");
    if let Some(ip) = s.local_workload_peering_ipv4 {
        c.reject_display("spec.localWorkloadPeeringIPV4", ip, why.clone());
    }
    if let Some(ip) = s.local_workload_peering_ipv6 {
        c.reject_display("spec.localWorkloadPeeringIPV6", ip, why);
    }
}

fn check_blocks(c: &mut Checker, s: &BgpConfigurationSpec) {
    let lists = [
        ("serviceLoadBalancerIPs", &s.service_load_balancer_ips),
        ("serviceExternalIPs", &s.service_external_ips),
        ("serviceClusterIPs", &s.service_cluster_ips),
    ];
    for (field, list) in lists {
        for (i, b) in list.iter().enumerate() {
            validate::check_masked(c, &format!("spec.{field}[{i}].cidr"), &b.cidr);
        }
    }
}

fn check_communities(c: &mut Checker, s: &BgpConfigurationSpec) {
    for (i, com) in s.communities.iter().enumerate() {
        if !validate::is_dns1123_subdomain(&com.name) {
            let field = format!("spec.communities[{i}].name");
            c.reject(&field, &com.name, Reason::NotDns1123Subdomain);
        }
        if !validate::is_community_value(&com.value) {
            let field = format!("spec.communities[{i}].value");
            c.reject(&field, &com.value, Reason::NotCommunity);
        }
    }
    if s.prefix_advertisements.is_empty() && !s.communities.is_empty() {
        let reason =
            Reason::NotAllowed("communities are defined but no spec.prefixAdvertisements use them");
        c.reject_display("spec.communities", s.communities.len(), reason);
    }
    for (i, adv) in s.prefix_advertisements.iter().enumerate() {
        validate::check_masked(
            c,
            &format!("spec.prefixAdvertisements[{i}].cidr"),
            &adv.cidr,
        );
        if adv.communities.is_empty() {
            let field = format!("spec.prefixAdvertisements[{i}].communities");
            c.reject(&field, &adv.communities, Reason::Required);
        }
        for (j, name) in adv.communities.iter().enumerate() {
            if s.community_value(name).is_none() {
                let field = format!("spec.prefixAdvertisements[{i}].communities[{j}]");
                c.reject(&field, name, Reason::UnknownCommunity);
            }
        }
    }
}

#[cfg(test)]
mod tests;
