//! Network policy for one node, pure: from the cluster's workload
//! endpoints, policies, network sets and profiles to the content of one
//! nftables table (`inet tortie-policy`), and from two such contents to
//! the `nft -f` transaction that turns one into the other.
//!
//! Semantics are Calico's (felix's iptables/nftables dataplane):
//! - a policy applies to the local endpoints its selector matches (a
//!   NetworkPolicy only in its namespace) and to the directions in `types`;
//! - per direction, policies run ordered by `order` (absent last) then
//!   name; the first rule that matches with `Allow` or `Deny` decides,
//!   `Log` logs and goes on, `Pass` skips the remaining policies; when at
//!   least one policy applied and none decided (nor passed), the packet is
//!   dropped; otherwise the endpoint's profiles decide in order, and a
//!   packet no profile allows is dropped;
//! - rule selectors match workload endpoints (cluster-wide) and network
//!   sets, by their labels and the labels inherited from their profiles
//!   (a namespace's labels, `pcns.` prefixed, for namespaceSelector);
//! - established and related connections are accepted first; traffic from
//!   the host to its own workloads is not policed (as Calico).
//!
//! Selector matches and named ports are named sets whose elements change
//! when labels change; rules never mention an endpoint's address.
//!
//! Must not: do I/O, log or read the clock.

pub mod compile;
pub mod diff;
pub mod interp;
pub mod nft;
mod rules;
mod scope;
mod sets;
mod view;

use std::fmt;

use tortie_model::{
    GlobalNetworkPolicy, GlobalNetworkSet, NetworkPolicy, NetworkSet, Profile, WorkloadEndpoint,
};

pub use compile::{compile, Compiled};
pub use diff::{diff, full_replace};

/// Everything policy for one node depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyInput {
    /// This node's name: its endpoints are the ones policed here.
    pub node_name: String,
    /// Every workload endpoint of the cluster (for selector sets).
    pub endpoints: Vec<WorkloadEndpoint>,
    /// Namespaced Calico policies (Kubernetes ones converted).
    pub network_policies: Vec<NetworkPolicy>,
    /// Global policies.
    pub global_network_policies: Vec<GlobalNetworkPolicy>,
    /// Namespaced network sets.
    pub network_sets: Vec<NetworkSet>,
    /// Global network sets.
    pub global_network_sets: Vec<GlobalNetworkSet>,
    /// Profiles (Kubernetes namespaces converted).
    pub profiles: Vec<Profile>,
}

/// Names and numbers of the policy table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The table (family `inet`).
    pub table: String,
    /// Prefix of host-side workload interfaces.
    pub workload_prefix: String,
    /// The packet-mark bit that carries `Pass` from a policy chain back to
    /// the endpoint chain (cleared again before the packet leaves).
    pub pass_mark: u32,
    /// Prefix of `Log` lines.
    pub log_prefix: String,
    /// VXLAN port: VXLAN packets from workloads are dropped.
    pub vxlan_port: u16,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            table: "tortie-policy".into(),
            workload_prefix: "cali".into(),
            // Calico's default pass bit (IptablesMarkMask 0xffff0000).
            pass_mark: 0x0002_0000,
            log_prefix: "tortie-packet: ".into(),
            vxlan_port: 4789,
        }
    }
}

/// Something of the input that policy could not apply as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyProblem {
    /// A local endpoint's interface name cannot be written into nft.
    BadInterface {
        /// `namespace/name`.
        endpoint: String,
        /// The name.
        interface: String,
    },
    /// Two local endpoints claim one interface; the second is ignored.
    DuplicateInterface {
        /// `namespace/name` ignored.
        endpoint: String,
        /// `namespace/name` kept.
        other: String,
        /// The interface.
        interface: String,
    },
    /// An endpoint without addresses (no rules; its traffic is dropped).
    NoAddresses(String),
    /// A policy or profile (or one of its rules) that does not compile.
    Policy {
        /// Its id.
        policy: String,
        /// Why.
        why: String,
    },
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyProblem::BadInterface {
                endpoint,
                interface,
            } => write!(f, "endpoint {endpoint}: interface name {interface:?} is not usable in nftables; its traffic is dropped"),
            PolicyProblem::DuplicateInterface {
                endpoint,
                other,
                interface,
            } => write!(f, "endpoint {endpoint}: interface {interface} already belongs to {other}; ignored"),
            PolicyProblem::NoAddresses(e) => write!(f, "endpoint {e} has no addresses yet; its traffic is dropped"),
            PolicyProblem::Policy { policy, why } => write!(f, "policy {policy}: {why}"),
        }
    }
}
