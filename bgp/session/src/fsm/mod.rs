//! The per-connection BGP FSM of RFC 4271 §8: `handle(input, now)` returns
//! what to do; no I/O, no clock, no logging.
//!
//! Deviations, each deliberate: a [`PeerMode::Passive`] session never
//! initiates TCP (RFC 4271 §8.2.2 lets the ConnectRetryTimer move a passive
//! session to Connect; like BIRD's `passive on` and calico-node's mesh rule
//! we wait for the peer instead); timers carry no jitter (§10 "should"), the
//! shell may add it; the ConnectRetryCounter doubles the IdleHoldTimer
//! (DampPeerOscillations, §8.1.1) up to a cap and resets once a session has
//! stayed Established for `stable_after`.

use crate::capability::{negotiate, Expectation, Negotiated, OpenInfo};
use crate::notification::{cease_subcode, code, fsm_subcode, Notification};
use crate::timer::{TimerKind, Timers};
use std::fmt;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

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
    /// ConnectRetryTime (RFC 4271 §10 suggests 120 s).
    pub connect_retry: Duration,
    /// DelayOpenTime, when the DelayOpen option is on (§8.1.1).
    pub delay_open: Option<Duration>,
    /// First IdleHoldTime after an error.
    pub idle_hold: Duration,
    /// Cap of the exponential IdleHoldTime backoff.
    pub idle_hold_max: Duration,
    /// Established this long resets the backoff.
    pub stable_after: Duration,
}

/// An FSM input: an RFC 4271 §8.1 event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// ManualStart / ManualStart_with_PassiveTcpEstablishment (Events 1, 4).
    Start,
    /// ManualStop (Event 2): Cease / Administrative Shutdown, no restart.
    ManualStop,
    /// AutomaticStop (Event 8) with the NOTIFICATION to send (e.g. Cease /
    /// Maximum Number of Prefixes); the session restarts after IdleHold.
    AutomaticStop(Notification),
    /// A timer expired (Events 9-13).
    TimerExpired(TimerKind),
    /// The TCP connection is up, either direction (Events 16, 17).
    TcpConnected,
    /// The TCP connection failed or closed (Event 18).
    TcpFailed,
    /// A valid OPEN arrived (Events 19, 20).
    OpenReceived(OpenInfo),
    /// A KEEPALIVE arrived (Event 26).
    KeepaliveReceived,
    /// An UPDATE arrived (Event 27).
    UpdateReceived,
    /// A ROUTE-REFRESH arrived (RFC 2918; handled like an UPDATE for timers).
    RouteRefreshReceived,
    /// A NOTIFICATION arrived (Events 24, 25).
    NotificationReceived(Notification),
    /// A received message was malformed (Events 21, 22, 28): send this.
    MessageError(Notification),
    /// Collision resolution chose to drop this connection (Event 23, §6.8).
    CollisionDump,
}

/// Why a session left a connected state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION.
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The TCP connection failed or closed.
    ConnectionLost,
    /// An event this state does not expect, with no connection to notify on.
    UnexpectedEvent,
    /// ManualStop before a connection existed.
    Stopped,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::NotificationSent(n) => write!(f, "sent NOTIFICATION {n}"),
            DownReason::NotificationReceived(n) => write!(f, "received NOTIFICATION {n}"),
            DownReason::ConnectionLost => f.write_str("connection lost"),
            DownReason::UnexpectedEvent => f.write_str("unexpected event"),
            DownReason::Stopped => f.write_str("stopped"),
        }
    }
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Initiate a TCP connection to the peer.
    Connect,
    /// Close (or abandon) the TCP connection.
    CloseConnection,
    /// Send our OPEN.
    SendOpen,
    /// Send a KEEPALIVE.
    SendKeepalive,
    /// Send this NOTIFICATION (then the connection is closed).
    SendNotification(Notification),
    /// A timer is (re)started with this deadline.
    TimerSet {
        /// Which timer.
        kind: TimerKind,
        /// When it fires.
        at: Instant,
    },
    /// A timer is stopped.
    TimerStopped(TimerKind),
    /// The state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session is Established with these parameters.
    Established(Box<Negotiated>),
    /// The session went to Idle from a state past Idle, for this reason.
    Down(DownReason),
}

/// One BGP session's FSM.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    timers: Timers,
    connect_retry_counter: u32,
    admin_up: bool,
    negotiated: Option<Negotiated>,
    established_at: Option<Instant>,
    out: Vec<Output>,
}

impl Session {
    /// A session in Idle, administratively down until [`Input::Start`].
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            timers: Timers::default(),
            connect_retry_counter: 0,
            admin_up: false,
            negotiated: None,
            established_at: None,
            out: Vec::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The negotiated parameters while in OpenConfirm or Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// ConnectRetryCounter (RFC 4271 §8.1.1): errors since the last success.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// The earliest running timer: the shell sleeps until then and feeds
    /// [`Input::TimerExpired`].
    pub fn next_timer(&self) -> Option<(TimerKind, Instant)> {
        self.timers.next()
    }

    /// Deadline of one timer, if running.
    pub fn timer(&self, kind: TimerKind) -> Option<Instant> {
        self.timers.get(kind)
    }

    /// Feeds one event; returns the actions, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        if let Input::TimerExpired(kind) = input {
            // A stale expiry (timer stopped or restarted meanwhile) is no event.
            match self.timers.get(kind) {
                Some(at) if at <= now => {
                    self.timers.stop(kind);
                }
                _ => return Vec::new(),
            }
        }
        match self.state {
            State::Idle => self.on_idle(input, now),
            State::Connect | State::Active => self.on_connecting(input, now),
            State::OpenSent => self.on_open_sent(input, now),
            State::OpenConfirm => self.on_open_confirm(input, now),
            State::Established => self.on_established(input, now),
        }
        std::mem::take(&mut self.out)
    }

    // ---- per-state handlers (RFC 4271 §8.2.2) ----

    fn on_idle(&mut self, input: Input, now: Instant) {
        match input {
            // Events 1/4: ManualStart resets the counter.
            Input::Start => {
                self.admin_up = true;
                self.connect_retry_counter = 0;
                self.stop_timer(TimerKind::IdleHold);
                self.start_connecting(now);
            }
            // Event 3: AutomaticStart once the IdleHoldTimer expires.
            Input::TimerExpired(TimerKind::IdleHold) if self.admin_up => {
                self.start_connecting(now);
            }
            // §8.2.2 Idle: a connection attempt while Idle is refused.
            Input::TcpConnected => self.out.push(Output::CloseConnection),
            // "Any other event ... in the Idle state does not cause change in the state."
            _ => {}
        }
    }

    fn on_connecting(&mut self, input: Input, now: Instant) {
        match input {
            Input::Start => {}
            Input::ManualStop => self.stop_manually(now),
            // A passive session never initiates TCP (see the module docs).
            Input::TimerExpired(TimerKind::ConnectRetry)
                if self.config.mode == PeerMode::Passive => {}
            Input::TimerExpired(TimerKind::ConnectRetry) => {
                // §8.2.2 Connect/Active: retry the connection, stay or go to Connect.
                self.stop_timer(TimerKind::DelayOpen);
                self.start_timer(TimerKind::ConnectRetry, now + self.config.connect_retry);
                if self.state == State::Connect {
                    self.out.push(Output::CloseConnection);
                }
                self.out.push(Output::Connect);
                self.set_state(State::Connect);
            }
            Input::TimerExpired(TimerKind::DelayOpen) => self.send_open(now),
            Input::TcpConnected => {
                self.stop_timer(TimerKind::ConnectRetry);
                match self.config.delay_open {
                    Some(d) => self.start_timer(TimerKind::DelayOpen, now + d),
                    None => self.send_open(now),
                }
            }
            Input::TcpFailed if self.timers.running(TimerKind::DelayOpen) => {
                // §8.2.2 Connect, Event 18 with DelayOpenTimer running: back to Active.
                self.stop_timer(TimerKind::DelayOpen);
                self.start_timer(TimerKind::ConnectRetry, now + self.config.connect_retry);
                self.set_state(State::Active);
            }
            Input::OpenReceived(open) if self.timers.running(TimerKind::DelayOpen) => {
                // Event 20: OPEN while DelayOpen runs: send ours, then confirm.
                self.stop_timer(TimerKind::ConnectRetry);
                self.stop_timer(TimerKind::DelayOpen);
                self.out.push(Output::SendOpen);
                self.accept_open(&open, now);
            }
            Input::NotificationReceived(n) if n.code == code::OPEN_MESSAGE && n.subcode == 1 => {
                // Event 24 (version error): no counter increment.
                self.go_idle(DownReason::NotificationReceived(n), now);
            }
            // Events 21/22 can only arrive on a connection (DelayOpen running).
            Input::MessageError(n) if self.connected() => self.notify_and_fail(n, now),
            Input::NotificationReceived(n) => self.fail(DownReason::NotificationReceived(n), now),
            Input::TcpFailed => self.fail(DownReason::ConnectionLost, now),
            // "In response to any other event (Events 8, 10-11, 13, 19, 23,
            // 25-28)": drop the connection, counter + 1, Idle. No NOTIFICATION.
            Input::AutomaticStop(_)
            | Input::MessageError(_)
            | Input::TimerExpired(_)
            | Input::OpenReceived(_)
            | Input::CollisionDump
            | Input::KeepaliveReceived
            | Input::UpdateReceived
            | Input::RouteRefreshReceived => self.fail(DownReason::UnexpectedEvent, now),
        }
    }

    fn on_open_sent(&mut self, input: Input, now: Instant) {
        match input {
            Input::Start => {}
            Input::ManualStop => self.stop_manually(now),
            Input::AutomaticStop(n) | Input::MessageError(n) => self.notify_and_fail(n, now),
            // §8.2.2 OpenSent, Event 10: Hold Timer Expired.
            Input::TimerExpired(TimerKind::Hold) => {
                self.notify_and_fail(Notification::hold_timer_expired(), now)
            }
            // §8.2.2 OpenSent, Event 18: close, restart ConnectRetry, go Active.
            Input::TcpFailed => {
                self.out.push(Output::CloseConnection);
                self.out.push(Output::Down(DownReason::ConnectionLost));
                self.stop_timer(TimerKind::Hold);
                self.start_connect_retry_if_active(now);
                self.set_state(State::Active);
            }
            Input::OpenReceived(open) => {
                self.stop_timer(TimerKind::DelayOpen);
                self.stop_timer(TimerKind::ConnectRetry);
                self.accept_open(&open, now);
            }
            // §6.8: collision resolution drops this connection with Cease/7.
            Input::CollisionDump => self.notify_and_fail(
                Notification::cease(cease_subcode::CONNECTION_COLLISION),
                now,
            ),
            Input::NotificationReceived(n) => self.peer_notified(n, now),
            Input::TcpConnected => self.out.push(Output::CloseConnection),
            // Events 9, 11-13, 20, 25-28: FSM Error (RFC 6608 subcode 1).
            Input::TimerExpired(_)
            | Input::KeepaliveReceived
            | Input::UpdateReceived
            | Input::RouteRefreshReceived => self.notify_and_fail(
                Notification::new(code::FSM, fsm_subcode::UNEXPECTED_IN_OPENSENT),
                now,
            ),
        }
    }

    fn on_open_confirm(&mut self, input: Input, now: Instant) {
        match input {
            Input::Start => {}
            Input::ManualStop => self.stop_manually(now),
            Input::AutomaticStop(n) | Input::MessageError(n) => self.notify_and_fail(n, now),
            Input::TimerExpired(TimerKind::Hold) => {
                self.notify_and_fail(Notification::hold_timer_expired(), now)
            }
            Input::TimerExpired(TimerKind::Keepalive) => self.send_keepalive(now),
            Input::TcpFailed => self.fail(DownReason::ConnectionLost, now),
            Input::NotificationReceived(n) => self.peer_notified(n, now),
            Input::CollisionDump => self.notify_and_fail(
                Notification::cease(cease_subcode::CONNECTION_COLLISION),
                now,
            ),
            // §8.2.2 OpenConfirm, Event 26: the peer confirmed: Established.
            Input::KeepaliveReceived => {
                self.restart_hold(now);
                self.established_at = Some(now);
                self.set_state(State::Established);
                if let Some(n) = &self.negotiated {
                    self.out.push(Output::Established(Box::new(n.clone())));
                }
            }
            Input::TcpConnected => self.out.push(Output::CloseConnection),
            // Events 9, 12-13, 19-20, 27-28: FSM Error (RFC 6608 subcode 2).
            Input::TimerExpired(_)
            | Input::OpenReceived(_)
            | Input::UpdateReceived
            | Input::RouteRefreshReceived => self.notify_and_fail(
                Notification::new(code::FSM, fsm_subcode::UNEXPECTED_IN_OPENCONFIRM),
                now,
            ),
        }
    }

    fn on_established(&mut self, input: Input, now: Instant) {
        match input {
            Input::Start => {}
            Input::ManualStop => self.stop_manually(now),
            Input::AutomaticStop(n) | Input::MessageError(n) => self.notify_and_fail(n, now),
            Input::TimerExpired(TimerKind::Hold) => {
                self.notify_and_fail(Notification::hold_timer_expired(), now)
            }
            Input::TimerExpired(TimerKind::Keepalive) => self.send_keepalive(now),
            // §8.2.2 Established, Events 26/27: restart the HoldTimer.
            Input::KeepaliveReceived | Input::UpdateReceived | Input::RouteRefreshReceived => {
                self.restart_hold(now)
            }
            Input::TcpFailed => self.fail(DownReason::ConnectionLost, now),
            Input::NotificationReceived(n) => self.peer_notified(n, now),
            // §6.8: a collision with an Established session closes the new
            // connection; if told to dump this one anyway, Cease/7.
            Input::CollisionDump => self.notify_and_fail(
                Notification::cease(cease_subcode::CONNECTION_COLLISION),
                now,
            ),
            Input::TcpConnected => self.out.push(Output::CloseConnection),
            // Events 9, 12-13, 20-22 and a second OPEN: FSM Error (RFC 6608 subcode 3).
            Input::TimerExpired(_) | Input::OpenReceived(_) => self.notify_and_fail(
                Notification::new(code::FSM, fsm_subcode::UNEXPECTED_IN_ESTABLISHED),
                now,
            ),
        }
    }

    // ---- actions ----

    fn start_connecting(&mut self, now: Instant) {
        match self.config.mode {
            PeerMode::Active => {
                self.start_timer(TimerKind::ConnectRetry, now + self.config.connect_retry);
                self.out.push(Output::Connect);
                self.set_state(State::Connect);
            }
            PeerMode::Passive => self.set_state(State::Active),
        }
    }

    fn start_connect_retry_if_active(&mut self, now: Instant) {
        if self.config.mode == PeerMode::Active {
            self.start_timer(TimerKind::ConnectRetry, now + self.config.connect_retry);
        }
    }

    fn send_open(&mut self, now: Instant) {
        self.stop_timer(TimerKind::DelayOpen);
        self.stop_timer(TimerKind::ConnectRetry);
        self.out.push(Output::SendOpen);
        // §8.2.2: "sets the HoldTimer to a large value" while awaiting the OPEN.
        self.start_timer(TimerKind::Hold, now + LARGE_HOLD_TIME);
        self.set_state(State::OpenSent);
    }

    fn accept_open(&mut self, open: &OpenInfo, now: Instant) {
        match negotiate(&self.config.local_open, open, &self.config.expect) {
            Err(n) => self.notify_and_fail(n, now),
            Ok(neg) => {
                self.out.push(Output::SendKeepalive);
                self.stop_timer(TimerKind::Hold);
                self.stop_timer(TimerKind::Keepalive);
                self.negotiated = Some(neg);
                self.restart_hold(now);
                self.restart_keepalive(now);
                self.set_state(State::OpenConfirm);
            }
        }
    }

    fn send_keepalive(&mut self, now: Instant) {
        self.out.push(Output::SendKeepalive);
        self.restart_keepalive(now);
    }

    fn restart_hold(&mut self, now: Instant) {
        if let Some(n) = &self.negotiated {
            // A negotiated hold time of 0 disables the HoldTimer (§4.4).
            if n.hold_time > 0 {
                let at = now + Duration::from_secs(u64::from(n.hold_time));
                self.start_timer(TimerKind::Hold, at);
            }
        }
    }

    fn restart_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.negotiated.as_ref().and_then(|n| n.keepalive) {
            self.start_timer(TimerKind::Keepalive, now + ka);
        }
    }

    fn stop_manually(&mut self, now: Instant) {
        // Event 2: Cease / Administrative Shutdown if connected, counter = 0, no restart.
        self.admin_up = false;
        self.connect_retry_counter = 0;
        let reason = if self.connected() {
            let n = Notification::cease(cease_subcode::ADMIN_SHUTDOWN);
            self.out.push(Output::SendNotification(n.clone()));
            DownReason::NotificationSent(n)
        } else {
            DownReason::Stopped
        };
        self.go_idle(reason, now);
    }

    fn notify_and_fail(&mut self, n: Notification, now: Instant) {
        self.out.push(Output::SendNotification(n.clone()));
        self.fail(DownReason::NotificationSent(n), now);
    }

    fn peer_notified(&mut self, n: Notification, now: Instant) {
        // Event 24 (version error) leaves the counter alone; Event 25 increments it.
        if n.code == code::OPEN_MESSAGE && n.subcode == 1 {
            self.go_idle(DownReason::NotificationReceived(n), now);
        } else {
            self.fail(DownReason::NotificationReceived(n), now);
        }
    }

    fn fail(&mut self, reason: DownReason, now: Instant) {
        self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
        self.go_idle(reason, now);
    }

    fn go_idle(&mut self, reason: DownReason, now: Instant) {
        if let Some(since) = self.established_at.take() {
            if now.saturating_duration_since(since) >= self.config.stable_after {
                self.connect_retry_counter = u32::from(self.connect_retry_counter > 0);
            }
        }
        for kind in TimerKind::ALL {
            self.stop_timer(kind);
        }
        self.out.push(Output::CloseConnection);
        self.negotiated = None;
        self.out.push(Output::Down(reason));
        self.set_state(State::Idle);
        if self.admin_up {
            let at = now + self.idle_hold_time();
            self.start_timer(TimerKind::IdleHold, at);
        }
    }

    /// IdleHoldTime doubled per consecutive error, capped.
    fn idle_hold_time(&self) -> Duration {
        let doublings = self.connect_retry_counter.saturating_sub(1).min(16);
        self.config
            .idle_hold
            .saturating_mul(1u32 << doublings)
            .min(self.config.idle_hold_max)
    }

    fn connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) || self.timers.running(TimerKind::DelayOpen)
    }

    fn start_timer(&mut self, kind: TimerKind, at: Instant) {
        self.timers.set(kind, at);
        self.out.push(Output::TimerSet { kind, at });
    }

    fn stop_timer(&mut self, kind: TimerKind) {
        if self.timers.stop(kind) {
            self.out.push(Output::TimerStopped(kind));
        }
    }

    fn set_state(&mut self, to: State) {
        if to != self.state {
            let from = self.state;
            self.state = to;
            self.out.push(Output::StateChanged { from, to });
        }
    }
}
