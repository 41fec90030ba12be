//! `WorkloadEndpoint`: one pod interface, written by the CNI plugin.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Checker, FieldError, Reason};
use crate::meta::{resource_serde, ObjectMeta};
use crate::validate;

/// A `WorkloadEndpoint` resource (namespaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEndpoint {
    /// Name, namespace, the pod's labels, bookkeeping.
    pub metadata: ObjectMeta,
    /// The endpoint.
    pub spec: WorkloadEndpointSpec,
}
resource_serde!(WorkloadEndpoint, WorkloadEndpointSpec, "WorkloadEndpoint");

pub use crate::protocol::Protocol;

/// Label holding an endpoint's namespace (set from `metadata.namespace`).
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
/// Label holding an endpoint's orchestrator (set from `spec.orchestrator`).
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
/// Prefix of the namespace labels an endpoint inherits from its
/// namespace's profile; reserved, an endpoint may not set them itself.
pub const NAMESPACE_LABEL_PREFIX: &str = "pcns.";
/// Prefix of service-account labels (reserved as in Calico).
pub const SERVICE_ACCOUNT_LABEL_PREFIX: &str = "pcsa.";

/// A named port of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointPort {
    /// Port name (may be empty when hostPort is set).
    #[serde(default)]
    pub name: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Container port.
    pub port: u16,
    /// Host port mapped to it (0: none).
    #[serde(default)]
    pub host_port: u16,
    /// Host address of the mapping.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// A 1:1 NAT of an endpoint address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpNat {
    /// The endpoint's own address.
    #[serde(rename = "internalIP")]
    pub internal_ip: std::net::IpAddr,
    /// The external address.
    #[serde(rename = "externalIP")]
    pub external_ip: std::net::IpAddr,
}

/// `WorkloadEndpoint.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointSpec {
    /// Orchestrator (`k8s`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub orchestrator: String,
    /// Workload name (unused by k8s).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    /// The node hosting the endpoint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Container (sandbox) id.
    #[serde(
        rename = "containerID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    /// Pod name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// Interface name inside the pod (`eth0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// The pod's service account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// The pod's addresses as host prefixes (`10.244.1.5/32`).
    #[serde(rename = "ipNetworks", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_networks: Vec<IpNet>,
    /// 1:1 NATs.
    #[serde(rename = "ipNATs", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<IpNat>,
    /// IPv4 gateway of the pod.
    #[serde(
        rename = "ipv4Gateway",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_gateway: Option<Ipv4Addr>,
    /// IPv6 gateway of the pod.
    #[serde(
        rename = "ipv6Gateway",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// Security profiles, in order: their `labelsToApply` are inherited
    /// and their rules apply after every policy tier. A Kubernetes endpoint
    /// without profiles gets its namespace's profile `kns.<namespace>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Host-side interface (`cali` + 11 hex characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    /// MAC address of the pod-side interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Named ports (matched by named ports in policy rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<WorkloadEndpointPort>,
    /// Source prefixes the pod may send from besides its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<IpNet>,
}

/// Calico's WorkloadEndpoint name for a Kubernetes pod interface:
/// `<node>-k8s-<pod>-<endpoint>`, each part with its `-` doubled so that
/// the name splits back unambiguously.
pub fn k8s_endpoint_name(node: &str, pod: &str, endpoint: &str) -> String {
    let esc = |s: &str| s.replace('-', "--");
    format!("{}-k8s-{}-{}", esc(node), esc(pod), esc(endpoint))
}

impl WorkloadEndpoint {
    /// Namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Fills the namespace (`default`) and orchestrator (`k8s`), and the
    /// labels naming them (`projectcalico.org/namespace`,
    /// `projectcalico.org/orchestrator`) as Calico's client does.
    pub fn apply_defaults(&mut self) {
        if self.metadata.namespace.is_none() {
            self.metadata.namespace = Some("default".to_owned());
        }
        if self.spec.orchestrator.is_empty() {
            self.spec.orchestrator = "k8s".to_owned();
        }
        let ns = self.namespace().to_owned();
        let labels = &mut self.metadata.labels;
        labels.entry(LABEL_NAMESPACE.to_owned()).or_insert(ns);
        labels
            .entry(LABEL_ORCHESTRATOR.to_owned())
            .or_insert_with(|| self.spec.orchestrator.clone());
    }

    /// Checks the endpoint the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let id = format!(
            "WorkloadEndpoint({}/{})",
            self.namespace(),
            self.metadata.name
        );
        let mut c = Checker::new(id);
        validate::check_meta(&mut c, &self.metadata);
        let s = &self.spec;
        if let Some(ns) = &self.metadata.namespace {
            if !validate::is_dns1123_subdomain(ns) {
                c.reject("metadata.namespace", ns, Reason::NotDns1123Subdomain);
            }
        }
        let names = [
            ("spec.node", &s.node),
            ("spec.orchestrator", &s.orchestrator),
            ("spec.pod", &s.pod),
        ];
        for (field, v) in names {
            if !v.is_empty() {
                validate::check_name_ref(&mut c, field, Some(v));
            }
        }
        if !s.interface_name.is_empty() && !validate::is_interface_name(&s.interface_name) {
            c.reject(
                "spec.interfaceName",
                &s.interface_name,
                Reason::NotInterfaceName,
            );
        }
        if !s.mac.is_empty() && !validate::is_mac(&s.mac) {
            c.reject("spec.mac", &s.mac, Reason::NotMac);
        }
        for (i, n) in s.ip_networks.iter().enumerate() {
            validate::check_masked(&mut c, &format!("spec.ipNetworks[{i}]"), n);
        }
        for (i, nat) in s.ip_nats.iter().enumerate() {
            if !s.ip_networks.iter().any(|n| n.contains(&nat.internal_ip)) {
                let reason = Reason::NotAllowed("internalIP must be one of spec.ipNetworks");
                let field = format!("spec.ipNATs[{i}].internalIP");
                c.reject_display(&field, nat.internal_ip, reason);
            }
        }
        self.check_labels(&mut c);
        check_ports(&mut c, &s.ports);
        for (i, p) in s.profiles.iter().enumerate() {
            validate::check_name_ref(&mut c, &format!("spec.profiles[{i}]"), Some(p));
        }
        c.finish()
    }

    /// The namespace and orchestrator labels must say what the endpoint
    /// is; inherited-label prefixes are reserved.
    fn check_labels(&self, c: &mut Checker) {
        let l = &self.metadata.labels;
        let own = [
            (LABEL_NAMESPACE, self.namespace()),
            (LABEL_ORCHESTRATOR, self.spec.orchestrator.as_str()),
        ];
        for (key, want) in own {
            match l.get(key) {
                Some(v) if v != want && !want.is_empty() => c.reject(
                    &format!("metadata.labels[{key}]"),
                    v,
                    Reason::NotAllowed("must name the endpoint's own namespace / orchestrator"),
                ),
                _ => {}
            }
        }
        for k in l.keys() {
            if k.starts_with(NAMESPACE_LABEL_PREFIX) || k.starts_with(SERVICE_ACCOUNT_LABEL_PREFIX)
            {
                c.reject(
                    &format!("metadata.labels[{k}]"),
                    k,
                    Reason::NotAllowed("the prefixes pcns. and pcsa. are reserved for labels inherited from profiles"),
                );
            }
        }
    }
}

/// Named ports: a name (unless a hostPort is set) and a protocol with ports.
fn check_ports(c: &mut Checker, ports: &[WorkloadEndpointPort]) {
    for (i, p) in ports.iter().enumerate() {
        if p.name.is_empty() && p.host_port == 0 {
            c.reject(&format!("spec.ports[{i}].name"), "", Reason::Required);
        } else if !p.name.is_empty() && !crate::protocol::is_port_name(&p.name) {
            c.reject(
                &format!("spec.ports[{i}].name"),
                &p.name,
                Reason::NotPortName,
            );
        }
        if !p.protocol.supports_ports() {
            c.reject_display(
                &format!("spec.ports[{i}].protocol"),
                &p.protocol,
                Reason::NotOneOf {
                    allowed: "TCP, UDP, SCTP, UDPLite or their numbers",
                },
            );
        }
    }
}

#[cfg(test)]
mod tests;
