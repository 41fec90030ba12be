//! The session timers (RFC 4271 §8.1.3, §10) as deadlines the FSM owns and
//! the shell sleeps on: two for the session, three per connection.

use crate::collision::Conn;
use std::time::Instant;

/// A session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// ConnectRetryTimer (Event 9): the next outgoing connection attempt.
    ConnectRetry,
    /// IdleHoldTimer (Event 13): the damping wait after a protocol error,
    /// doubled per consecutive error (RFC 4271 §8.1.1, DampPeerOscillations).
    IdleHold,
    /// HoldTimer of one connection (Event 10).
    Hold(Conn),
    /// KeepaliveTimer of one connection (Event 11).
    Keepalive(Conn),
    /// DelayOpenTimer of one connection (Event 12).
    DelayOpen(Conn),
}

impl Timer {
    /// Every timer, in a fixed order.
    pub const ALL: [Timer; 8] = [
        Timer::ConnectRetry,
        Timer::IdleHold,
        Timer::Hold(Conn::Outgoing),
        Timer::Hold(Conn::Incoming),
        Timer::Keepalive(Conn::Outgoing),
        Timer::Keepalive(Conn::Incoming),
        Timer::DelayOpen(Conn::Outgoing),
        Timer::DelayOpen(Conn::Incoming),
    ];
}

/// The three timers of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnTimers {
    pub(crate) hold: Option<Instant>,
    pub(crate) keepalive: Option<Instant>,
    pub(crate) delay_open: Option<Instant>,
}

/// The earliest of some optional deadlines, with its timer.
pub(crate) fn earliest(
    deadlines: impl IntoIterator<Item = (Timer, Option<Instant>)>,
) -> Option<(Timer, Instant)> {
    deadlines
        .into_iter()
        .filter_map(|(t, at)| at.map(|at| (t, at)))
        .min_by_key(|(_, at)| *at)
}
