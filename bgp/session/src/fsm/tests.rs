//! One test per (state, input) pair via a table, plus behaviours by name.

use super::*;
use crate::capability::{Capabilities, Family};
use std::net::Ipv4Addr;

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
    SessionConfig {
        local_open: open(65001, 9, [10, 0, 0, 1]),
        expect: Expectation {
            peer_asn: 65002,
            local_router_id: Ipv4Addr::new(10, 0, 0, 1),
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

fn peer_open() -> OpenInfo {
    open(65002, 30, [10, 0, 0, 2])
}

/// A session brought into `state` (Active via a passive config).
fn session_in(state: State, t0: Instant) -> Session {
    let mode = if state == State::Active {
        PeerMode::Passive
    } else {
        PeerMode::Active
    };
    let mut s = Session::new(config(mode));
    let steps: &[Input] = match state {
        State::Idle => &[],
        State::Connect | State::Active => &[Input::Start],
        State::OpenSent => &[Input::Start, Input::TcpConnected],
        State::OpenConfirm => &[
            Input::Start,
            Input::TcpConnected,
            Input::OpenReceived(peer_open()),
        ],
        State::Established => &[
            Input::Start,
            Input::TcpConnected,
            Input::OpenReceived(peer_open()),
            Input::KeepaliveReceived,
        ],
    };
    for i in steps {
        s.handle(i.clone(), t0);
    }
    assert_eq!(s.state(), state);
    s
}

fn all_inputs() -> Vec<(&'static str, Input)> {
    let mut v = vec![
        ("Start", Input::Start),
        ("ManualStop", Input::ManualStop),
        (
            "AutomaticStop",
            Input::AutomaticStop(Notification::cease(1)),
        ),
    ];
    for k in TimerKind::ALL {
        v.push(("TimerExpired", Input::TimerExpired(k)));
    }
    v.extend([
        ("TcpConnected", Input::TcpConnected),
        ("TcpFailed", Input::TcpFailed),
        ("OpenReceived", Input::OpenReceived(peer_open())),
        ("KeepaliveReceived", Input::KeepaliveReceived),
        ("UpdateReceived", Input::UpdateReceived),
        ("RouteRefreshReceived", Input::RouteRefreshReceived),
        (
            "NotificationReceived",
            Input::NotificationReceived(Notification::cease(2)),
        ),
        ("MessageError", Input::MessageError(Notification::new(1, 2))),
        ("CollisionDump", Input::CollisionDump),
    ]);
    v
}

/// The expected next state and NOTIFICATION sent (code, subcode) for a pair.
fn expected(state: State, input: &Input) -> (State, Option<(u8, u8)>) {
    use State::*;
    use TimerKind as T;
    let fsm_sub = match state {
        OpenSent => 1,
        OpenConfirm => 2,
        _ => 3,
    };
    match (state, input) {
        (Idle, Input::Start) => (Connect, None),
        (Idle, _) => (Idle, None),
        (Connect | Active, Input::Start) => (state, None),
        (Connect, Input::TimerExpired(T::ConnectRetry)) => (Connect, None),
        (Active, Input::TimerExpired(T::ConnectRetry)) => (Active, None),
        (Connect | Active, Input::TimerExpired(T::DelayOpen)) => (OpenSent, None),
        (Connect | Active, Input::TcpConnected) => (OpenSent, None),
        (Connect | Active, _) => (Idle, None),
        (_, Input::Start | Input::TcpConnected) => (state, None),
        (_, Input::ManualStop) => (Idle, Some((6, 2))),
        (_, Input::AutomaticStop(_)) => (Idle, Some((6, 1))),
        (_, Input::TimerExpired(T::Hold)) => (Idle, Some((4, 0))),
        (_, Input::MessageError(_)) => (Idle, Some((1, 2))),
        (_, Input::CollisionDump) => (Idle, Some((6, 7))),
        (_, Input::NotificationReceived(_)) => (Idle, None),
        (OpenSent, Input::TcpFailed) => (Active, None),
        (_, Input::TcpFailed) => (Idle, None),
        (OpenSent, Input::OpenReceived(_)) => (OpenConfirm, None),
        (OpenConfirm, Input::KeepaliveReceived) => (Established, None),
        (OpenConfirm | Established, Input::TimerExpired(T::Keepalive)) => (state, None),
        (
            Established,
            Input::KeepaliveReceived | Input::UpdateReceived | Input::RouteRefreshReceived,
        ) => (Established, None),
        _ => (Idle, Some((5, fsm_sub))),
    }
}

fn sent_notification(out: &[Output]) -> Option<(u8, u8)> {
    out.iter().find_map(|o| match o {
        Output::SendNotification(n) => Some((n.code, n.subcode)),
        _ => None,
    })
}

#[test]
fn every_state_and_input_pair_behaves_as_rfc_4271_section_8_says() {
    let t0 = Instant::now();
    let states = [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ];
    let mut checked = 0;
    for state in states {
        for (name, input) in all_inputs() {
            let mut s = session_in(state, t0);
            // Make the expiring timer a running, due one so the event is real.
            if let Input::TimerExpired(k) = input {
                s.timers.set(k, t0);
            }
            let out = s.handle(input.clone(), t0);
            let (want_state, want_notif) = expected(state, &input);
            assert_eq!(
                (s.state(), sent_notification(&out)),
                (want_state, want_notif),
                "{state} + {name} {input:?}: outputs {out:#?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 17);
}

#[test]
fn start_in_active_mode_connects_and_arms_connect_retry() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    let out = s.handle(Input::Start, t0);
    assert!(out.contains(&Output::Connect));
    assert_eq!(
        s.timer(TimerKind::ConnectRetry),
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
    let mut s = session_in(State::Connect, t0);
    let out = s.handle(Input::TcpConnected, t0);
    assert!(out.contains(&Output::SendOpen));
    assert_eq!(s.timer(TimerKind::Hold), Some(t0 + LARGE_HOLD_TIME));
    assert_eq!(s.timer(TimerKind::ConnectRetry), None);
}

#[test]
fn a_valid_open_sends_keepalive_and_arms_negotiated_timers() {
    let t0 = Instant::now();
    let mut s = session_in(State::OpenSent, t0);
    let out = s.handle(Input::OpenReceived(peer_open()), t0);
    assert!(out.contains(&Output::SendKeepalive));
    // min(9, 30) = 9 s hold, 3 s keepalive.
    assert_eq!(s.timer(TimerKind::Hold), Some(t0 + Duration::from_secs(9)));
    assert_eq!(
        s.timer(TimerKind::Keepalive),
        Some(t0 + Duration::from_secs(3))
    );
}

#[test]
fn an_open_with_hold_time_one_is_refused_with_unacceptable_hold_time() {
    let t0 = Instant::now();
    let mut s = session_in(State::OpenSent, t0);
    let out = s.handle(Input::OpenReceived(open(65002, 1, [10, 0, 0, 2])), t0);
    assert_eq!(sent_notification(&out), Some((2, 6)));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn established_reports_the_negotiated_value_once() {
    let t0 = Instant::now();
    let mut s = session_in(State::OpenConfirm, t0);
    let out = s.handle(Input::KeepaliveReceived, t0);
    let est: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Established(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(est.len(), 1);
    assert_eq!(est[0].peer_asn, 65002);
    assert_eq!(est[0].hold_time, 9);
}

#[test]
fn hold_time_zero_runs_neither_hold_nor_keepalive_timer() {
    let t0 = Instant::now();
    let mut s = session_in(State::OpenSent, t0);
    s.handle(Input::OpenReceived(open(65002, 0, [10, 0, 0, 2])), t0);
    s.handle(Input::KeepaliveReceived, t0);
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.next_timer(), None);
}

#[test]
fn keepalive_timer_sends_a_keepalive_and_rearms() {
    let t0 = Instant::now();
    let mut s = session_in(State::Established, t0);
    let t1 = t0 + Duration::from_secs(3);
    let out = s.handle(Input::TimerExpired(TimerKind::Keepalive), t1);
    assert!(out.contains(&Output::SendKeepalive));
    assert_eq!(
        s.timer(TimerKind::Keepalive),
        Some(t1 + Duration::from_secs(3))
    );
}

#[test]
fn updates_and_keepalives_restart_the_hold_timer() {
    let t0 = Instant::now();
    let mut s = session_in(State::Established, t0);
    let t1 = t0 + Duration::from_secs(5);
    s.handle(Input::UpdateReceived, t1);
    assert_eq!(s.timer(TimerKind::Hold), Some(t1 + Duration::from_secs(9)));
}

#[test]
fn a_stale_timer_expiry_is_ignored() {
    let t0 = Instant::now();
    let mut s = session_in(State::Established, t0);
    // The hold timer runs until t0 + 9 s; an expiry reported earlier is stale.
    let out = s.handle(
        Input::TimerExpired(TimerKind::Hold),
        t0 + Duration::from_secs(1),
    );
    assert!(out.is_empty());
    assert_eq!(s.state(), State::Established);
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_and_restarts_later() {
    let t0 = Instant::now();
    let mut s = session_in(State::Established, t0);
    let t1 = t0 + Duration::from_secs(9);
    let out = s.handle(Input::TimerExpired(TimerKind::Hold), t1);
    assert_eq!(sent_notification(&out), Some((4, 0)));
    assert!(out.contains(&Output::CloseConnection));
    assert_eq!(
        s.timer(TimerKind::IdleHold),
        Some(t1 + Duration::from_secs(1))
    );
}

#[test]
fn idle_hold_doubles_per_consecutive_error_up_to_the_cap() {
    let mut t = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    s.handle(Input::Start, t);
    let mut waits = Vec::new();
    for _ in 0..6 {
        s.handle(Input::TcpFailed, t);
        let at = s.timer(TimerKind::IdleHold).unwrap();
        waits.push((at - t).as_secs());
        t = at;
        let out = s.handle(Input::TimerExpired(TimerKind::IdleHold), t);
        assert!(out.contains(&Output::Connect));
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 8, 8]);
}

#[test]
fn a_stable_session_resets_the_backoff() {
    let t0 = Instant::now();
    let mut s = session_in(State::Established, t0);
    s.connect_retry_counter = 5;
    let t1 = t0 + Duration::from_secs(61);
    s.handle(Input::KeepaliveReceived, t1 - Duration::from_secs(1));
    s.handle(Input::TcpFailed, t1);
    assert_eq!(
        s.timer(TimerKind::IdleHold),
        Some(t1 + Duration::from_secs(1))
    );
}

#[test]
fn manual_stop_sends_cease_and_does_not_restart() {
    let t0 = Instant::now();
    let mut s = session_in(State::Established, t0);
    let out = s.handle(Input::ManualStop, t0);
    assert_eq!(sent_notification(&out), Some((6, 2)));
    assert_eq!(s.next_timer(), None);
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn manual_stop_before_a_connection_sends_nothing() {
    let t0 = Instant::now();
    let mut s = session_in(State::Connect, t0);
    let out = s.handle(Input::ManualStop, t0);
    assert_eq!(sent_notification(&out), None);
    assert!(out.contains(&Output::Down(DownReason::Stopped)));
}

#[test]
fn idle_refuses_an_incoming_connection() {
    let t0 = Instant::now();
    let mut s = Session::new(config(PeerMode::Active));
    assert_eq!(
        s.handle(Input::TcpConnected, t0),
        vec![Output::CloseConnection]
    );
}

#[test]
fn delay_open_waits_for_the_peer_then_answers_its_open() {
    let t0 = Instant::now();
    let mut c = config(PeerMode::Active);
    c.delay_open = Some(Duration::from_secs(2));
    let mut s = Session::new(c);
    s.handle(Input::Start, t0);
    let out = s.handle(Input::TcpConnected, t0);
    assert!(!out.contains(&Output::SendOpen));
    assert_eq!(
        s.timer(TimerKind::DelayOpen),
        Some(t0 + Duration::from_secs(2))
    );
    let out = s.handle(Input::OpenReceived(peer_open()), t0);
    let open_at = out.iter().position(|o| *o == Output::SendOpen).unwrap();
    let ka_at = out
        .iter()
        .position(|o| *o == Output::SendKeepalive)
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
        Input::TimerExpired(TimerKind::DelayOpen),
        t0 + Duration::from_secs(2),
    );
    assert!(out.contains(&Output::SendOpen));
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn losing_the_connection_in_open_sent_goes_active_and_retries() {
    let t0 = Instant::now();
    let mut s = session_in(State::OpenSent, t0);
    s.handle(Input::TcpFailed, t0);
    assert_eq!(s.state(), State::Active);
    let at = s.timer(TimerKind::ConnectRetry).unwrap();
    let out = s.handle(Input::TimerExpired(TimerKind::ConnectRetry), at);
    assert!(out.contains(&Output::Connect));
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn a_version_notification_does_not_count_as_an_error() {
    let t0 = Instant::now();
    let mut s = session_in(State::OpenSent, t0);
    s.handle(
        Input::NotificationReceived(Notification::with_data(2, 1, vec![0, 4])),
        t0,
    );
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn down_reports_the_notification_received() {
    let t0 = Instant::now();
    let mut s = session_in(State::Established, t0);
    let n = Notification::cease(2);
    let out = s.handle(Input::NotificationReceived(n.clone()), t0);
    assert!(out.contains(&Output::Down(DownReason::NotificationReceived(n))));
    assert!(s.negotiated().is_none());
}
