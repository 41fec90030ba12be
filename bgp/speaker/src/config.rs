//! Speaker and peer configuration: plain values tortie-node builds from the
//! datastore (and `speakerd` reads from JSON).

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
pub use tortie_bgp_rib::NextHopMode;
use tortie_bgp_rib::PeerFilters;
use tortie_bgp_session::PeerMode;

/// The whole speaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerConfig {
    /// Our AS.
    pub asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Where to accept connections (`0.0.0.0:179` in production; `None` = only active peers).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Peers to start with.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
}

/// How the peer relates to us, shown as `type` in `node status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PeerType {
    /// Another node of the full mesh (Calico's `node-to-node mesh`).
    #[serde(rename = "node-to-node mesh")]
    Mesh,
    /// A BGPPeer without a node selector.
    #[serde(rename = "global")]
    #[default]
    Global,
    /// A BGPPeer for this node only.
    #[serde(rename = "node specific")]
    NodeSpecific,
    /// A route reflector client of ours.
    #[serde(rename = "route reflector client")]
    RouteReflectorClient,
    /// Our route reflector.
    #[serde(rename = "route reflector")]
    RouteReflector,
}

impl PeerType {
    /// The name shown by `node status` (INTERFACES.md).
    pub fn as_str(self) -> &'static str {
        match self {
            PeerType::Mesh => "node-to-node mesh",
            PeerType::Global => "global",
            PeerType::NodeSpecific => "node specific",
            PeerType::RouteReflectorClient => "route reflector client",
            PeerType::RouteReflector => "route reflector",
        }
    }
}

/// Who opens the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Establishment {
    /// Connect and accept.
    #[default]
    Active,
    /// Only accept.
    Passive,
    /// calico-node's mesh rule: passive toward a peer whose address sorts
    /// higher as a string than our `local_address`.
    Mesh,
}

/// Address families a session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfiName {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

/// Timers of one peer, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersConfig {
    /// Hold time offered (0 or ≥ 3).
    pub hold_time: u16,
    /// Keepalive interval; `None` = a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// ConnectRetryTime.
    pub connect_retry: u16,
    /// DelayOpenTime, when set.
    pub delay_open: Option<u16>,
    /// First IdleHoldTime after an error, in milliseconds.
    pub idle_hold_ms: u64,
    /// IdleHoldTime cap after repeated errors, in milliseconds.
    pub idle_hold_max_ms: u64,
}

impl Default for TimersConfig {
    fn default() -> Self {
        Self {
            hold_time: 90,
            keepalive: None,
            connect_retry: 120,
            delay_open: None,
            idle_hold_ms: 1_000,
            idle_hold_max_ms: 60_000,
        }
    }
}

impl TimersConfig {
    /// ConnectRetryTime as a Duration.
    pub fn connect_retry(&self) -> Duration {
        Duration::from_secs(u64::from(self.connect_retry.max(1)))
    }
}

/// One peer. Changing a peer restarts only its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's address (the key: one session per address).
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's TCP port (179 by default).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Shown in status.
    #[serde(default, rename = "type")]
    pub peer_type: PeerType,
    /// The peer is another node of our cluster: its routes go through the
    /// cluster import rules (`PolicyConfig::acceptable_from_node`) instead
    /// of an external peer's filter. Mesh and route reflector types always
    /// are; a `global` / `node specific` peer (a BGPPeer) is when it
    /// reaches a Node.
    #[serde(default)]
    pub cluster_node: bool,
    /// Who connects.
    #[serde(default)]
    pub establishment: Establishment,
    /// Our address for this session (source of outgoing connections; the
    /// mesh rule compares it).
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// eBGP multihop: the TTL of our packets (1 = directly connected).
    #[serde(default)]
    pub multihop_ttl: Option<u8>,
    /// GTSM (RFC 5082): the peer is at most this many hops away; we send with
    /// TTL 255 and drop packets below 256 - hops.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// TCP MD5 password (RFC 2385).
    #[serde(default)]
    pub password: Option<String>,
    /// Close the session with Cease / Maximum Number of Prefixes when the
    /// peer sends more (RFC 4486).
    #[serde(default)]
    pub max_prefixes: Option<u32>,
    /// Families offered.
    #[serde(default = "default_families")]
    pub families: Vec<AfiName>,
    /// IPv4 next hop of routes we send (default: the session's local IPv4 address).
    #[serde(default)]
    pub next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop of routes we send (default: the session's local IPv6
    /// address; required for IPv6 routes over an IPv4 session).
    #[serde(default)]
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Timers.
    #[serde(default)]
    pub timers: TimersConfig,
    /// BGPFilter rules for this peer, tried before the default import and
    /// export rules; a change applies at run time without a session reset
    /// (re-export, and a ROUTE-REFRESH when the import rules changed).
    #[serde(default, skip_serializing_if = "PeerFilters::is_empty")]
    pub filters: PeerFilters,
    /// This iBGP peer is our route reflector client (RFC 4456; needs
    /// [`SpeakerOptions::cluster_id`]).
    #[serde(default)]
    pub route_reflector_client: bool,
    /// Next hop of routes sent to this peer (Calico's `keepOriginalNextHop` = `keep`).
    #[serde(default)]
    pub next_hop_mode: NextHopMode,
    /// Graceful restart offered in our OPEN (RFC 4724); `None` = not offered.
    #[serde(default)]
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Cap on the peer's restart time in seconds (Calico's `maxRestartTime`).
    #[serde(default)]
    pub max_restart_time: Option<u32>,
    /// How often our own AS may appear in a route's AS_PATH before the
    /// route is dropped as a loop (RFC 4271 §9.1.2; allowas-in, Calico's
    /// `numAllowedLocalASNumbers`; 0 = not at all).
    #[serde(default)]
    pub allowas_in: u8,
    /// ADD-PATH (RFC 7911) offered for every configured family; `None` = not offered.
    #[serde(default)]
    pub add_path: Option<AddPathConfig>,
}

/// Graceful restart as offered in our OPEN (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GracefulRestartConfig {
    /// Restart Time in seconds (at most 4095): how long the peer keeps our routes.
    pub restart_time: u16,
    /// Forwarding State bit per family: our forwarding survives a restart
    /// (true for tortie-node: felix leaves the kernel routes in place).
    pub forwarding_preserved: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        Self {
            restart_time: 120,
            forwarding_preserved: true,
        }
    }
}

/// ADD-PATH directions offered (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddPathConfig {
    /// We accept several paths per prefix.
    Receive,
    /// We send the multipath set.
    Send,
    /// Both.
    Both,
}

/// Speaker-wide settings beyond [`SpeakerConfig`] (kept apart so existing
/// struct literals of `SpeakerConfig` stay valid): route reflection, multipath,
/// export/import policy and graceful restart of the RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerOptions {
    /// RFC 4456 cluster id: set on a route reflector.
    pub cluster_id: Option<Ipv4Addr>,
    /// Most paths of one multipath (ECMP) set.
    pub max_paths: u16,
    /// Calico's export/import rules; `None` = accept and export every unicast prefix.
    pub policy: Option<tortie_bgp_rib::PolicyConfig>,
    /// Keep per-peer Adj-RIBs-In in the peer tasks and emit
    /// [`crate::SpeakerEvent::Routes`] (on by default; off saves memory per route).
    pub route_events: bool,
    /// Stale routes of a returning peer wait this long for its End-of-RIB (RFC 4724 §4.2).
    pub stale_path_time: Duration,
    /// Start as a restarting speaker (RFC 4724 §4.1): set after a restart
    /// whose forwarding state survived (tortie-node: the kernel routes were
    /// kept). `None` = a normal start.
    pub restart: Option<RestartOptions>,
}

/// The restarting-speaker side of graceful restart (RFC 4724 §4.1): while it
/// runs, OPENs to peers with [`PeerConfig::graceful_restart`] carry the
/// Restart State bit, route selection and all UPDATEs to peers are deferred,
/// and the FIB stream stays quiet; it ends when every expected peer (those
/// configured at start and those added while it runs) has re-established
/// and sent End-of-RIB, or has stayed down for `peer_wait`, or at
/// `selection_deferral` at the latest. Then each peer gets our table and
/// End-of-RIB, and FIB subscribers the whole Loc-RIB followed by
/// [`crate::FibEvent::RestartComplete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartOptions {
    /// RFC 4724's Selection_Deferral_Timer: the longest the restart can take,
    /// whatever the peers do (default 360 s, BIRD's and Calico's).
    #[serde(with = "secs")]
    pub selection_deferral: Duration,
    /// How long a configured peer that has not re-established is waited for,
    /// counted from the start (default 30 s; a peer that stays down otherwise
    /// stalls the restart up to `selection_deferral`, Calico's 240 s stalls).
    #[serde(with = "secs")]
    pub peer_wait: Duration,
}

impl Default for RestartOptions {
    fn default() -> Self {
        Self {
            selection_deferral: Duration::from_secs(360),
            peer_wait: Duration::from_secs(30),
        }
    }
}

/// Durations as whole seconds in JSON.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

impl Default for SpeakerOptions {
    fn default() -> Self {
        Self {
            cluster_id: None,
            max_paths: 16,
            policy: None,
            route_events: true,
            stale_path_time: Duration::from_secs(360),
            restart: None,
        }
    }
}

fn default_port() -> u16 {
    179
}

fn default_families() -> Vec<AfiName> {
    vec![AfiName::Ipv4, AfiName::Ipv6]
}

impl PeerConfig {
    /// A peer with defaults: active, port 179, IPv4 and IPv6, 90 s hold time.
    pub fn new(address: IpAddr, asn: u32) -> Self {
        Self {
            address,
            asn,
            port: 179,
            peer_type: PeerType::Global,
            cluster_node: false,
            establishment: Establishment::Active,
            local_address: None,
            multihop_ttl: None,
            ttl_security: None,
            password: None,
            max_prefixes: None,
            families: default_families(),
            next_hop_v4: None,
            next_hop_v6: None,
            timers: TimersConfig::default(),
            route_reflector_client: false,
            next_hop_mode: NextHopMode::Auto,
            graceful_restart: None,
            max_restart_time: None,
            allowas_in: 0,
            add_path: None,
            filters: PeerFilters::default(),
        }
    }

    /// True when `other` differs from `self` in nothing but the filters:
    /// the session can keep running.
    pub fn same_but_filters(&self, other: &PeerConfig) -> bool {
        let mut a = self.clone();
        a.filters = other.filters.clone();
        a == *other
    }

    /// The socket address to connect to.
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// Active or passive, after applying the mesh rule.
    pub fn mode(&self) -> PeerMode {
        match self.establishment {
            Establishment::Active => PeerMode::Active,
            Establishment::Passive => PeerMode::Passive,
            Establishment::Mesh => mesh_mode(self.local_address, self.address),
        }
    }
}

/// calico-node's mesh rule (confd's BIRD template): toward a mesh peer whose
/// address is greater *as a string* than ours, we are passive and the peer
/// connects; otherwise we connect. Without a local address we stay active.
pub fn mesh_mode(local: Option<IpAddr>, peer: IpAddr) -> PeerMode {
    match local {
        Some(l) if peer.to_string() > l.to_string() => PeerMode::Passive,
        _ => PeerMode::Active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_rule_compares_addresses_as_strings() {
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let b: IpAddr = "10.0.0.10".parse().unwrap();
        // "10.0.0.9" > "10.0.0.10" as strings, though 9 < 10 as numbers.
        assert_eq!(mesh_mode(Some(b), a), PeerMode::Passive);
        assert_eq!(mesh_mode(Some(a), b), PeerMode::Active);
    }

    #[test]
    fn a_peer_config_reads_from_json_with_defaults() {
        let p: PeerConfig = serde_json::from_str(
            r#"{"address": "10.0.0.2", "asn": 64512, "type": "node-to-node mesh"}"#,
        )
        .unwrap();
        assert_eq!(p.port, 179);
        assert_eq!(p.peer_type, PeerType::Mesh);
        assert_eq!(p.families, vec![AfiName::Ipv4, AfiName::Ipv6]);
        assert_eq!(p.timers.hold_time, 90);
    }

    #[test]
    fn a_filter_change_alone_keeps_the_session() {
        let a = PeerConfig::new("10.0.0.2".parse().unwrap(), 65000);
        let mut b = a.clone();
        b.filters.export.v4.push(tortie_bgp_rib::FilterRule {
            action: tortie_bgp_rib::FilterAction::Reject,
            prefix: None,
            learned_only: false,
        });
        assert!(a.same_but_filters(&b));
        b.asn = 65001;
        assert!(!a.same_but_filters(&b));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_json::from_str::<PeerConfig>(
            r#"{"address": "10.0.0.2", "asn": 1, "pasword": "x"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("pasword"), "{e}");
    }
}
