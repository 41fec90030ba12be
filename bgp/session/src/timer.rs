//! The session timers (RFC 4271 §8.1.3, §10) as deadlines the FSM owns and
//! the shell sleeps on.

use std::time::Instant;

/// A session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// ConnectRetryTimer (Event 9).
    ConnectRetry,
    /// HoldTimer (Event 10).
    Hold,
    /// KeepaliveTimer (Event 11).
    Keepalive,
    /// DelayOpenTimer (Event 12).
    DelayOpen,
    /// IdleHoldTimer (Event 13): automatic restart after an error, with
    /// exponential backoff (RFC 4271 §8.1.1, DampPeerOscillations).
    IdleHold,
}

impl TimerKind {
    /// All timers, in a fixed order.
    pub const ALL: [TimerKind; 5] = [
        TimerKind::ConnectRetry,
        TimerKind::Hold,
        TimerKind::Keepalive,
        TimerKind::DelayOpen,
        TimerKind::IdleHold,
    ];

    fn index(self) -> usize {
        match self {
            TimerKind::ConnectRetry => 0,
            TimerKind::Hold => 1,
            TimerKind::Keepalive => 2,
            TimerKind::DelayOpen => 3,
            TimerKind::IdleHold => 4,
        }
    }
}

/// The running timers' deadlines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    deadline: [Option<Instant>; 5],
}

impl Timers {
    pub(crate) fn set(&mut self, kind: TimerKind, at: Instant) {
        self.deadline[kind.index()] = Some(at);
    }

    pub(crate) fn stop(&mut self, kind: TimerKind) -> bool {
        self.deadline[kind.index()].take().is_some()
    }

    pub(crate) fn get(&self, kind: TimerKind) -> Option<Instant> {
        self.deadline[kind.index()]
    }

    pub(crate) fn running(&self, kind: TimerKind) -> bool {
        self.get(kind).is_some()
    }

    /// The earliest running timer.
    pub(crate) fn next(&self) -> Option<(TimerKind, Instant)> {
        TimerKind::ALL
            .iter()
            .filter_map(|k| self.get(*k).map(|d| (*k, d)))
            .min_by_key(|(_, d)| *d)
    }
}
