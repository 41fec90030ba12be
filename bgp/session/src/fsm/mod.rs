//! The BGP FSM of one peer (RFC 4271 §8): up to two TCP connections at a
//! time, one per direction (§6.8), each with its own OPEN exchange and
//! timers; `handle(input, now)` returns what to do; no I/O, no clock, no
//! logging.
//!
//! How it behaves, as BIRD and FRR do (each choice a deliberate reading of
//! §8, documented in docs/bgp-speaker.md):
//!
//! * After a refused, failed or timed-out outgoing connect the session waits
//!   in **Active** with the ConnectRetryTimer running (§8.2.2 Connect, Event
//!   18 would go to Idle; BIRD's `bgp_active`, FRR's `bgp_connect_fail` do not).
//! * A connection from the peer is accepted in every state but Idle and
//!   Established, and our OPEN goes out on it at once; our own attempt goes
//!   on meanwhile. When both connections have the peer's OPEN, §6.8 keeps
//!   one and closes the other with Cease / Connection Collision Resolution.
//!   In Established a new connection is refused the same way, unless the
//!   peer negotiated graceful restart: then it restarted, and RFC 4724 §4.2
//!   has us drop the old session and take the new connection (as BIRD).
//! * **Idle** holds only while the session is administratively down or
//!   damped after a protocol error: a NOTIFICATION sent or received (but a
//!   received Cease, an orderly close, unless it reports a prefix limit or
//!   lack of resources), a hold timer expiry, an AutomaticStop. The
//!   IdleHoldTimer then doubles per consecutive error up to a cap
//!   (DampPeerOscillations, §8.1.1, like BIRD's error wait) and resets
//!   after `stable_after` Established; connections arriving meanwhile are
//!   refused with Cease / Connection Rejected (RFC 4486). A lost connection
//!   or an orderly Cease restarts at once, without damping.
//! * A [`PeerMode::Passive`] session never initiates TCP (RFC 4271 would
//!   move it to Connect on ConnectRetry expiry; like BIRD's `passive on`
//!   and calico-node's mesh rule we wait for the peer). Timers carry no
//!   jitter (§10 "should"); the shell may add it.

mod events;
mod link;
#[cfg(test)]
mod tests;

use crate::capability::{Expectation, Negotiated, OpenInfo};
use crate::collision::Conn;
use crate::notification::Notification;
use crate::timer::{earliest, Timer};
use link::{Link, Phase};
use std::fmt;
use std::time::{Duration, Instant};

/// Hold time used while waiting for the peer's OPEN (RFC 4271 §8.2.2: "a large value", 4 minutes suggested).
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

/// RFC 4271 §8.2.2 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Idle (1).
    Idle,
    /// Connect (2).
    Connect,
    /// Active (3).
    Active,
    /// OpenSent (4).
    OpenSent,
    /// OpenConfirm (5).
    OpenConfirm,
    /// Established (6).
    Established,
}

impl State {
    /// The state's number as in the BGP MIB (RFC 4273) and our metrics: Established = 6.
    pub fn number(self) -> u8 {
        match self {
            State::Idle => 1,
            State::Connect => 2,
            State::Active => 3,
            State::OpenSent => 4,
            State::OpenConfirm => 5,
            State::Established => 6,
        }
    }

    /// The RFC 4271 name, e.g. `OpenSent`.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who opens the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMode {
    /// Initiate connections and accept them.
    Active,
    /// Only accept connections (PassiveTcpEstablishment, RFC 4271 §8.1.1).
    Passive,
}

/// Session parameters; the shell builds one per peer.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The OPEN we send.
    pub local_open: OpenInfo,
    /// What we expect of the peer's OPEN.
    pub expect: Expectation,
    /// Active or passive TCP establishment.
    pub mode: PeerMode,
    /// ConnectRetryTime (RFC 4271 §10 suggests 120 s): the wait between
    /// outgoing connection attempts.
    pub connect_retry: Duration,
    /// DelayOpenTime, when the DelayOpen option is on (§8.1.1).
    pub delay_open: Option<Duration>,
    /// First IdleHoldTime after a protocol error.
    pub idle_hold: Duration,
    /// Cap of the exponential IdleHoldTime backoff.
    pub idle_hold_max: Duration,
    /// Established this long resets the backoff.
    pub stable_after: Duration,
}

/// An FSM input: an RFC 4271 §8.1 event, with the connection it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// ManualStart / ManualStart_with_PassiveTcpEstablishment (Events 1, 4).
    Start,
    /// ManualStop (Event 2): Cease / Administrative Shutdown, no restart.
    ManualStop,
    /// AutomaticStop (Event 8) with the NOTIFICATION to send on the
    /// Established connection (e.g. Cease / Maximum Number of Prefixes);
    /// the session restarts after IdleHold.
    AutomaticStop(Notification),
    /// A timer expired (Events 9-13).
    TimerExpired(Timer),
    /// Our outgoing TCP connection is up (Event 16).
    TcpConnected,
    /// The listener accepted a connection from the peer (Events 14, 17):
    /// answered by [`Output::Accept`] or [`Output::Refuse`].
    TcpIncoming,
    /// A connection failed or closed, or our connect failed (Event 18).
    TcpFailed(Conn),
    /// A syntactically valid OPEN arrived (Events 19, 20).
    OpenReceived(Conn, OpenInfo),
    /// A KEEPALIVE arrived (Event 26).
    KeepaliveReceived(Conn),
    /// An UPDATE arrived (Event 27).
    UpdateReceived(Conn),
    /// A ROUTE-REFRESH arrived (RFC 2918; handled like an UPDATE for timers).
    RouteRefreshReceived(Conn),
    /// A NOTIFICATION arrived (Events 24, 25).
    NotificationReceived(Conn, Notification),
    /// A received message was malformed (Events 21, 22, 28): send this.
    MessageError(Conn, Notification),
}

/// Why an Established session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION.
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The TCP connection failed or closed.
    ConnectionLost,
    /// The peer, which negotiated graceful restart, opened a new connection:
    /// it restarted (RFC 4724 §4.2).
    PeerRestarted,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::NotificationSent(n) => write!(f, "sent NOTIFICATION {n}"),
            DownReason::NotificationReceived(n) => write!(f, "received NOTIFICATION {n}"),
            DownReason::ConnectionLost => f.write_str("connection lost"),
            DownReason::PeerRestarted => f.write_str("the peer reconnected (graceful restart)"),
        }
    }
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Initiate a TCP connection to the peer: it becomes [`Conn::Outgoing`].
    Connect,
    /// The connection just reported by [`Input::TcpIncoming`] is kept: it
    /// becomes [`Conn::Incoming`] (any previous one was closed before).
    Accept,
    /// The connection just reported by [`Input::TcpIncoming`] is refused:
    /// send it this NOTIFICATION, then close it.
    Refuse(Notification),
    /// Close this connection, or abandon the outgoing attempt.
    Close(Conn),
    /// Send our OPEN on this connection.
    SendOpen(Conn),
    /// Send a KEEPALIVE on this connection.
    SendKeepalive(Conn),
    /// Send this NOTIFICATION on this connection ([`Output::Close`] follows).
    SendNotification(Conn, Notification),
    /// The session's state (the most advanced connection's) changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session is Established on this connection with these parameters.
    Established(Conn, Box<Negotiated>),
    /// The Established session ended, for this reason.
    Down(DownReason),
}

/// One peer's FSM.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    admin_up: bool,
    /// ConnectRetryCounter (§8.1.1): consecutive protocol errors.
    errors: u32,
    connect_retry: Option<Instant>,
    idle_hold: Option<Instant>,
    links: [Option<Link>; 2],
    established_at: Option<Instant>,
    state: State,
    out: Vec<Output>,
}

fn slot(c: Conn) -> usize {
    match c {
        Conn::Outgoing => 0,
        Conn::Incoming => 1,
    }
}

impl Session {
    /// A session in Idle, administratively down until [`Input::Start`].
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            admin_up: false,
            errors: 0,
            connect_retry: None,
            idle_hold: None,
            links: [None, None],
            established_at: None,
            state: State::Idle,
            out: Vec::new(),
        }
    }

    /// Current state: Idle when down or damped, else that of the most
    /// advanced connection (Connect while our attempt runs, Active when
    /// there is none).
    pub fn state(&self) -> State {
        self.state
    }

    /// The state of one connection, if it exists (Connect for our pending
    /// attempt; Connect or Active while its DelayOpenTimer runs).
    pub fn connection(&self, c: Conn) -> Option<State> {
        self.link(c).map(|l| match l.phase {
            Phase::Connecting => State::Connect,
            Phase::DelayOpen if c == Conn::Outgoing => State::Connect,
            Phase::DelayOpen => State::Active,
            Phase::OpenSent => State::OpenSent,
            Phase::OpenConfirm => State::OpenConfirm,
            Phase::Established => State::Established,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The connection the session is Established on.
    pub fn established_on(&self) -> Option<Conn> {
        Conn::BOTH
            .into_iter()
            .find(|c| self.phase(*c) == Some(Phase::Established))
    }

    /// The negotiated parameters of the Established connection.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.established_on().and_then(|c| self.negotiated_on(c))
    }

    /// The negotiated parameters of one connection (OpenConfirm or Established).
    pub fn negotiated_on(&self, c: Conn) -> Option<&Negotiated> {
        self.link(c)?.negotiated.as_ref()
    }

    /// ConnectRetryCounter (RFC 4271 §8.1.1): protocol errors since the last success.
    pub fn connect_retry_counter(&self) -> u32 {
        self.errors
    }

    /// The earliest running timer: the shell sleeps until then and feeds
    /// [`Input::TimerExpired`].
    pub fn next_timer(&self) -> Option<(Timer, Instant)> {
        earliest(Timer::ALL.into_iter().map(|t| (t, self.timer(t))))
    }

    /// Deadline of one timer, if running.
    pub fn timer(&self, t: Timer) -> Option<Instant> {
        match t {
            Timer::ConnectRetry => self.connect_retry,
            Timer::IdleHold => self.idle_hold,
            Timer::Hold(c) => self.link(c)?.timers.hold,
            Timer::Keepalive(c) => self.link(c)?.timers.keepalive,
            Timer::DelayOpen(c) => self.link(c)?.timers.delay_open,
        }
    }

    /// Feeds one event; returns the actions, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        if let Input::TimerExpired(t) = input {
            // A stale expiry (timer stopped or restarted meanwhile) is no event.
            match self.timer(t) {
                Some(at) if at <= now => self.stop_timer(t),
                _ => return Vec::new(),
            }
        }
        self.dispatch(input, now);
        self.sync_connect_retry(now);
        let to = self.derive_state();
        if to != self.state {
            let from = std::mem::replace(&mut self.state, to);
            self.out.push(Output::StateChanged { from, to });
        }
        std::mem::take(&mut self.out)
    }

    fn dispatch(&mut self, input: Input, now: Instant) {
        match input {
            Input::Start => self.on_start(now),
            Input::ManualStop => self.on_manual_stop(),
            Input::AutomaticStop(n) => self.on_automatic_stop(n, now),
            Input::TimerExpired(t) => self.on_timer(t, now),
            Input::TcpConnected => self.on_connected(now),
            Input::TcpIncoming => self.on_incoming(now),
            Input::TcpFailed(c) => self.on_tcp_failed(c, now),
            Input::OpenReceived(c, open) => self.on_open(c, &open, now),
            Input::KeepaliveReceived(c) => self.on_keepalive(c, now),
            Input::UpdateReceived(c) | Input::RouteRefreshReceived(c) => self.on_update(c, now),
            Input::NotificationReceived(c, n) => self.on_notification(c, n, now),
            Input::MessageError(c, n) => self.error(c, n, now),
        }
    }

    /// The state the session shows (see [`Session::state`]).
    fn derive_state(&self) -> State {
        if !self.admin_up || self.idle_hold.is_some() {
            return State::Idle;
        }
        let top = Conn::BOTH.into_iter().filter_map(|c| self.phase(c)).max();
        match top {
            Some(Phase::Established) => State::Established,
            Some(Phase::OpenConfirm) => State::OpenConfirm,
            Some(Phase::OpenSent) => State::OpenSent,
            _ if self.link(Conn::Outgoing).is_some() => State::Connect,
            _ => State::Active,
        }
    }

    fn link(&self, c: Conn) -> Option<&Link> {
        self.links[slot(c)].as_ref()
    }

    fn link_mut(&mut self, c: Conn) -> Option<&mut Link> {
        self.links[slot(c)].as_mut()
    }

    fn phase(&self, c: Conn) -> Option<Phase> {
        self.link(c).map(|l| l.phase)
    }

    fn stop_timer(&mut self, t: Timer) {
        match t {
            Timer::ConnectRetry => self.connect_retry = None,
            Timer::IdleHold => self.idle_hold = None,
            Timer::Hold(c) => self
                .link_mut(c)
                .into_iter()
                .for_each(|l| l.timers.hold = None),
            Timer::Keepalive(c) => self
                .link_mut(c)
                .into_iter()
                .for_each(|l| l.timers.keepalive = None),
            Timer::DelayOpen(c) => self
                .link_mut(c)
                .into_iter()
                .for_each(|l| l.timers.delay_open = None),
        }
    }

    /// The ConnectRetryTimer runs while an outgoing attempt is wanted: the
    /// session is up, active, not damped, has no outgoing TCP connection and
    /// no connection past OpenSent.
    fn wants_connect_retry(&self) -> bool {
        self.admin_up
            && self.idle_hold.is_none()
            && self.config.mode == PeerMode::Active
            && matches!(self.phase(Conn::Outgoing), None | Some(Phase::Connecting))
            && !Conn::BOTH
                .into_iter()
                .any(|c| self.phase(c) >= Some(Phase::OpenConfirm))
    }

    fn sync_connect_retry(&mut self, now: Instant) {
        match (self.wants_connect_retry(), self.connect_retry) {
            (true, None) => self.connect_retry = Some(now + self.config.connect_retry),
            (false, Some(_)) => self.connect_retry = None,
            _ => {}
        }
    }

    /// IdleHoldTime doubled per consecutive error, capped.
    fn idle_hold_time(&self) -> Duration {
        let doublings = self.errors.saturating_sub(1).min(16);
        self.config
            .idle_hold
            .saturating_mul(1u32 << doublings)
            .min(self.config.idle_hold_max)
    }
}
