//! One connection's OPEN exchange and timers.

use super::*;
use Conn::Outgoing as Out;

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
