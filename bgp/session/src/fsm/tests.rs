//! Every (situation, input) pair against a table, plus behaviours by name.

use super::*;
use crate::capability::{Capabilities, Family, GracefulRestartCap};
use std::net::Ipv4Addr;
use Conn::{Incoming as In, Outgoing as Out};

fn open(asn: u32, hold: u16, id: [u8; 4]) -> OpenInfo {
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

fn config(mode: PeerMode) -> SessionConfig {
    config_with_id(mode, [10, 0, 0, 1])
}

fn config_with_id(mode: PeerMode, id: [u8; 4]) -> SessionConfig {
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
fn peer_open() -> OpenInfo {
    open(65002, 30, [10, 0, 0, 2])
}

fn with_gr(mut o: OpenInfo) -> OpenInfo {
    o.capabilities.graceful_restart = Some(GracefulRestartCap {
        restarting: false,
        restart_time: 120,
        families: vec![(Family::IPV4_UNICAST, true)],
    });
    o
}

/// Where a table row starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sit {
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

const SITS: [Sit; 11] = [
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

fn steps(sit: Sit) -> (PeerMode, Vec<Input>) {
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

fn session_at(sit: Sit, t0: Instant) -> Session {
    let (mode, inputs) = steps(sit);
    let mut s = Session::new(config(mode));
    for i in inputs {
        s.handle(i, t0);
    }
    s
}

fn all_inputs() -> Vec<Input> {
    let mut v = vec![
        Input::Start,
        Input::ManualStop,
        Input::AutomaticStop(Notification::cease(1)),
    ];
    v.extend(Timer::ALL.map(Input::TimerExpired));
    v.extend([Input::TcpConnected, Input::TcpIncoming]);
    for c in Conn::BOTH {
        v.extend([
            Input::TcpFailed(c),
            Input::OpenReceived(c, peer_open()),
            Input::KeepaliveReceived(c),
            Input::UpdateReceived(c),
            Input::RouteRefreshReceived(c),
            Input::NotificationReceived(c, Notification::cease(2)),
            Input::NotificationReceived(c, Notification::new(2, 2)),
            Input::MessageError(c, Notification::new(1, 2)),
        ]);
    }
    v
}

/// What a row must end in: the state, the NOTIFICATION sent on a
/// connection (conn, code, subcode), and the Cease subcode of a refused
/// incoming connection.
type Want = (State, Option<(Conn, u8, u8)>, Option<u8>);

fn expected(sit: Sit, input: &Input) -> Want {
    use State as S;
    let keep = |st: State| (st, None, None);
    match sit {
        Sit::IdleDown => match input {
            Input::Start => keep(S::Connect),
            Input::TcpIncoming => (S::Idle, None, Some(5)),
            _ => keep(S::Idle),
        },
        Sit::IdleDamped => match input {
            Input::TimerExpired(Timer::IdleHold) => keep(S::Connect),
            Input::TcpIncoming => (S::Idle, None, Some(5)),
            _ => keep(S::Idle),
        },
        Sit::Connect | Sit::ActiveRetry | Sit::ActivePassive => waiting(sit, input),
        Sit::OpenSent(c) | Sit::OpenConfirm(c) | Sit::Established(c) => connected(sit, c, input),
    }
}

/// Rows of a session without a TCP connection.
fn waiting(sit: Sit, input: &Input) -> Want {
    use State as S;
    let me = match sit {
        Sit::Connect => S::Connect,
        _ => S::Active,
    };
    let active = sit != Sit::ActivePassive;
    match input {
        Input::ManualStop => (S::Idle, None, None),
        Input::TimerExpired(Timer::ConnectRetry) if active => (S::Connect, None, None),
        Input::TcpConnected if sit == Sit::Connect => (S::OpenSent, None, None),
        Input::TcpIncoming => (S::OpenSent, None, None),
        // §8.2.2 Connect, Event 18: Active, not Idle (as BIRD and FRR).
        Input::TcpFailed(Out) if sit == Sit::Connect => (S::Active, None, None),
        _ => (me, None, None),
    }
}

/// Rows of a session with one connection `c` in OpenSent or later.
fn connected(sit: Sit, c: Conn, input: &Input) -> Want {
    use State as S;
    let (me, fsm_sub) = match sit {
        Sit::OpenSent(_) => (S::OpenSent, 1),
        Sit::OpenConfirm(_) => (S::OpenConfirm, 2),
        _ => (S::Established, 3),
    };
    let up = me == S::Established;
    // After a lost session or an orderly Cease: connect again at once
    // (active), or wait for the peer (passive).
    let restart = if c == Out { S::Connect } else { S::Active };
    let on_c = |i: &Input| match i {
        Input::TcpFailed(x)
        | Input::OpenReceived(x, _)
        | Input::KeepaliveReceived(x)
        | Input::UpdateReceived(x)
        | Input::RouteRefreshReceived(x)
        | Input::NotificationReceived(x, _)
        | Input::MessageError(x, _) => *x == c,
        Input::TimerExpired(Timer::Hold(x) | Timer::Keepalive(x)) => *x == c,
        _ => true,
    };
    if !on_c(input) {
        return (me, None, None);
    }
    match input {
        Input::ManualStop => (S::Idle, Some((c, 6, 2)), None),
        Input::AutomaticStop(_) if up => (S::Idle, Some((c, 6, 1)), None),
        Input::TimerExpired(Timer::Hold(_)) => (S::Idle, Some((c, 4, 0)), None),
        // A second connection from the peer: refused while Established
        // (no graceful restart negotiated here); kept beside an outgoing
        // one; replacing an older incoming one, which gets Cease/7.
        Input::TcpIncoming if up => (me, None, Some(7)),
        Input::TcpIncoming if c == In => (S::OpenSent, Some((In, 6, 7)), None),
        Input::TcpFailed(_) if up => (restart, None, None),
        Input::TcpFailed(_) => (S::Active, None, None),
        Input::OpenReceived(..) if me == S::OpenSent => (S::OpenConfirm, None, None),
        Input::OpenReceived(..) => (S::Idle, Some((c, 5, fsm_sub)), None),
        Input::KeepaliveReceived(_) if me == S::OpenConfirm => (S::Established, None, None),
        Input::KeepaliveReceived(_) | Input::UpdateReceived(_) | Input::RouteRefreshReceived(_)
            if up =>
        {
            (me, None, None)
        }
        Input::KeepaliveReceived(_) | Input::UpdateReceived(_) | Input::RouteRefreshReceived(_) => {
            (S::Idle, Some((c, 5, fsm_sub)), None)
        }
        Input::NotificationReceived(_, n) if n.code == 6 && up => (restart, None, None),
        Input::NotificationReceived(_, n) if n.code == 6 => (S::Active, None, None),
        Input::NotificationReceived(..) => (S::Idle, None, None),
        Input::MessageError(..) => (S::Idle, Some((c, 1, 2)), None),
        _ => (me, None, None),
    }
}

fn sent_notification(out: &[Output]) -> Option<(Conn, u8, u8)> {
    out.iter().find_map(|o| match o {
        Output::SendNotification(c, n) => Some((*c, n.code, n.subcode)),
        _ => None,
    })
}

fn refused(out: &[Output]) -> Option<u8> {
    out.iter().find_map(|o| match o {
        Output::Refuse(n) => Some(n.subcode),
        _ => None,
    })
}

#[test]
fn every_situation_and_input_pair_behaves_as_the_table_says() {
    let t0 = Instant::now();
    // Timer inputs come late enough for any running timer to be due.
    let late = t0 + Duration::from_secs(3600);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for sit in SITS {
        for input in all_inputs() {
            let mut s = session_at(sit, t0);
            let now = match input {
                Input::TimerExpired(_) => late,
                _ => t0,
            };
            let out = s.handle(input.clone(), now);
            let got = (s.state(), sent_notification(&out), refused(&out));
            let want = expected(sit, &input);
            if got != want {
                wrong.push(format!(
                    "{sit:?} + {input:?}: got {got:?}, want {want:?}: {out:?}"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(checked, 11 * 29);
}

// ---- connection handling as BIRD and FRR do it ----

#[test]
fn a_refused_connect_waits_in_active_with_connect_retry_and_no_damping() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t0);
    let t1 = t0 + Duration::from_millis(3);
    let out = s.handle(Input::TcpFailed(Out), t1);
    assert_eq!(s.state(), State::Active);
    assert!(out.contains(&Output::StateChanged {
        from: State::Connect,
        to: State::Active
    }));
    assert_eq!(
        s.timer(Timer::ConnectRetry),
        Some(t1 + Duration::from_secs(5))
    );
    assert_eq!(s.timer(Timer::IdleHold), None);
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn connect_retry_expiry_tries_again_and_refusals_never_back_off() {
    let mut t = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t);
    for _ in 0..10 {
        s.handle(Input::TcpFailed(Out), t);
        let at = s.timer(Timer::ConnectRetry).unwrap();
        assert_eq!(at - t, Duration::from_secs(5));
        t = at;
        let out = s.handle(Input::TimerExpired(Timer::ConnectRetry), t);
        assert!(out.contains(&Output::Connect));
        assert_eq!(s.state(), State::Connect);
    }
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn a_timed_out_connect_is_abandoned_and_retried() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t0);
    let t1 = t0 + Duration::from_secs(5);
    let out = s.handle(Input::TimerExpired(Timer::ConnectRetry), t1);
    assert_eq!(out[..2], [Output::Close(Out), Output::Connect]);
    assert_eq!(
        s.timer(Timer::ConnectRetry),
        Some(t1 + Duration::from_secs(5))
    );
}

#[test]
fn an_incoming_connection_while_we_connect_gets_our_open_at_once() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t0);
    let out = s.handle(Input::TcpIncoming, t0);
    assert_eq!(out[..2], [Output::Accept, Output::SendOpen(In)]);
    // Our own attempt goes on.
    assert_eq!(s.connection(Out), Some(State::Connect));
    assert!(s.timer(Timer::ConnectRetry).is_some());
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn an_incoming_connection_is_accepted_in_active_after_a_refused_connect() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t0);
    s.handle(Input::TcpFailed(Out), t0);
    let out = s.handle(Input::TcpIncoming, t0);
    assert_eq!(out[..2], [Output::Accept, Output::SendOpen(In)]);
    s.handle(Input::OpenReceived(In, peer_open()), t0);
    let out = s.handle(Input::KeepaliveReceived(In), t0);
    assert!(matches!(
        out.last(),
        Some(Output::StateChanged {
            to: State::Established,
            ..
        })
    ));
    assert_eq!(s.established_on(), Some(In));
    assert_eq!(s.timer(Timer::ConnectRetry), None);
}

#[test]
fn the_peers_open_on_its_connection_stops_our_pending_attempt() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t0);
    s.handle(Input::TcpIncoming, t0);
    let out = s.handle(Input::OpenReceived(In, peer_open()), t0);
    assert!(out.contains(&Output::Close(Out)), "{out:?}");
    assert_eq!(s.connection(Out), None);
    assert_eq!(s.timer(Timer::ConnectRetry), None);
    assert_eq!(s.state(), State::OpenConfirm);
}

/// Both connections up with our OPEN sent on each.
fn both_open_sent(local_id: [u8; 4]) -> Session {
    let t0 = Instant::now();
    let mut s = Session::new(config_with_id(PeerMode::Active, local_id));
    s.handle(Input::Start, t0);
    s.handle(Input::TcpIncoming, t0);
    s.handle(Input::TcpConnected, t0);
    assert_eq!(
        (s.connection(Out), s.connection(In)),
        (Some(State::OpenSent), Some(State::OpenSent))
    );
    s
}

#[test]
fn a_collision_waits_until_both_opens_are_known() {
    let t0 = Instant::now();
    let mut s = both_open_sent([10, 0, 0, 1]);
    let out = s.handle(Input::OpenReceived(Out, peer_open()), t0);
    assert_eq!(sent_notification(&out), None);
    assert_eq!(s.connection(In), Some(State::OpenSent));
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn a_collision_keeps_the_connection_of_the_higher_identifier() {
    let t0 = Instant::now();
    // We are 10.0.0.1 < 10.0.0.2: the peer's connection stays.
    let mut s = both_open_sent([10, 0, 0, 1]);
    s.handle(Input::OpenReceived(Out, peer_open()), t0);
    let out = s.handle(Input::OpenReceived(In, peer_open()), t0);
    assert_eq!(sent_notification(&out), Some((Out, 6, 7)));
    assert_eq!(
        (s.connection(Out), s.connection(In)),
        (None, Some(State::OpenConfirm))
    );
    // We are 10.0.0.3 > 10.0.0.2: ours stays.
    let mut s = both_open_sent([10, 0, 0, 3]);
    s.handle(Input::OpenReceived(In, peer_open()), t0);
    let out = s.handle(Input::OpenReceived(Out, peer_open()), t0);
    assert_eq!(sent_notification(&out), Some((In, 6, 7)));
    assert_eq!(s.established_on(), None);
    s.handle(Input::KeepaliveReceived(Out), t0);
    assert_eq!(s.established_on(), Some(Out));
    // Resolving a collision is no error: no damping.
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn established_on_one_connection_closes_the_other_with_cease_7() {
    let t0 = Instant::now();
    let mut s = both_open_sent([10, 0, 0, 1]);
    s.handle(Input::OpenReceived(Out, peer_open()), t0);
    let out = s.handle(Input::KeepaliveReceived(Out), t0);
    assert_eq!(sent_notification(&out), Some((In, 6, 7)));
    assert!(out.iter().any(|o| matches!(o, Output::Established(Out, _))));
    assert_eq!(s.connection(In), None);
}

#[test]
fn a_new_connection_while_established_is_refused_with_cease_7() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let out = s.handle(Input::TcpIncoming, t0);
    assert_eq!(out, vec![Output::Refuse(Notification::cease(7))]);
    assert_eq!(s.state(), State::Established);
}

#[test]
fn a_graceful_restart_peer_that_reconnects_while_established_replaces_the_session() {
    let t0 = Instant::now();
    let mut c = config(PeerMode::Active);
    c.local_open = with_gr(c.local_open);
    let mut s = Session::new(c);
    s.handle(Input::Start, t0);
    s.handle(Input::TcpConnected, t0);
    s.handle(Input::OpenReceived(Out, with_gr(peer_open())), t0);
    s.handle(Input::KeepaliveReceived(Out), t0);
    let out = s.handle(Input::TcpIncoming, t0);
    let want = [
        Output::Close(Out),
        Output::Down(DownReason::PeerRestarted),
        Output::Accept,
        Output::SendOpen(In),
    ];
    assert_eq!(out[..4], want, "{out:?}");
    assert_eq!(s.state(), State::OpenSent);
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn a_second_connection_from_the_peer_replaces_its_first() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::OpenConfirm(In), t0);
    let out = s.handle(Input::TcpIncoming, t0);
    let want = [
        Output::SendNotification(In, Notification::cease(7)),
        Output::Close(In),
        Output::Accept,
        Output::SendOpen(In),
    ];
    assert_eq!(out[..4], want, "{out:?}");
    assert_eq!(s.connection(In), Some(State::OpenSent));
}

#[test]
fn a_malformed_first_message_while_we_connect_is_answered_and_damps() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t0);
    s.handle(Input::TcpIncoming, t0);
    let out = s.handle(Input::MessageError(In, Notification::new(1, 1)), t0);
    assert_eq!(
        out[..4],
        [
            Output::SendNotification(In, Notification::new(1, 1)),
            Output::Close(In),
            Output::Close(Out),
            Output::StateChanged {
                from: State::OpenSent,
                to: State::Idle
            }
        ],
        "{out:?}"
    );
    assert_eq!(s.timer(Timer::IdleHold), Some(t0 + Duration::from_secs(1)));
    // While damped, the peer's connections are refused (RFC 4486 Connection Rejected).
    let out = s.handle(Input::TcpIncoming, t0);
    assert_eq!(out, vec![Output::Refuse(Notification::cease(5))]);
}

#[test]
fn an_update_before_the_open_is_an_fsm_error_in_open_sent() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t0);
    s.handle(Input::TcpIncoming, t0);
    let out = s.handle(Input::UpdateReceived(In), t0);
    assert_eq!(sent_notification(&out), Some((In, 5, 1)));
}

#[test]
fn a_protocol_error_closes_the_sibling_connection_with_a_cease() {
    let t0 = Instant::now();
    let mut s = both_open_sent([10, 0, 0, 1]);
    let out = s.handle(Input::MessageError(In, Notification::new(2, 4)), t0);
    let notes: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::SendNotification(c, n) => Some((*c, n.code, n.subcode)),
            _ => None,
        })
        .collect();
    assert_eq!(notes, [(In, 2, 4), (Out, 6, 0)]);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn errors_damp_with_a_doubling_idle_hold_up_to_the_cap() {
    let mut t = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t);
    let mut waits = Vec::new();
    for _ in 0..6 {
        s.handle(Input::TcpConnected, t);
        s.handle(Input::MessageError(Out, Notification::new(1, 2)), t);
        let at = s.timer(Timer::IdleHold).unwrap();
        waits.push((at - t).as_secs());
        t = at;
        let out = s.handle(Input::TimerExpired(Timer::IdleHold), t);
        assert!(out.contains(&Output::Connect));
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 8, 8]);
}

#[test]
fn a_lost_established_session_reconnects_at_once() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let out = s.handle(Input::TcpFailed(Out), t0);
    assert!(out.contains(&Output::Down(DownReason::ConnectionLost)));
    assert!(out.contains(&Output::Connect));
    assert_eq!(s.state(), State::Connect);
    assert_eq!(s.timer(Timer::IdleHold), None);
}

#[test]
fn a_received_cease_restarts_at_once_and_a_received_error_damps() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let out = s.handle(Input::NotificationReceived(Out, Notification::cease(2)), t0);
    assert!(out.contains(&Output::Connect), "{out:?}");
    assert_eq!(s.connect_retry_counter(), 0);

    let mut s = session_at(Sit::Established(Out), t0);
    s.handle(
        Input::NotificationReceived(Out, Notification::new(3, 1)),
        t0,
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.timer(Timer::IdleHold), Some(t0 + Duration::from_secs(1)));

    // A Cease for a prefix limit would only come again: damped.
    let mut s = session_at(Sit::Established(Out), t0);
    s.handle(Input::NotificationReceived(Out, Notification::cease(1)), t0);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn a_cease_on_one_connection_leaves_the_other_going() {
    let t0 = Instant::now();
    let mut s = both_open_sent([10, 0, 0, 1]);
    let out = s.handle(Input::NotificationReceived(In, Notification::cease(7)), t0);
    assert_eq!(out, vec![Output::Close(In)]);
    assert_eq!(s.connection(Out), Some(State::OpenSent));
}

#[test]
fn a_stable_session_resets_the_backoff() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    s.errors = 5;
    let t1 = t0 + Duration::from_secs(61);
    s.handle(Input::KeepaliveReceived(Out), t1 - Duration::from_secs(1));
    s.handle(Input::MessageError(Out, Notification::new(3, 1)), t1);
    assert_eq!(s.timer(Timer::IdleHold), Some(t1 + Duration::from_secs(1)));
}

#[test]
fn each_state_change_is_reported_once() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    let mut seen = Vec::new();
    for i in [
        Input::Start,
        Input::TcpFailed(Out),
        Input::TcpIncoming,
        Input::OpenReceived(In, peer_open()),
        Input::KeepaliveReceived(In),
    ] {
        for o in s.handle(i, t0) {
            if let Output::StateChanged { from, to } = o {
                seen.push((from, to));
            }
        }
    }
    use State::*;
    assert_eq!(
        seen,
        [
            (Idle, Connect),
            (Connect, Active),
            (Active, OpenSent),
            (OpenSent, OpenConfirm),
            (OpenConfirm, Established)
        ]
    );
}

// ---- one connection's OPEN exchange and timers ----

#[test]
fn start_in_active_mode_connects_and_arms_connect_retry() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    let out = s.handle(Input::Start, t0);
    assert!(out.contains(&Output::Connect));
    assert_eq!(
        s.timer(Timer::ConnectRetry),
        Some(t0 + Duration::from_secs(5))
    );
}

#[test]
fn a_passive_session_never_initiates_a_connection() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Passive));
    let out = s.handle(Input::Start, t0);
    assert_eq!(s.state(), State::Active);
    assert!(!out.contains(&Output::Connect));
    assert_eq!(s.next_timer(), None);
}

#[test]
fn tcp_up_sends_open_and_waits_with_a_large_hold_time() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Connect, t0);
    let out = s.handle(Input::TcpConnected, t0);
    assert!(out.contains(&Output::SendOpen(Out)));
    assert_eq!(s.timer(Timer::Hold(Out)), Some(t0 + LARGE_HOLD_TIME));
    assert_eq!(s.timer(Timer::ConnectRetry), None);
}

#[test]
fn a_valid_open_sends_keepalive_and_arms_negotiated_timers() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::OpenSent(Out), t0);
    let out = s.handle(Input::OpenReceived(Out, peer_open()), t0);
    assert!(out.contains(&Output::SendKeepalive(Out)));
    // min(9, 30) = 9 s hold, 3 s keepalive.
    assert_eq!(s.timer(Timer::Hold(Out)), Some(t0 + Duration::from_secs(9)));
    assert_eq!(
        s.timer(Timer::Keepalive(Out)),
        Some(t0 + Duration::from_secs(3))
    );
}

#[test]
fn an_open_with_hold_time_one_is_refused_with_unacceptable_hold_time() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::OpenSent(Out), t0);
    let out = s.handle(Input::OpenReceived(Out, open(65002, 1, [10, 0, 0, 2])), t0);
    assert_eq!(sent_notification(&out), Some((Out, 2, 6)));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn established_reports_the_negotiated_value_once() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::OpenConfirm(Out), t0);
    let out = s.handle(Input::KeepaliveReceived(Out), t0);
    let est: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Established(c, n) => Some((*c, n.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(est.len(), 1);
    assert_eq!(est[0].0, Out);
    assert_eq!(est[0].1.peer_asn, 65002);
    assert_eq!(est[0].1.hold_time, 9);
    assert_eq!(s.negotiated().map(|n| n.peer_asn), Some(65002));
}

#[test]
fn hold_time_zero_runs_neither_hold_nor_keepalive_timer() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::OpenSent(Out), t0);
    s.handle(Input::OpenReceived(Out, open(65002, 0, [10, 0, 0, 2])), t0);
    s.handle(Input::KeepaliveReceived(Out), t0);
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.next_timer(), None);
}

#[test]
fn keepalive_timer_sends_a_keepalive_and_rearms() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let t1 = t0 + Duration::from_secs(3);
    let out = s.handle(Input::TimerExpired(Timer::Keepalive(Out)), t1);
    assert!(out.contains(&Output::SendKeepalive(Out)));
    assert_eq!(
        s.timer(Timer::Keepalive(Out)),
        Some(t1 + Duration::from_secs(3))
    );
}

#[test]
fn updates_and_keepalives_restart_the_hold_timer() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let t1 = t0 + Duration::from_secs(5);
    s.handle(Input::UpdateReceived(Out), t1);
    assert_eq!(s.timer(Timer::Hold(Out)), Some(t1 + Duration::from_secs(9)));
}

#[test]
fn a_stale_timer_expiry_is_ignored() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    // The hold timer runs until t0 + 9 s; an expiry reported earlier is stale.
    let out = s.handle(
        Input::TimerExpired(Timer::Hold(Out)),
        t0 + Duration::from_secs(1),
    );
    assert!(out.is_empty());
    assert_eq!(s.state(), State::Established);
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_and_restarts_later() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let t1 = t0 + Duration::from_secs(9);
    let out = s.handle(Input::TimerExpired(Timer::Hold(Out)), t1);
    assert_eq!(sent_notification(&out), Some((Out, 4, 0)));
    assert!(out.contains(&Output::Close(Out)));
    assert_eq!(s.timer(Timer::IdleHold), Some(t1 + Duration::from_secs(1)));
}

#[test]
fn manual_stop_sends_cease_and_does_not_restart() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let out = s.handle(Input::ManualStop, t0);
    assert_eq!(sent_notification(&out), Some((Out, 6, 2)));
    assert_eq!(s.next_timer(), None);
    assert_eq!(s.connect_retry_counter(), 0);
    let n = Notification::cease(2);
    assert!(out.contains(&Output::Down(DownReason::NotificationSent(n))));
}

#[test]
fn manual_stop_before_a_connection_sends_nothing() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Connect, t0);
    let out = s.handle(Input::ManualStop, t0);
    assert_eq!(sent_notification(&out), None);
    assert!(out.contains(&Output::Close(Out)));
    assert!(!out.iter().any(|o| matches!(o, Output::Down(_))));
}

#[test]
fn delay_open_waits_for_the_peer_then_answers_its_open() {
    let t0 = Instant::now();
    let mut c = config(PeerMode::Active);
    c.delay_open = Some(Duration::from_secs(2));
    let mut s = Session::new(c);
    s.handle(Input::Start, t0);
    let out = s.handle(Input::TcpConnected, t0);
    assert!(!out.contains(&Output::SendOpen(Out)));
    assert_eq!(
        s.timer(Timer::DelayOpen(Out)),
        Some(t0 + Duration::from_secs(2))
    );
    let out = s.handle(Input::OpenReceived(Out, peer_open()), t0);
    let open_at = out
        .iter()
        .position(|o| *o == Output::SendOpen(Out))
        .unwrap();
    let ka_at = out
        .iter()
        .position(|o| *o == Output::SendKeepalive(Out))
        .unwrap();
    assert!(open_at < ka_at);
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn delay_open_expiry_sends_our_open() {
    let t0 = Instant::now();
    let mut c = config(PeerMode::Active);
    c.delay_open = Some(Duration::from_secs(2));
    let mut s = Session::new(c);
    s.handle(Input::Start, t0);
    s.handle(Input::TcpConnected, t0);
    let out = s.handle(
        Input::TimerExpired(Timer::DelayOpen(Out)),
        t0 + Duration::from_secs(2),
    );
    assert!(out.contains(&Output::SendOpen(Out)));
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn losing_the_connection_in_open_sent_goes_active_and_retries() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::OpenSent(Out), t0);
    s.handle(Input::TcpFailed(Out), t0);
    assert_eq!(s.state(), State::Active);
    let at = s.timer(Timer::ConnectRetry).unwrap();
    let out = s.handle(Input::TimerExpired(Timer::ConnectRetry), at);
    assert!(out.contains(&Output::Connect));
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn a_version_notification_does_not_count_as_an_error() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::OpenSent(Out), t0);
    s.handle(
        Input::NotificationReceived(Out, Notification::with_data(2, 1, vec![0, 4])),
        t0,
    );
    assert_eq!(s.connect_retry_counter(), 0);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn down_reports_the_notification_received() {
    let t0 = Instant::now();
    let mut s = session_at(Sit::Established(Out), t0);
    let n = Notification::new(3, 1);
    let out = s.handle(Input::NotificationReceived(Out, n.clone()), t0);
    assert!(out.contains(&Output::Down(DownReason::NotificationReceived(n))));
    assert!(s.negotiated().is_none());
}
