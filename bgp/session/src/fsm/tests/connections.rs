//! Connection handling as BIRD and FRR do it.

use super::*;
use Conn::{Incoming as In, Outgoing as Out};

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
