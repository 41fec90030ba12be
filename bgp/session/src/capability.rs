//! The OPEN content the FSM reads and the capability negotiation result
//! (RFC 4271 §4.2/§6.2, RFC 5492, RFC 4760, RFC 6793, RFC 2918, RFC 4724,
//! RFC 7911, RFC 8654, RFC 8950).

use crate::notification::{code, open_subcode, Notification};
use std::net::Ipv4Addr;
use std::time::Duration;

/// AS_TRANS, the 2-octet stand-in for a 4-octet AS (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;

/// An address family: AFI and SAFI (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address Family Identifier (1 = IPv4, 2 = IPv6).
    pub afi: u16,
    /// Subsequent AFI (1 = unicast).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };
}

/// Which ADD-PATH directions a speaker offers for a family (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddPathMode {
    /// Able to receive multiple paths.
    Receive,
    /// Able to send multiple paths.
    Send,
    /// Both.
    Both,
}

impl AddPathMode {
    fn receives(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }
    fn sends(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }
}

/// Graceful restart capability content (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GracefulRestartCap {
    /// The Restart State bit (R).
    pub restarting: bool,
    /// Restart Time in seconds (12 bits).
    pub restart_time: u16,
    /// Families with their Forwarding State bit.
    pub families: Vec<(Family, bool)>,
}

/// The capabilities carried in one OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Multiprotocol families (code 1, RFC 4760).
    pub multiprotocol: Vec<Family>,
    /// Route refresh (code 2, RFC 2918).
    pub route_refresh: bool,
    /// 4-octet AS number (code 65, RFC 6793).
    pub four_octet_as: Option<u32>,
    /// Graceful restart (code 64, RFC 4724).
    pub graceful_restart: Option<GracefulRestartCap>,
    /// ADD-PATH (code 69, RFC 7911).
    pub add_path: Vec<(Family, AddPathMode)>,
    /// Extended message (code 6, RFC 8654).
    pub extended_message: bool,
    /// Extended next hop: (NLRI family, next hop AFI) (code 5, RFC 8950).
    pub extended_next_hop: Vec<(Family, u16)>,
}

/// What the FSM reads from a received (or sent) OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInfo {
    /// Version field (RFC 4271 §4.2).
    pub version: u8,
    /// The 2-octet My Autonomous System field.
    pub my_as: u16,
    /// Hold Time field in seconds.
    pub hold_time: u16,
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Capabilities.
    pub capabilities: Capabilities,
}

impl OpenInfo {
    /// The sender's AS: the 4-octet capability if present, else My AS (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.capabilities
            .four_octet_as
            .unwrap_or(u32::from(self.my_as))
    }

    /// The families this OPEN offers; IPv4 unicast when it carries no
    /// Multiprotocol capability (RFC 4760 §1 implies IPv4 unicast then).
    pub fn families(&self) -> Vec<Family> {
        if self.capabilities.multiprotocol.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            self.capabilities.multiprotocol.clone()
        }
    }
}

/// ADD-PATH as negotiated for one family, per direction (RFC 7911 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPathNegotiated {
    /// We may receive path identifiers from the peer.
    pub receive: bool,
    /// We may send path identifiers to the peer.
    pub send: bool,
}

/// Everything the rest of the speaker needs to know about a session once
/// both OPENs are in: one value, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_asn: u32,
    /// The peer's BGP Identifier.
    pub peer_router_id: Ipv4Addr,
    /// Negotiated hold time in seconds: 0 or ≥ 3 (RFC 4271 §4.2).
    pub hold_time: u16,
    /// Keepalive interval (None when the hold time is 0).
    pub keepalive: Option<Duration>,
    /// Families both sides offered.
    pub families: Vec<Family>,
    /// Both sides support 4-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// The peer accepts ROUTE-REFRESH (RFC 2918).
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if both offered it (RFC 4724).
    pub graceful_restart: Option<GracefulRestartCap>,
    /// ADD-PATH per family where at least one direction is on.
    pub add_path: Vec<(Family, AddPathNegotiated)>,
    /// Both sides support messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
    /// (family, next hop AFI) pairs both sides offered (RFC 8950).
    pub extended_next_hop: Vec<(Family, u16)>,
}

impl Negotiated {
    /// ADD-PATH state for a family (both directions off if not negotiated).
    pub fn add_path_for(&self, family: Family) -> AddPathNegotiated {
        self.add_path
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, a)| *a)
            .unwrap_or(AddPathNegotiated {
                receive: false,
                send: false,
            })
    }

    /// Whether a family was negotiated.
    pub fn has_family(&self, family: Family) -> bool {
        self.families.contains(&family)
    }
}

/// What this side expects of the peer's OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Configured peer AS (RFC 4271 §6.2: Bad Peer AS if different).
    pub peer_asn: u32,
    /// Our own BGP Identifier (RFC 6286 §2.2: equal identifiers are an error).
    pub local_router_id: Ipv4Addr,
    /// Our configured hold time in seconds.
    pub hold_time: u16,
    /// Our configured keepalive interval, or hold/3 when None.
    pub keepalive: Option<u16>,
}

/// Checks the peer's OPEN against ours and our expectation and computes the
/// negotiated session parameters, or the NOTIFICATION to send (RFC 4271 §6.2).
pub fn negotiate(
    local: &OpenInfo,
    remote: &OpenInfo,
    expect: &Expectation,
) -> Result<Negotiated, Notification> {
    validate_open(remote, expect)?;
    let hold_time = local.hold_time.min(remote.hold_time);
    let keepalive = (hold_time != 0).then(|| {
        let third = u64::from(hold_time / 3).max(1);
        let ka = expect
            .keepalive
            .map(u64::from)
            .unwrap_or(third)
            .clamp(1, third);
        Duration::from_secs(ka)
    });
    let remote_families = remote.families();
    let families: Vec<Family> = local
        .families()
        .into_iter()
        .filter(|f| remote_families.contains(f))
        .collect();
    if families.is_empty() {
        // RFC 5492 §5: a peer that lacks a capability we need may be refused
        // with Unsupported Capability, listing the capability we want.
        return Err(Notification::with_data(
            code::OPEN_MESSAGE,
            open_subcode::UNSUPPORTED_CAPABILITY,
            multiprotocol_cap_bytes(&local.families()),
        ));
    }
    let (lc, rc) = (&local.capabilities, &remote.capabilities);
    Ok(Negotiated {
        peer_asn: remote.asn(),
        peer_router_id: remote.router_id,
        hold_time,
        keepalive,
        four_octet_as: lc.four_octet_as.is_some() && rc.four_octet_as.is_some(),
        route_refresh: lc.route_refresh && rc.route_refresh,
        graceful_restart: lc
            .graceful_restart
            .as_ref()
            .and(rc.graceful_restart.clone()),
        add_path: negotiate_add_path(lc, rc, &families),
        extended_message: lc.extended_message && rc.extended_message,
        extended_next_hop: lc
            .extended_next_hop
            .iter()
            .filter(|p| rc.extended_next_hop.contains(p) && families.contains(&p.0))
            .copied()
            .collect(),
        families,
    })
}

fn validate_open(remote: &OpenInfo, expect: &Expectation) -> Result<(), Notification> {
    // RFC 4271 §6.2: unsupported version; data = largest supported version (2 octets).
    if remote.version != 4 {
        return Err(Notification::with_data(
            code::OPEN_MESSAGE,
            open_subcode::UNSUPPORTED_VERSION,
            vec![0, 4],
        ));
    }
    // RFC 4271 §6.2 / RFC 6793 §4.1: the peer's AS must be the configured one.
    if remote.asn() != expect.peer_asn {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            open_subcode::BAD_PEER_AS,
        ));
    }
    // RFC 4271 §6.2: hold time 1 or 2 seconds MUST be rejected.
    if remote.hold_time == 1 || remote.hold_time == 2 {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            open_subcode::UNACCEPTABLE_HOLD_TIME,
        ));
    }
    // RFC 4271 §6.2 (syntactically incorrect identifier) and RFC 6286 §2.2
    // (identifier equal to ours).
    let id = remote.router_id;
    if id.is_unspecified() || id.is_broadcast() || id == expect.local_router_id {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            open_subcode::BAD_BGP_IDENTIFIER,
        ));
    }
    Ok(())
}

fn negotiate_add_path(
    lc: &Capabilities,
    rc: &Capabilities,
    families: &[Family],
) -> Vec<(Family, AddPathNegotiated)> {
    let mut out = Vec::new();
    for (f, lmode) in &lc.add_path {
        if !families.contains(f) {
            continue;
        }
        let Some((_, rmode)) = rc.add_path.iter().find(|(rf, _)| rf == f) else {
            continue;
        };
        // RFC 7911 §5: receive if we receive and the peer sends; send likewise.
        let n = AddPathNegotiated {
            receive: lmode.receives() && rmode.sends(),
            send: lmode.sends() && rmode.receives(),
        };
        if n.receive || n.send {
            out.push((*f, n));
        }
    }
    out
}

/// Capability TLVs for Multiprotocol families (the data of an Unsupported
/// Capability NOTIFICATION, RFC 5492 §5).
fn multiprotocol_cap_bytes(families: &[Family]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in families {
        let afi = f.afi.to_be_bytes();
        v.extend_from_slice(&[1, 4, afi[0], afi[1], 0, f.safi]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(asn: u32, hold: u16, id: [u8; 4]) -> OpenInfo {
        OpenInfo {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time: hold,
            router_id: Ipv4Addr::from(id),
            capabilities: Capabilities {
                multiprotocol: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
                route_refresh: true,
                four_octet_as: Some(asn),
                ..Default::default()
            },
        }
    }

    fn expect(peer_asn: u32) -> Expectation {
        Expectation {
            peer_asn,
            local_router_id: Ipv4Addr::new(10, 0, 0, 1),
            hold_time: 90,
            keepalive: None,
        }
    }

    #[test]
    fn hold_time_is_the_smaller_one_and_keepalive_a_third() {
        let n = negotiate(
            &open(65001, 90, [10, 0, 0, 1]),
            &open(65002, 30, [10, 0, 0, 2]),
            &expect(65002),
        )
        .unwrap();
        assert_eq!(n.hold_time, 30);
        assert_eq!(n.keepalive, Some(Duration::from_secs(10)));
        assert_eq!(n.families, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        assert!(n.four_octet_as && n.route_refresh);
    }

    #[test]
    fn hold_time_zero_means_no_keepalives() {
        let n = negotiate(
            &open(65001, 90, [10, 0, 0, 1]),
            &open(65002, 0, [10, 0, 0, 2]),
            &expect(65002),
        )
        .unwrap();
        assert_eq!((n.hold_time, n.keepalive), (0, None));
    }

    #[test]
    fn configured_keepalive_is_capped_at_a_third_of_the_hold_time() {
        let mut e = expect(65002);
        e.keepalive = Some(60);
        let n = negotiate(
            &open(65001, 90, [10, 0, 0, 1]),
            &open(65002, 9, [10, 0, 0, 2]),
            &e,
        )
        .unwrap();
        assert_eq!(n.keepalive, Some(Duration::from_secs(3)));
    }

    #[test]
    fn hold_time_one_or_two_is_unacceptable() {
        for hold in [1, 2] {
            let e = negotiate(
                &open(65001, 90, [10, 0, 0, 1]),
                &open(65002, hold, [10, 0, 0, 2]),
                &expect(65002),
            )
            .unwrap_err();
            assert_eq!((e.code, e.subcode), (2, 6));
        }
    }

    #[test]
    fn wrong_peer_as_is_bad_peer_as() {
        let e = negotiate(
            &open(65001, 90, [10, 0, 0, 1]),
            &open(65003, 90, [10, 0, 0, 2]),
            &expect(65002),
        )
        .unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 2));
    }

    #[test]
    fn version_3_is_unsupported_and_names_version_4() {
        let mut r = open(65002, 90, [10, 0, 0, 2]);
        r.version = 3;
        let e = negotiate(&open(65001, 90, [10, 0, 0, 1]), &r, &expect(65002)).unwrap_err();
        assert_eq!((e.code, e.subcode, e.data), (2, 1, vec![0, 4]));
    }

    #[test]
    fn own_or_zero_router_id_is_a_bad_identifier() {
        for id in [[10, 0, 0, 1], [0, 0, 0, 0]] {
            let e = negotiate(
                &open(65001, 90, [10, 0, 0, 1]),
                &open(65002, 90, id),
                &expect(65002),
            )
            .unwrap_err();
            assert_eq!((e.code, e.subcode), (2, 3));
        }
    }

    #[test]
    fn a_peer_without_a_common_family_gets_unsupported_capability() {
        let mut l = open(65001, 90, [10, 0, 0, 1]);
        l.capabilities.multiprotocol = vec![Family::IPV6_UNICAST];
        let e =
            negotiate(&l, &open(65002, 90, [10, 0, 0, 2]).tap_v4(), &expect(65002)).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 7));
        assert_eq!(e.data, vec![1, 4, 0, 2, 0, 1]);
    }

    trait TapV4 {
        fn tap_v4(self) -> Self;
    }
    impl TapV4 for OpenInfo {
        fn tap_v4(mut self) -> Self {
            self.capabilities.multiprotocol = vec![Family::IPV4_UNICAST];
            self
        }
    }

    #[test]
    fn no_multiprotocol_capability_means_ipv4_unicast() {
        let mut r = open(65002, 90, [10, 0, 0, 2]);
        r.capabilities.multiprotocol.clear();
        let n = negotiate(&open(65001, 90, [10, 0, 0, 1]), &r, &expect(65002)).unwrap();
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
    }

    #[test]
    fn two_octet_peer_is_identified_by_my_as() {
        let mut r = open(65002, 90, [10, 0, 0, 2]);
        r.capabilities.four_octet_as = None;
        let n = negotiate(&open(65001, 90, [10, 0, 0, 1]), &r, &expect(65002)).unwrap();
        assert_eq!(n.peer_asn, 65002);
        assert!(!n.four_octet_as);
    }

    #[test]
    fn add_path_directions_pair_receive_with_send() {
        let mut l = open(65001, 90, [10, 0, 0, 1]);
        let mut r = open(65002, 90, [10, 0, 0, 2]);
        l.capabilities.add_path = vec![
            (Family::IPV4_UNICAST, AddPathMode::Both),
            (Family::IPV6_UNICAST, AddPathMode::Receive),
        ];
        r.capabilities.add_path = vec![
            (Family::IPV4_UNICAST, AddPathMode::Receive),
            (Family::IPV6_UNICAST, AddPathMode::Receive),
        ];
        let n = negotiate(&l, &r, &expect(65002)).unwrap();
        let v4 = n.add_path_for(Family::IPV4_UNICAST);
        assert!(v4.send && !v4.receive);
        let v6 = n.add_path_for(Family::IPV6_UNICAST);
        assert!(!v6.send && !v6.receive);
        assert_eq!(n.add_path.len(), 1);
    }

    #[test]
    fn extended_message_next_hop_and_graceful_restart_need_both_sides() {
        let mut l = open(65001, 90, [10, 0, 0, 1]);
        let mut r = open(65002, 90, [10, 0, 0, 2]);
        l.capabilities.extended_message = true;
        l.capabilities.extended_next_hop = vec![(Family::IPV4_UNICAST, 2)];
        l.capabilities.graceful_restart = Some(GracefulRestartCap::default());
        let n = negotiate(&l, &r, &expect(65002)).unwrap();
        assert!(!n.extended_message && n.extended_next_hop.is_empty());
        assert!(n.graceful_restart.is_none());
        r.capabilities = l.capabilities.clone();
        r.capabilities.four_octet_as = Some(65002);
        let gr = GracefulRestartCap {
            restarting: true,
            restart_time: 120,
            families: vec![(Family::IPV4_UNICAST, true)],
        };
        r.capabilities.graceful_restart = Some(gr.clone());
        let n = negotiate(&l, &r, &expect(65002)).unwrap();
        assert!(n.extended_message);
        assert_eq!(n.extended_next_hop, vec![(Family::IPV4_UNICAST, 2)]);
        assert_eq!(n.graceful_restart, Some(gr));
    }
}
