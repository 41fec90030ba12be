//! One TCP connection of a session as the FSM tracks it: how far its OPEN
//! exchange got, its three timers and, once the peer's OPEN is accepted,
//! the negotiated parameters.

use crate::capability::Negotiated;
use crate::timer::ConnTimers;

/// How far one connection got (RFC 4271 §8.2.2 states of a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Our TCP connect is in progress (outgoing only).
    Connecting,
    /// TCP is up; our OPEN waits for the DelayOpenTimer (§8.1.1).
    DelayOpen,
    /// Our OPEN is sent; the peer's is awaited.
    OpenSent,
    /// Both OPENs are in; the peer's KEEPALIVE is awaited.
    OpenConfirm,
    /// The session runs on this connection.
    Established,
}

/// One connection.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) phase: Phase,
    pub(crate) timers: ConnTimers,
    pub(crate) negotiated: Option<Negotiated>,
}

impl Link {
    /// A connection in `phase` with no timer running.
    pub(crate) fn new(phase: Phase) -> Self {
        Self {
            phase,
            timers: ConnTimers::default(),
            negotiated: None,
        }
    }

    /// TCP is up, so a NOTIFICATION can be sent on it.
    pub(crate) fn tcp_up(&self) -> bool {
        self.phase != Phase::Connecting
    }
}
