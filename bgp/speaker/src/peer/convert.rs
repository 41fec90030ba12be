//! Mapping between the codec's messages and the session FSM's values, and
//! the OPEN this speaker sends.

use crate::config::{AddPathConfig, AfiName, PeerConfig};
use std::net::Ipv4Addr;
use tortie_bgp_session as session;
use tortie_bgp_wire as wire;
use wire::{Capability, NotificationMsg, OpenMsg};

/// A wire family as the session crate names it.
pub fn family_to_session(f: wire::Family) -> session::Family {
    session::Family {
        afi: f.afi.code(),
        safi: f.safi.code(),
    }
}

/// A session family as the wire crate names it.
pub fn family_to_wire(f: session::Family) -> wire::Family {
    wire::Family::new(f.afi, f.safi)
}

/// The families a peer config asks for, as wire families.
pub fn families(cfg: &PeerConfig) -> Vec<wire::Family> {
    cfg.families
        .iter()
        .map(|a| match a {
            AfiName::Ipv4 => wire::Family::IPV4_UNICAST,
            AfiName::Ipv6 => wire::Family::IPV6_UNICAST,
        })
        .collect()
}

/// The OPEN we send to this peer: multiprotocol per family, route refresh,
/// 4-octet AS (RFC 6793 §3: always sent).
pub fn local_open(asn: u32, router_id: Ipv4Addr, cfg: &PeerConfig) -> OpenMsg {
    let mut caps: Vec<Capability> = families(cfg)
        .into_iter()
        .map(Capability::Multiprotocol)
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::FourOctetAs(asn));
    // RFC 4724 §3: restart time and the F bit per family we keep forwarding for.
    if let Some(gr) = cfg.graceful_restart {
        caps.push(Capability::GracefulRestart(wire::GracefulRestartCap {
            restart_state: false,
            notification: false,
            restart_time: gr.restart_time.min(4095),
            families: families(cfg)
                .into_iter()
                .map(|family| wire::GracefulRestartFamily {
                    family,
                    forwarding_preserved: gr.forwarding_preserved,
                })
                .collect(),
        }));
    }
    // RFC 7911 §4: one entry per family.
    if let Some(mode) = cfg.add_path {
        let mode = match mode {
            AddPathConfig::Receive => wire::AddPathMode::Receive,
            AddPathConfig::Send => wire::AddPathMode::Send,
            AddPathConfig::Both => wire::AddPathMode::Both,
        };
        caps.push(Capability::AddPath(
            families(cfg)
                .into_iter()
                .map(|family| wire::AddPathFamily { family, mode })
                .collect(),
        ));
    }
    OpenMsg::new(asn, cfg.timers.hold_time, router_id, caps)
}

/// The OPEN to send now: RFC 4724 §3, the Restart State bit is set while
/// our own restart is in progress (only in a Graceful Restart capability we
/// offer anyway; the F bits stay as configured).
pub fn with_restart_state(open: &OpenMsg, restarting: bool) -> OpenMsg {
    let mut open = open.clone();
    for c in &mut open.capabilities {
        if let Capability::GracefulRestart(gr) = c {
            gr.restart_state = restarting;
        }
    }
    open
}

fn add_path_mode(m: wire::AddPathMode) -> session::AddPathMode {
    match m {
        wire::AddPathMode::Receive => session::AddPathMode::Receive,
        wire::AddPathMode::Send => session::AddPathMode::Send,
        wire::AddPathMode::Both => session::AddPathMode::Both,
    }
}

/// What the FSM reads from an OPEN.
pub fn open_info(open: &OpenMsg) -> session::OpenInfo {
    let mut caps = session::Capabilities::default();
    for c in &open.capabilities {
        match c {
            Capability::Multiprotocol(f) => caps.multiprotocol.push(family_to_session(*f)),
            Capability::RouteRefresh => caps.route_refresh = true,
            Capability::FourOctetAs(a) => caps.four_octet_as = Some(*a),
            Capability::GracefulRestart(gr) => {
                caps.graceful_restart = Some(session::GracefulRestartCap {
                    restarting: gr.restart_state,
                    restart_time: gr.restart_time,
                    families: gr
                        .families
                        .iter()
                        .map(|f| (family_to_session(f.family), f.forwarding_preserved))
                        .collect(),
                })
            }
            Capability::AddPath(list) => caps.add_path.extend(
                list.iter()
                    .map(|e| (family_to_session(e.family), add_path_mode(e.mode))),
            ),
            Capability::ExtendedMessage => caps.extended_message = true,
            Capability::ExtendedNextHop(list) => caps.extended_next_hop.extend(
                list.iter()
                    .map(|e| (family_to_session(e.family), e.next_hop_afi.code())),
            ),
            Capability::EnhancedRouteRefresh | Capability::Unknown { .. } => {}
        }
    }
    session::OpenInfo {
        version: open.version,
        my_as: open.my_as,
        hold_time: open.hold_time,
        router_id: open.bgp_id,
        capabilities: caps,
    }
}

/// A received NOTIFICATION as the FSM sees it.
pub fn notification_in(n: &NotificationMsg) -> session::Notification {
    session::Notification::with_data(n.code.code(), n.subcode, n.data.clone())
}

/// A NOTIFICATION the FSM asks us to send.
pub fn notification_out(n: &session::Notification) -> NotificationMsg {
    NotificationMsg::new(wire::ErrorCode::from(n.code), n.subcode, n.data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_state_bit_follows_the_flag_and_leaves_the_f_bits() {
        let mut cfg = PeerConfig::new("10.0.0.2".parse().unwrap(), 65002);
        cfg.graceful_restart = Some(crate::config::GracefulRestartConfig::default());
        let open = local_open(65001, Ipv4Addr::new(10, 0, 0, 1), &cfg);
        let gr = |o: &OpenMsg| {
            o.capabilities
                .iter()
                .find_map(|c| match c {
                    Capability::GracefulRestart(g) => Some(g.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let on = gr(&with_restart_state(&open, true));
        assert!(on.restart_state);
        assert!(on.families.iter().all(|f| f.forwarding_preserved));
        assert_eq!(on.families.len(), 2);
        assert!(!gr(&with_restart_state(&open, false)).restart_state);
        // Without the capability configured, nothing is added.
        let plain = local_open(
            65001,
            Ipv4Addr::new(10, 0, 0, 1),
            &PeerConfig::new("10.0.0.2".parse().unwrap(), 65002),
        );
        assert_eq!(with_restart_state(&plain, true), plain);
    }

    #[test]
    fn our_open_maps_to_what_the_fsm_expects() {
        let cfg = PeerConfig::new("10.0.0.2".parse().unwrap(), 65002);
        let open = local_open(4_200_000_000, Ipv4Addr::new(10, 0, 0, 1), &cfg);
        let info = open_info(&open);
        assert_eq!(info.my_as, session::AS_TRANS);
        assert_eq!(info.asn(), 4_200_000_000);
        assert_eq!(
            info.families(),
            vec![session::Family::IPV4_UNICAST, session::Family::IPV6_UNICAST]
        );
        assert!(info.capabilities.route_refresh);
    }

    #[test]
    fn notifications_round_trip_between_crates() {
        let n = session::Notification::with_data(2, 7, vec![1, 4, 0, 2, 0, 1]);
        assert_eq!(notification_in(&notification_out(&n)), n);
    }
}
