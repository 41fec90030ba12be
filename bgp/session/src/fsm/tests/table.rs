//! Every (situation, input) pair against a table.

use super::*;
use Conn::{Incoming as In, Outgoing as Out};

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
