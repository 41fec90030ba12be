//! Which FelixConfiguration fields tortie honours, and the refusal of every
//! other one by name (a field that is accepted is never ignored).
//!
//! Honoured: `vxlanVNI`, `vxlanPort`, `ipipMTU`, `vxlanMTU`,
//! `routeRefreshInterval`, `deviceRouteProtocol`, `bgpRouteProtocol`.
//! Accepted only with the value that says what tortie does anyway (e.g.
//! `ipForwarding: Enabled`, `bpfEnabled: false`, `interfacePrefix: cali`);
//! `routeTableRange(s)` is an allowance tortie always keeps (it programs the
//! main table only). Calico's `bpf*` tuning fields apply only with
//! `bpfEnabled: true`, which is refused, so they are inert here as they are
//! in Calico's iptables mode. Everything else is refused.

use super::{FelixConfigurationSpec, RouteSource};
use crate::error::{Checker, Reason};

/// What the log level is set by instead of FelixConfiguration.
const LOGS: &str =
    "tortie-node's log level is its --log-level flag (RUST_LOG) and it logs to stderr only";
/// What serves health and metrics instead.
const HTTP: &str =
    "tortie-node serves /metrics, /livez and /readyz on its --http-addr (TORTIE_HTTP_ADDR)";
/// Policy knobs of Calico's iptables dataplane.
const IPTABLES: &str =
    "tortie's policy dataplane is nftables with fixed behaviour (see docs/policy.md)";

/// Refuses every field of `s` that tortie does not implement.
pub(super) fn check(c: &mut Checker, s: &FelixConfigurationSpec) {
    check_refused(c, s);
    check_fixed(c, s);
    for (name, value) in &s.other {
        if !super::fields::is_calico_field(name) {
            c.reject(&format!("spec.{name}"), name, Reason::UnknownField);
        } else if !inert(name, value) {
            let reason = Reason::Unsupported("tortie does not implement this Calico field");
            c.reject_display(&format!("spec.{name}"), value, reason);
        }
    }
}

/// Unmodelled Calico fields accepted because they change nothing in the
/// mode tortie runs in.
fn inert(name: &str, value: &serde_json::Value) -> bool {
    name.starts_with("bpf") || (name == "floatingIPs" && value == "Disabled")
}

/// A set field's value as JSON (for the error message); `None` when unset.
fn shown<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_default())
}

/// A non-empty list's value as JSON; `None` when empty.
fn shown_list<T: serde::Serialize>(v: &[T]) -> Option<String> {
    (!v.is_empty()).then(|| serde_json::to_string(v).unwrap_or_default())
}

/// Fields refused whatever their value.
fn check_refused(c: &mut Checker, s: &FelixConfigurationSpec) {
    let refused: [(&str, Option<String>, &'static str); 24] = [
        ("spec.logSeverityScreen", shown(&s.log_severity_screen), LOGS),
        ("spec.logSeverityFile", shown(&s.log_severity_file), LOGS),
        ("spec.logSeveritySys", shown(&s.log_severity_sys), LOGS),
        ("spec.logFilePath", shown(&s.log_file_path), LOGS),
        ("spec.mtuIfacePattern", shown(&s.mtu_iface_pattern), "the tunnel MTU is detected from the node address's interface, or set with ipipMTU / vxlanMTU"),
        ("spec.iptablesRefreshInterval", shown(&s.iptables_refresh_interval), "tortie's nftables tables are repaired on change by a monitor, not on a timer"),
        ("spec.netlinkTimeout", shown(&s.netlink_timeout), "netlink requests have a fixed timeout"),
        ("spec.deviceRouteSourceAddress", shown(&s.device_route_source_address), "routes carry no preferred source address"),
        ("spec.deviceRouteSourceAddressIPv6", shown(&s.device_route_source_address_ipv6), "routes carry no preferred source address"),
        ("spec.interfaceExclude", shown(&s.interface_exclude), "tortie touches only its own devices (tunl0, vxlan.calico, cali*)"),
        ("spec.natOutgoingAddress", shown(&s.nat_outgoing_address), "NAT outgoing masquerades to the outgoing interface's address"),
        ("spec.healthEnabled", shown(&s.health_enabled), HTTP),
        ("spec.healthHost", shown(&s.health_host), HTTP),
        ("spec.healthPort", shown(&s.health_port), HTTP),
        ("spec.prometheusMetricsEnabled", shown(&s.prometheus_metrics_enabled), HTTP),
        ("spec.prometheusMetricsHost", shown(&s.prometheus_metrics_host), HTTP),
        ("spec.prometheusMetricsPort", shown(&s.prometheus_metrics_port), HTTP),
        ("spec.defaultEndpointToHostAction", shown(&s.default_endpoint_to_host_action), IPTABLES),
        ("spec.chainInsertMode", shown(&s.chain_insert_mode), IPTABLES),
        ("spec.iptablesBackend", shown(&s.iptables_backend), IPTABLES),
        ("spec.serviceLoopPrevention", shown(&s.service_loop_prevention), "tortie installs no service CIDR blackhole routes"),
        ("spec.featureDetectOverride", shown(&s.feature_detect_override), "tortie detects kernel features itself"),
        ("spec.failsafeInboundHostPorts", shown_list(&s.failsafe_inbound_host_ports), "tortie applies no host endpoint policy, so it needs no failsafe ports"),
        ("spec.failsafeOutboundHostPorts", shown_list(&s.failsafe_outbound_host_ports), "tortie applies no host endpoint policy, so it needs no failsafe ports"),
    ];
    let external = [(
        "spec.externalNodesList",
        shown_list(&s.external_nodes_list),
        "tortie accepts IPIP/VXLAN only from nodes in its datastore",
    )];
    for (field, value, why) in refused.into_iter().chain(external) {
        if let Some(v) = value {
            c.reject_display(field, v, Reason::Unsupported(why));
        }
    }
}

/// Fields accepted only with the value that describes tortie's behaviour.
fn check_fixed(c: &mut Checker, s: &FelixConfigurationSpec) {
    let mut only = |field: &str, bad: Option<String>, why: &'static str| {
        if let Some(v) = bad {
            c.reject_display(field, v, Reason::Unsupported(why));
        }
    };
    let is = |v: Option<bool>, bad: bool| v.filter(|&b| b == bad).map(|b| b.to_string());
    only(
        "spec.ipipEnabled",
        is(s.ipip_enabled, false),
        "tortie creates tunl0 whenever an IPPool uses IPIP; only true is accepted",
    );
    only(
        "spec.vxlanEnabled",
        is(s.vxlan_enabled, false),
        "tortie creates vxlan.calico whenever an IPPool uses VXLAN; only true is accepted",
    );
    only(
        "spec.wireguardEnabled",
        is(s.wireguard_enabled, true),
        "no WireGuard encryption; only false is accepted",
    );
    only(
        "spec.bpfEnabled",
        is(s.bpf_enabled, true),
        "no eBPF dataplane; only false is accepted",
    );
    only(
        "spec.routeSyncDisabled",
        is(s.route_sync_disabled, true),
        "felix always programs routes; only false is accepted",
    );
    only("spec.removeExternalRoutes", is(s.remove_external_routes, true), "tortie never removes a route it did not make (its protocol numbers and prefixes); only false is accepted");
    only(
        "spec.ipv6Support",
        is(s.ipv6_support, true),
        "felix programs IPv4 workloads only; only false is accepted",
    );
    only(
        "spec.vxlanMTUV6",
        s.vxlan_mtu_v6.filter(|&m| m != 0).map(|m| m.to_string()),
        "no IPv6 VXLAN device; only 0 is accepted",
    );
    only(
        "spec.reportingInterval",
        s.reporting_interval
            .as_ref()
            .filter(|d| !d.as_duration().is_zero())
            .map(|d| d.to_string()),
        "felix writes no status reports to the datastore; only 0s is accepted",
    );
    only(
        "spec.routeSource",
        s.route_source
            .filter(|r| *r == RouteSource::WorkloadIps)
            .map(|_| "WorkloadIPs".to_string()),
        "routes come from IPAM blocks; only CalicoIPAM is accepted",
    );
    only(
        "spec.interfacePrefix",
        s.interface_prefix.clone().filter(|p| p != "cali"),
        "workload interfaces are named cali*; only cali is accepted",
    );
    only(
        "spec.ipForwarding",
        s.ip_forwarding.clone().filter(|v| v == "Disabled"),
        "felix enables forwarding on the interfaces it routes through; only Enabled is accepted",
    );
}
