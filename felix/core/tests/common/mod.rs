//! Builders for policy inputs and packets shared by the policy tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use tortie_felix::policy::interp::{self, CtState, Packet};
use tortie_felix::policy::nft::Hook;
use tortie_felix::policy::{compile, PolicyConfig, PolicyInput};
use tortie_model::workload_endpoint::{WorkloadEndpointPort, WorkloadEndpointSpec};
use tortie_model::{parse_manifest, ObjectMeta, Protocol, Resource, WorkloadEndpoint};

/// The node every test endpoint is local to unless said otherwise.
pub const NODE: &str = "n1";

/// A workload endpoint `ns/name` on `node` with `ip` and `labels`.
pub fn wep(
    ns: &str,
    name: &str,
    node: &str,
    ip: &str,
    labels: &[(&str, &str)],
) -> WorkloadEndpoint {
    let mut metadata = ObjectMeta::named(name);
    metadata.namespace = Some(ns.into());
    metadata.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut w = WorkloadEndpoint {
        metadata,
        spec: WorkloadEndpointSpec {
            node: node.into(),
            pod: name.into(),
            endpoint: "eth0".into(),
            interface_name: iface(ns, name),
            ip_networks: vec![ip.parse::<IpAddr>().unwrap().into()],
            ..WorkloadEndpointSpec::default()
        },
    };
    w.apply_defaults();
    w
}

/// Adds a named port to an endpoint.
pub fn with_port(mut w: WorkloadEndpoint, name: &str, proto: &str, port: u16) -> WorkloadEndpoint {
    w.spec.ports.push(WorkloadEndpointPort {
        name: name.into(),
        protocol: Protocol::named(proto),
        port,
        host_port: 0,
        host_ip: String::new(),
    });
    w
}

/// The test's host interface of `ns/name` (`cali` + a short stable id).
pub fn iface(ns: &str, name: &str) -> String {
    let h = tortie_felix::policy::nft::fnv64(format!("{ns}.{name}").as_bytes());
    format!("cali{:011x}", h & 0xfff_ffff_ffff)
}

/// Adds every resource of `yaml` (validated and defaulted) to `input`.
pub fn add(input: &mut PolicyInput, yaml: &str) {
    let resources = match parse_manifest(yaml) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    for r in resources {
        let r = r.defaulted();
        assert_eq!(r.validate(), vec![], "{}", r.id());
        match r {
            Resource::NetworkPolicy(p) => input.network_policies.push(p),
            Resource::GlobalNetworkPolicy(p) => input.global_network_policies.push(p),
            Resource::NetworkSet(s) => input.network_sets.push(s),
            Resource::GlobalNetworkSet(s) => input.global_network_sets.push(s),
            Resource::Profile(p) => input.profiles.push(p),
            Resource::WorkloadEndpoint(w) => input.endpoints.push(w),
            other => panic!("not a policy kind: {}", other.id()),
        }
    }
}

/// An input for node `NODE` with `endpoints`.
pub fn input(endpoints: Vec<WorkloadEndpoint>) -> PolicyInput {
    PolicyInput {
        node_name: NODE.into(),
        endpoints,
        ..PolicyInput::default()
    }
}

/// Where a packet enters and leaves the node.
#[derive(Debug, Clone)]
pub enum Peer<'a> {
    /// A local endpoint.
    Local(&'a WorkloadEndpoint),
    /// An address elsewhere (remote pod or outside), via `eth0`.
    Away(String),
}

impl Peer<'_> {
    fn ip(&self) -> IpAddr {
        match self {
            Peer::Local(w) => w.spec.ip_networks[0].addr(),
            Peer::Away(ip) => ip.parse().unwrap(),
        }
    }

    fn iface(&self) -> String {
        match self {
            Peer::Local(w) => w.spec.interface_name.clone(),
            Peer::Away(_) => "eth0".into(),
        }
    }
}

/// A new packet `from → to` with protocol `proto` and destination port.
pub fn packet(from: &Peer<'_>, to: &Peer<'_>, proto: u8, dport: u16) -> Packet {
    Packet {
        src: from.ip(),
        dst: to.ip(),
        proto,
        sport: 40000,
        dport,
        icmp_type: 8,
        icmp_code: 0,
        iif: from.iface(),
        oif: to.iface(),
        ct: CtState::New,
        mark: 0,
    }
}

/// An address elsewhere.
pub fn away(ip: &str) -> Peer<'static> {
    Peer::Away(ip.to_string())
}

/// True if the compiled table of `input` forwards `pkt`.
pub fn forwards(input: &PolicyInput, pkt: &Packet) -> bool {
    let c = compile(input, &PolicyConfig::default());
    forwards_in(&c.ruleset, pkt)
}

/// True if `rs` forwards `pkt`.
pub fn forwards_in(rs: &tortie_felix::policy::nft::Ruleset, pkt: &Packet) -> bool {
    interp::run(rs, Hook::Forward, pkt).unwrap().accepted
}

/// Labels as a map.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
