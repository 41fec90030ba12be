//! Every (situation, input) pair against a table (`table`), plus
//! behaviours by name: connection handling (`connections`) and one
//! connection's OPEN exchange and timers (`exchange`).

mod connections;
mod exchange;
mod table;

use super::*;
use crate::capability::{Capabilities, Family, GracefulRestartCap};
use std::net::Ipv4Addr;
use Conn::{Incoming as In, Outgoing as Out};

pub(super) fn open(asn: u32, hold: u16, id: [u8; 4]) -> OpenInfo {
    OpenInfo {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(crate::AS_TRANS),
        hold_time: hold,
        router_id: Ipv4Addr::from(id),
        capabilities: Capabilities {
            multiprotocol: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            four_octet_as: Some(asn),
            ..Default::default()
        },
    }
}

pub(super) fn config(mode: PeerMode) -> SessionConfig {
    config_with_id(mode, [10, 0, 0, 1])
}

pub(super) fn config_with_id(mode: PeerMode, id: [u8; 4]) -> SessionConfig {
    SessionConfig {
        local_open: open(65001, 9, id),
        expect: Expectation {
            peer_asn: 65002,
            local_router_id: Ipv4Addr::from(id),
            hold_time: 9,
            keepalive: None,
        },
        mode,
        connect_retry: Duration::from_secs(5),
        delay_open: None,
        idle_hold: Duration::from_secs(1),
        idle_hold_max: Duration::from_secs(8),
        stable_after: Duration::from_secs(60),
    }
}

/// The peer's OPEN: AS 65002, identifier 10.0.0.2.
pub(super) fn peer_open() -> OpenInfo {
    open(65002, 30, [10, 0, 0, 2])
}

pub(super) fn with_gr(mut o: OpenInfo) -> OpenInfo {
    o.capabilities.graceful_restart = Some(GracefulRestartCap {
        restarting: false,
        restart_time: 120,
        families: vec![(Family::IPV4_UNICAST, true)],
    });
    o
}

/// Where a table row starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Sit {
    /// Never started.
    IdleDown,
    /// Damped after the peer's OPEN named the wrong AS.
    IdleDamped,
    /// Our connect pending.
    Connect,
    /// Our connect was refused; ConnectRetry runs.
    ActiveRetry,
    /// A passive session waiting for the peer.
    ActivePassive,
    /// One connection in this state: outgoing ones on an active session,
    /// incoming ones on a passive session.
    OpenSent(Conn),
    OpenConfirm(Conn),
    Established(Conn),
}

pub(super) const SITS: [Sit; 11] = [
    Sit::IdleDown,
    Sit::IdleDamped,
    Sit::Connect,
    Sit::ActiveRetry,
    Sit::ActivePassive,
    Sit::OpenSent(Out),
    Sit::OpenSent(In),
    Sit::OpenConfirm(Out),
    Sit::OpenConfirm(In),
    Sit::Established(Out),
    Sit::Established(In),
];

pub(super) fn steps(sit: Sit) -> (PeerMode, Vec<Input>) {
    use Input::*;
    let up = |c: Conn| match c {
        Out => vec![Start, TcpConnected],
        In => vec![Start, TcpIncoming],
    };
    let mode = |c: Conn| match c {
        Out => PeerMode::Active,
        In => PeerMode::Passive,
    };
    match sit {
        Sit::IdleDown => (PeerMode::Active, vec![]),
        Sit::IdleDamped => (
            PeerMode::Active,
            vec![
                Start,
                TcpConnected,
                OpenReceived(Out, open(65099, 30, [10, 0, 0, 2])),
            ],
        ),
        Sit::Connect => (PeerMode::Active, vec![Start]),
        Sit::ActiveRetry => (PeerMode::Active, vec![Start, TcpFailed(Out)]),
        Sit::ActivePassive => (PeerMode::Passive, vec![Start]),
        Sit::OpenSent(c) => (mode(c), up(c)),
        Sit::OpenConfirm(c) => (
            mode(c),
            [up(c), vec![OpenReceived(c, peer_open())]].concat(),
        ),
        Sit::Established(c) => (
            mode(c),
            [
                up(c),
                vec![OpenReceived(c, peer_open()), KeepaliveReceived(c)],
            ]
            .concat(),
        ),
    }
}

pub(super) fn session_at(sit: Sit, t0: Instant) -> Session {
    let (mode, inputs) = steps(sit);
    let mut s = Session::new(config(mode));
    for i in inputs {
        s.handle(i, t0);
    }
    s
}

pub(super) fn sent_notification(out: &[Output]) -> Option<(Conn, u8, u8)> {
    out.iter().find_map(|o| match o {
        Output::SendNotification(c, n) => Some((*c, n.code, n.subcode)),
        _ => None,
    })
}

pub(super) fn refused(out: &[Output]) -> Option<u8> {
    out.iter().find_map(|o| match o {
        Output::Refuse(n) => Some(n.subcode),
        _ => None,
    })
}
