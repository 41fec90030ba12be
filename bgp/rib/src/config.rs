//! What the RIB is told from outside: this speaker's identity, each peer's
//! negotiated session parameters, and graceful-restart settings.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tortie_bgp_wire::{Family, GracefulRestartCap};

use crate::filter::PeerFilters;
use crate::policy::PolicyConfig;

/// Settings of the whole RIB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RibConfig {
    /// Our AS number.
    pub asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// RFC 4456 §7 cluster id when this node is a route reflector
    /// (Calico's `routeReflectorClusterID`); `None` = not a reflector.
    pub cluster_id: Option<Ipv4Addr>,
    /// Most paths in one multipath (ECMP) set; 1 disables multipath.
    pub max_paths: u16,
    /// Export and import rules (Calico's BIRD filters).
    pub policy: PolicyConfig,
    /// Set when this speaker has just restarted and runs RFC 4724 §4.1.
    pub restart: Option<RestartConfig>,
    /// How long a restarted peer's stale routes wait for its End-of-RIB
    /// after it came back (RFC 4724 §4.2; FRR's stalepath-time).
    pub stale_path_time: Duration,
}

impl RibConfig {
    /// A plain speaker: no reflection, multipath up to 16 paths, no restart.
    pub fn new(asn: u32, router_id: Ipv4Addr) -> Self {
        RibConfig {
            asn,
            router_id,
            cluster_id: None,
            max_paths: 16,
            policy: PolicyConfig::default(),
            restart: None,
            stale_path_time: Duration::from_secs(360),
        }
    }
}

/// RFC 4724 §4.1 restarting-speaker settings: how long to defer route
/// selection waiting for End-of-RIB from the peers that come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartConfig {
    /// The peers we expect back (the configured ones).
    pub expected_peers: Vec<IpAddr>,
    /// Selection_Deferral_Timer: the hard upper bound of the wait.
    pub selection_deferral: Duration,
    /// A peer that has not re-established this long after the restart is no
    /// longer waited for (Calico's 240 s stalls come from waiting on peers
    /// that stay down).
    pub peer_wait: Duration,
}

/// How a peer relates to us for RFC 4456 reflection and RFC 4271 §9.2 rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    /// External peer (different AS).
    Ebgp,
    /// Internal peer that is not our reflector client (mesh, non-client, our own reflector).
    IbgpNonClient,
    /// Internal peer that is our route reflector client (RFC 4456 §5).
    IbgpClient,
}

impl PeerRole {
    /// Calico's rule (confd's BIRD template): a peer in another AS is
    /// external; a peer in our AS is our reflector client when we have a
    /// cluster id and the peer's differs (a reflector of the same cluster
    /// is a plain non-client, and so are all peers of a non-reflector).
    pub fn calico(
        local_asn: u32,
        local_cluster: Option<Ipv4Addr>,
        peer_asn: u32,
        peer_cluster: Option<Ipv4Addr>,
    ) -> Self {
        match local_cluster {
            _ if peer_asn != local_asn => PeerRole::Ebgp,
            Some(ours) if peer_cluster != Some(ours) => PeerRole::IbgpClient,
            _ => PeerRole::IbgpNonClient,
        }
    }

    /// True for the internal roles.
    pub fn is_ibgp(self) -> bool {
        !matches!(self, PeerRole::Ebgp)
    }
}

/// Calico's `nextHopMode` for routes sent to a peer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NextHopMode {
    /// BIRD's default: self toward eBGP peers and for our own routes; keep
    /// the received next hop for routes sent to iBGP peers.
    #[default]
    Auto,
    /// Always our own address.
    #[serde(rename = "self")]
    SelfAddr,
    /// Always the received next hop (Calico's `keepOriginalNextHop`); our
    /// own routes still carry our address.
    Keep,
}

/// Which import rules a peer's routes go through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ImportScope {
    /// Another tortie node (mesh, selector peers, reflectors and their
    /// clients): only pool, service and borrowed /32 prefixes are accepted,
    /// so a node cannot hijack other traffic.
    #[default]
    ClusterNode,
    /// An external BGPPeer: everything is accepted (Calico's `import all`),
    /// unless the peer's BGPFilters say otherwise ([`PeerInfo::filters`]).
    External,
}

/// Our addresses used as NEXT_HOP toward one peer ("next hop self").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalAddrs {
    /// IPv4 next hop for IPv4 routes.
    pub v4: Option<Ipv4Addr>,
    /// IPv6 next hop (global) for IPv6 routes.
    pub v6: Option<std::net::Ipv6Addr>,
}

/// One established peer as the session negotiated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address: its key in every call.
    pub addr: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's BGP Identifier (from its OPEN).
    pub router_id: Ipv4Addr,
    /// eBGP, iBGP non-client or iBGP reflector client.
    pub role: PeerRole,
    /// Next hop rule for routes sent to this peer.
    pub next_hop_mode: NextHopMode,
    /// Our addresses on this session, used for next hop self (always for
    /// our own routes): a route that needs one of a family left unset is not sent.
    pub local: LocalAddrs,
    /// Families negotiated (both sides offered them).
    pub families: Vec<Family>,
    /// Families where the peer sends path identifiers (RFC 7911 receive).
    pub add_path_rx: Vec<Family>,
    /// Families where we send path identifiers (RFC 7911 send).
    pub add_path_tx: Vec<Family>,
    /// The peer's graceful restart capability, if it sent one (RFC 4724 §3).
    pub graceful_restart: Option<GracefulRestartCap>,
    /// Local cap on the peer's restart time (Calico's `maxRestartTime`).
    pub max_restart_time: Option<Duration>,
    /// Most prefixes accepted from the peer before the session must be
    /// closed (RFC 4486 Cease subcode 1); `None` = no limit.
    pub max_prefixes: Option<u32>,
    /// How often our own AS may appear in a received AS_PATH (allowas-in).
    pub allowas_in: u8,
    /// Default import rules.
    pub import: ImportScope,
    /// The BGPFilter rules of the peer, tried before the default rules in
    /// both directions ([`crate::filter`]).
    pub filters: PeerFilters,
    /// Peers with the same class encode UPDATEs identically (same 4-octet
    /// AS and extended message setting): they may share an update group.
    pub encode_class: u32,
}

impl PeerInfo {
    /// An IPv4-unicast peer with defaults: role from the AS numbers, next hop
    /// mode Auto, no ADD-PATH, no graceful restart, cluster-node import.
    pub fn new(addr: IpAddr, asn: u32, router_id: Ipv4Addr, local_asn: u32) -> Self {
        let role = if asn == local_asn {
            PeerRole::IbgpNonClient
        } else {
            PeerRole::Ebgp
        };
        PeerInfo {
            addr,
            asn,
            router_id,
            role,
            next_hop_mode: NextHopMode::Auto,
            local: LocalAddrs::default(),
            families: vec![Family::IPV4_UNICAST],
            add_path_rx: Vec::new(),
            add_path_tx: Vec::new(),
            graceful_restart: None,
            max_restart_time: None,
            max_prefixes: None,
            allowas_in: 0,
            import: ImportScope::ClusterNode,
            filters: PeerFilters::default(),
            encode_class: 0,
        }
    }
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownKind {
    /// The peer may be restarting (TCP loss, hold timer, or an RFC 8538
    /// graceful NOTIFICATION): keep its routes as stale if it is GR-capable.
    Graceful,
    /// Administrative or hard reset: flush its routes now.
    Hard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_calicos_route_reflector_rule() {
        let c1: Option<Ipv4Addr> = Some("1.1.1.1".parse().unwrap());
        let c2: Option<Ipv4Addr> = Some("2.2.2.2".parse().unwrap());
        assert_eq!(PeerRole::calico(64512, c1, 65000, None), PeerRole::Ebgp);
        assert_eq!(
            PeerRole::calico(64512, c1, 64512, None),
            PeerRole::IbgpClient
        );
        assert_eq!(PeerRole::calico(64512, c1, 64512, c2), PeerRole::IbgpClient);
        assert_eq!(
            PeerRole::calico(64512, c1, 64512, c1),
            PeerRole::IbgpNonClient
        );
        assert_eq!(
            PeerRole::calico(64512, None, 64512, c1),
            PeerRole::IbgpNonClient
        );
    }
}
