//! `BGPPeer`: explicit BGP sessions (global, per node, or between
//! selected nodes such as route-reflector clients and reflectors).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::asn::AsNumber;
use crate::common::BgpPassword;
use crate::duration::GoDuration;
use crate::error::{Checker, FieldError, Reason};
use crate::ippool::is_false;
use crate::meta::{resource_serde, ObjectMeta};
use crate::net::PeerIp;
use crate::selector::{Labels, Selector};
use crate::validate;

/// A `BGPPeer` resource (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    /// Name and bookkeeping.
    pub metadata: ObjectMeta,
    /// Which nodes peer with whom.
    pub spec: BgpPeerSpec,
}
resource_serde!(BgpPeer, BgpPeerSpec, "BGPPeer");

/// Source address of the sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SourceAddress {
    /// Bind the session to the node's IP (the default).
    #[default]
    #[serde(rename = "UseNodeIP")]
    UseNodeIp,
    /// Let the kernel choose.
    None,
}

/// Next hop of routes sent to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum NextHopMode {
    /// iBGP keeps, eBGP sets self (RFC 4271 §5.1.3).
    #[default]
    Auto,
    /// Always set self.
    #[serde(rename = "Self")]
    SelfAddress,
    /// Always keep the original next hop.
    Keep,
}

/// Graceful-restart flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestartMode {
    /// RFC 4724 graceful restart.
    GracefulRestart,
    /// Long-lived graceful restart (RFC 9494).
    LongLivedGracefulRestart,
}

/// Session failure detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureDetectionMode {
    /// Hold timer only.
    None,
    /// BFD when the peer is directly connected.
    BFDIfDirectlyConnected,
}

/// How BIRD resolves next hops for this peer (accepted for compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BirdGatewayMode {
    /// Recursive resolution.
    Recursive,
    /// Direct when directly connected.
    DirectIfDirectlyConnected,
}

/// `BGPPeer.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeerSpec {
    /// The one node that has this peering (empty with no nodeSelector: all nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The nodes that have this peering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// The peer's address, optionally with a port.
    #[serde(rename = "peerIP", default, skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<PeerIp>,
    /// The peer's AS number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Peer with the nodes this selects (instead of peerIP/asNumber).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,
    /// Keep the original next hop instead of setting self.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_original_next_hop: bool,
    /// Next-hop handling (newer alternative to keepOriginalNextHop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<NextHopMode>,
    /// TCP-MD5 password (RFC 2385) by secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    /// Source address of the sessions (default `UseNodeIP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,
    /// Failure detection (only `None` is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_detection_mode: Option<FailureDetectionMode>,
    /// Graceful-restart flavour (only `GracefulRestart` is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_mode: Option<RestartMode>,
    /// Graceful-restart time (RFC 4724; default 120s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<GoDuration>,
    /// Next-hop resolution mode of BIRD (refused by validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bird_gateway_mode: Option<BirdGatewayMode>,
    /// How often the local AS may appear in received AS paths.
    #[serde(
        rename = "numAllowedLocalASNumbers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<i32>,
    /// GTSM (RFC 5082): the peer is at most this many hops away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    /// Gateway through which the peer is reached (refused by validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_by: Option<IpAddr>,
    /// Names of BGPFilter resources applied to this peer, in order (their
    /// rules are tried before Calico's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// Local workloads this peering is for (refused by validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_workload_selector: Option<String>,
    /// Keepalive interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<GoDuration>,
}

impl BgpPeerSpec {
    /// Effective source-address mode.
    pub fn source_address(&self) -> SourceAddress {
        self.source_address.unwrap_or_default()
    }

    /// True if the node `name` with `labels` has this peering: the named
    /// node, the nodes `nodeSelector` selects, or every node when neither
    /// is set. A selector that does not parse selects nothing.
    pub fn applies_to_node<L: Labels + ?Sized>(&self, name: &str, labels: &L) -> bool {
        match (&self.node, &self.node_selector) {
            (Some(node), _) => node == name,
            (None, Some(sel)) => Selector::parse(sel).is_ok_and(|s| s.matches(labels)),
            (None, None) => true,
        }
    }

    /// True if the remote node with `labels` is a peer through
    /// `peerSelector` (false when peerSelector is unset).
    pub fn selects_peer<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.peer_selector
            .as_deref()
            .is_some_and(|sel| Selector::parse(sel).is_ok_and(|s| s.matches(labels)))
    }

    /// True if routes to this peer keep their original next hop.
    pub fn keeps_next_hop(&self) -> bool {
        self.keep_original_next_hop || self.next_hop_mode == Some(NextHopMode::Keep)
    }
}

impl BgpPeer {
    /// Fills the defaults Calico documents (source address `UseNodeIP`).
    pub fn apply_defaults(&mut self) {
        self.spec.source_address = Some(self.spec.source_address());
    }

    /// Checks the peer the way Calico does; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::new(format!("BGPPeer({})", self.metadata.name));
        validate::check_meta(&mut c, &self.metadata);
        let s = &self.spec;
        validate::check_name_ref(&mut c, "spec.node", s.node.as_deref());
        validate::check_selector(&mut c, "spec.nodeSelector", s.node_selector.as_deref());
        validate::check_selector(&mut c, "spec.peerSelector", s.peer_selector.as_deref());
        validate::check_selector(
            &mut c,
            "spec.localWorkloadSelector",
            s.local_workload_selector.as_deref(),
        );
        check_exclusive(&mut c, s);
        if s.peer_ip.is_some() && s.as_number.is_none() {
            c.reject("spec.asNumber", "", Reason::Required);
        }
        if let Some(AsNumber(0)) = s.as_number {
            let reason = Reason::OutOfRange {
                min: 1,
                max: u64::from(u32::MAX),
                context: "",
            };
            c.reject_display("spec.asNumber", 0, reason);
        }
        for (i, f) in s.filters.iter().enumerate() {
            validate::check_name_ref(&mut c, &format!("spec.filters[{i}]"), Some(f));
        }
        if let Some(pw) = &s.password {
            pw.check(&mut c, "spec.password");
        }
        check_keepalive(&mut c, s.keepalive_time);
        check_unsupported(&mut c, s);
        if let Some(n) = s.num_allowed_local_as_numbers {
            if n < 0 {
                let reason = Reason::OutOfRange {
                    min: 0,
                    max: i32::MAX as u64,
                    context: "",
                };
                c.reject_display("spec.numAllowedLocalASNumbers", n, reason);
            }
        }
        c.finish()
    }
}

fn check_exclusive(c: &mut Checker, s: &BgpPeerSpec) {
    if s.node.is_some() && s.node_selector.is_some() {
        let reason = Reason::Exclusive {
            other: "spec.nodeSelector",
        };
        c.reject("spec.node", s.node.as_deref().unwrap_or_default(), reason);
    }
    if let (Some(ip), Some(_)) = (&s.peer_ip, &s.peer_selector) {
        let reason = Reason::Exclusive {
            other: "spec.peerSelector",
        };
        c.reject_display("spec.peerIP", ip, reason);
    }
    if let (Some(asn), Some(_)) = (&s.as_number, &s.peer_selector) {
        let reason = Reason::Exclusive {
            other: "spec.peerSelector",
        };
        c.reject_display("spec.asNumber", asn, reason);
    }
    if s.keep_original_next_hop && s.next_hop_mode.is_some() {
        let reason = Reason::Exclusive {
            other: "spec.nextHopMode",
        };
        c.reject("spec.keepOriginalNextHop", true, reason);
    }
}

/// The keepalive interval in whole seconds, as BIRD's `keepalive time`:
/// 1 s to 65535 s (RFC 4271 §10 timers are 16-bit seconds).
fn check_keepalive(c: &mut Checker, keepalive: Option<GoDuration>) {
    let Some(k) = keepalive else { return };
    let secs = k.as_duration().as_secs_f64();
    if !(1.0..=65535.0).contains(&secs) || k.as_duration().subsec_nanos() != 0 {
        let reason = Reason::Invalid(
            "must be a whole number of seconds between 1s and 65535s (18h12m15s)".into(),
        );
        c.reject_display("spec.keepaliveTime", k, reason);
    }
}

/// Calico fields tortie does not implement: refused by name (never
/// accepted and ignored). `failureDetectionMode: None` and `restartMode:
/// GracefulRestart` are what tortie does and are accepted.
fn check_unsupported(c: &mut Checker, s: &BgpPeerSpec) {
    if s.failure_detection_mode == Some(FailureDetectionMode::BFDIfDirectlyConnected) {
        let why = Reason::Unsupported("tortie has no BFD; only `None` (the hold timer) is");
        c.reject("spec.failureDetectionMode", "BFDIfDirectlyConnected", why);
    }
    if s.restart_mode == Some(RestartMode::LongLivedGracefulRestart) {
        let why = Reason::Unsupported(
            "long-lived graceful restart (RFC 9494); only `GracefulRestart` (RFC 4724) is",
        );
        c.reject("spec.restartMode", "LongLivedGracefulRestart", why);
    }
    if let Some(m) = s.bird_gateway_mode {
        let why = Reason::Unsupported(
            "it is BIRD's next-hop resolution; tortie installs routes through the BGP next hop",
        );
        c.reject("spec.birdGatewayMode", m, why);
    }
    if let Some(via) = s.reachable_by {
        let why = Reason::Unsupported("tortie adds no static route toward the peer");
        c.reject_display("spec.reachableBy", via, why);
    }
    if let Some(sel) = &s.local_workload_selector {
        let why = Reason::Unsupported("tortie does not peer with local workloads");
        c.reject("spec.localWorkloadSelector", sel, why);
    }
}

#[cfg(test)]
mod tests;
