//! What the RIB is told about a session: the negotiated OPENs and the
//! peer's configuration as a [`PeerInfo`], and how a session ended as a
//! [`DownKind`].

use super::convert::family_to_wire;
use crate::config::{PeerConfig, PeerType};
use std::net::IpAddr;
use std::time::Duration;
use tortie_bgp_rib::{DownKind, ImportScope, LocalAddrs, PeerInfo, PeerRole};
use tortie_bgp_session::{notification::code as error_code, DownReason, Negotiated};
use tortie_bgp_wire::{GracefulRestartCap, GracefulRestartFamily};

/// The RIB's view of one Established session.
pub(crate) fn peer_info(
    cfg: &PeerConfig,
    local_asn: u32,
    neg: &Negotiated,
    local: Option<IpAddr>,
) -> PeerInfo {
    let mut info = PeerInfo::new(cfg.address, neg.peer_asn, neg.peer_router_id, local_asn);
    if info.role.is_ibgp() && cfg.route_reflector_client {
        info.role = PeerRole::IbgpClient;
    }
    info.next_hop_mode = cfg.next_hop_mode;
    info.allowas_in = cfg.allowas_in;
    let local = local.map(crate::instance::canonical);
    info.local = LocalAddrs {
        v4: cfg.next_hop_v4.or(match local {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        }),
        v6: cfg.next_hop_v6.or(match local {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        }),
    };
    info.families = neg.families.iter().map(|f| family_to_wire(*f)).collect();
    for (f, ap) in &neg.add_path {
        if ap.receive {
            info.add_path_rx.push(family_to_wire(*f));
        }
        if ap.send {
            info.add_path_tx.push(family_to_wire(*f));
        }
    }
    info.graceful_restart = neg.graceful_restart.as_ref().map(|gr| GracefulRestartCap {
        restart_state: gr.restarting,
        notification: false,
        restart_time: gr.restart_time,
        families: gr
            .families
            .iter()
            .map(|(f, fwd)| GracefulRestartFamily {
                family: family_to_wire(*f),
                forwarding_preserved: *fwd,
            })
            .collect(),
    });
    info.max_restart_time = cfg
        .max_restart_time
        .map(|s| Duration::from_secs(u64::from(s)));
    info.import = import_scope(cfg);
    info.encode_class = u32::from(neg.four_octet_as) | (u32::from(neg.extended_message) << 1);
    info
}

/// Other nodes of the cluster (mesh and route reflector sessions, and
/// BGPPeers flagged [`PeerConfig::cluster_node`]) go through the cluster
/// import rules; external BGPPeers through their own filter (accept all
/// by default, as Calico).
fn import_scope(cfg: &PeerConfig) -> ImportScope {
    let node_type = matches!(
        cfg.peer_type,
        PeerType::Mesh | PeerType::RouteReflector | PeerType::RouteReflectorClient
    );
    if cfg.cluster_node || node_type {
        ImportScope::ClusterNode
    } else {
        ImportScope::External
    }
}

/// RFC 4724 §4.2: the routes of a peer whose connection was lost, whose
/// hold timer expired, or that reconnected while Established (it
/// restarted) are kept; a NOTIFICATION ends them (we do not offer RFC
/// 8538's graceful NOTIFICATIONs).
pub(crate) fn down_kind(reason: &DownReason) -> DownKind {
    match reason {
        DownReason::ConnectionLost | DownReason::PeerRestarted => DownKind::Graceful,
        // Hold Timer Expired sent by us: the peer went silent.
        DownReason::NotificationSent(n) if n.code == error_code::HOLD_TIMER_EXPIRED => {
            DownKind::Graceful
        }
        _ => DownKind::Hard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_bgp_session::Notification;

    #[test]
    fn bgppeers_reaching_nodes_get_the_cluster_rules_whatever_their_type() {
        let mut cfg = PeerConfig::new("10.0.0.2".parse().unwrap(), 64512);
        for t in [PeerType::Global, PeerType::NodeSpecific] {
            cfg.peer_type = t;
            cfg.cluster_node = false;
            assert!(import_scope(&cfg) == ImportScope::External);
            cfg.cluster_node = true;
            assert_eq!(import_scope(&cfg), ImportScope::ClusterNode);
        }
        cfg.cluster_node = false;
        for t in [
            PeerType::Mesh,
            PeerType::RouteReflector,
            PeerType::RouteReflectorClient,
        ] {
            cfg.peer_type = t;
            assert_eq!(import_scope(&cfg), ImportScope::ClusterNode);
        }
    }

    #[test]
    fn a_lost_connection_or_hold_timer_expiry_keeps_routes_and_a_notification_does_not() {
        assert_eq!(down_kind(&DownReason::ConnectionLost), DownKind::Graceful);
        assert_eq!(down_kind(&DownReason::PeerRestarted), DownKind::Graceful);
        let hold = Notification::new(4, 0);
        assert_eq!(
            down_kind(&DownReason::NotificationSent(hold)),
            DownKind::Graceful
        );
        let admin = Notification::new(6, 2);
        assert_eq!(
            down_kind(&DownReason::NotificationReceived(admin)),
            DownKind::Hard
        );
    }
}
