//! What each event does to the session and its connections (RFC 4271
//! §8.2.2, as read in the module docs of `fsm`).

use super::link::{Link, Phase};
use super::{slot, DownReason, Output, PeerMode, Session, LARGE_HOLD_TIME};
use crate::capability::{negotiate, OpenInfo};
use crate::collision::{resolve, Conn, Speaker};
use crate::notification::{cease_subcode, code, fsm_subcode, open_subcode, Notification};
use crate::timer::Timer;
use std::time::{Duration, Instant};

/// RFC 6608 FSM Error subcode for an unexpected message on a connection in
/// `phase` (0, Unspecific, while our OPEN waits for the DelayOpenTimer).
fn unexpected_in(phase: Phase) -> Notification {
    let sub = match phase {
        Phase::OpenSent => fsm_subcode::UNEXPECTED_IN_OPENSENT,
        Phase::OpenConfirm => fsm_subcode::UNEXPECTED_IN_OPENCONFIRM,
        Phase::Established => fsm_subcode::UNEXPECTED_IN_ESTABLISHED,
        Phase::Connecting | Phase::DelayOpen => 0,
    };
    Notification::new(code::FSM, sub)
}

/// Does a NOTIFICATION from the peer call for damping? A Cease is an
/// orderly close (the peer shuts down, restarts, resolves a collision,
/// rejects us for now), except when it reports a prefix limit or lack of
/// resources, which a retry at once would only hit again.
fn damps(n: &Notification) -> bool {
    n.code != code::CEASE
        || matches!(
            n.subcode,
            cease_subcode::MAX_PREFIXES | cease_subcode::OUT_OF_RESOURCES
        )
}

impl Session {
    pub(super) fn on_start(&mut self, now: Instant) {
        if self.admin_up {
            return;
        }
        // Events 1/4: ManualStart resets the counter.
        self.admin_up = true;
        self.errors = 0;
        self.idle_hold = None;
        self.start_connecting(now);
    }

    pub(super) fn on_manual_stop(&mut self) {
        // Event 2: Cease / Administrative Shutdown on every connection, counter = 0, no restart.
        let n = Notification::cease(cease_subcode::ADMIN_SHUTDOWN);
        self.admin_up = false;
        self.errors = 0;
        self.idle_hold = None;
        self.connect_retry = None;
        self.close_all(Some(&n));
        if self.established_at.take().is_some() {
            self.out.push(Output::Down(DownReason::NotificationSent(n)));
        }
    }

    pub(super) fn on_automatic_stop(&mut self, n: Notification, now: Instant) {
        if let Some(c) = self.established_on() {
            self.error(c, n, now);
        }
    }

    pub(super) fn on_timer(&mut self, t: Timer, now: Instant) {
        match t {
            // §8.2.2 Connect/Active, Event 9: (re)try the outgoing connection.
            Timer::ConnectRetry => self.connect(now),
            // Event 3: AutomaticStart once the damping wait is over.
            Timer::IdleHold => self.start_connecting(now),
            // Event 10: Hold Timer Expired (§6.5).
            Timer::Hold(c) => self.error(c, Notification::hold_timer_expired(), now),
            // Event 11.
            Timer::Keepalive(c) => {
                if self.phase(c) >= Some(Phase::OpenConfirm) {
                    self.out.push(Output::SendKeepalive(c));
                    self.restart_keepalive(c, now);
                }
            }
            // Event 12: our OPEN goes out.
            Timer::DelayOpen(c) => self.send_open(c, now),
        }
    }

    pub(super) fn on_connected(&mut self, now: Instant) {
        match self.phase(Conn::Outgoing) {
            Some(Phase::Connecting) => self.tcp_up(Conn::Outgoing, now),
            // The attempt was abandoned meanwhile: drop the late connection.
            None => self.out.push(Output::Close(Conn::Outgoing)),
            Some(_) => {}
        }
    }

    pub(super) fn on_incoming(&mut self, now: Instant) {
        // Damped or down: RFC 4486 §4, Connection Rejected.
        if !self.admin_up || self.idle_hold.is_some() {
            let n = Notification::cease(cease_subcode::CONNECTION_REJECTED);
            return self.out.push(Output::Refuse(n));
        }
        if let Some(c) = self.established_on() {
            if self
                .negotiated_on(c)
                .is_none_or(|n| n.graceful_restart.is_none())
            {
                // §6.8: a collision with an Established session closes the new connection.
                let n = Notification::cease(cease_subcode::CONNECTION_COLLISION);
                return self.out.push(Output::Refuse(n));
            }
            // RFC 4724 §4.2: a new connection from a peer that negotiated
            // graceful restart means it restarted: the old session ends
            // (its routes kept stale) and the new connection is taken.
            self.close_all(None);
            self.end_session(DownReason::PeerRestarted, now);
        }
        if self.link(Conn::Incoming).is_some() {
            // The peer gave up its previous connection (it restarted, or
            // its side of it died): keep the new one, as FRR does.
            self.notify(
                Conn::Incoming,
                Notification::cease(cease_subcode::CONNECTION_COLLISION),
            );
        }
        self.out.push(Output::Accept);
        self.links[slot(Conn::Incoming)] = Some(Link::new(Phase::Connecting));
        self.tcp_up(Conn::Incoming, now);
    }

    pub(super) fn on_tcp_failed(&mut self, c: Conn, now: Instant) {
        match self.phase(c) {
            None => {}
            Some(Phase::Established) => self.session_lost(DownReason::ConnectionLost, now),
            Some(_) => {
                // §8.2.2 Connect/Active/OpenSent, Event 18: no damping; a
                // failed attempt of ours waits ConnectRetryTime in Active.
                self.close(c);
                if c == Conn::Outgoing && self.wants_connect_retry() {
                    self.connect_retry = Some(now + self.config.connect_retry);
                }
            }
        }
    }

    pub(super) fn on_open(&mut self, c: Conn, open: &OpenInfo, now: Instant) {
        let Some(phase) = self.phase(c) else { return };
        match phase {
            Phase::Connecting => {}
            // Event 20: the peer's OPEN while DelayOpen runs: ours first.
            Phase::DelayOpen => {
                self.stop_timer(Timer::DelayOpen(c));
                self.out.push(Output::SendOpen(c));
                self.accept_open(c, open, now);
            }
            Phase::OpenSent => self.accept_open(c, open, now),
            // A second OPEN: FSM Error (RFC 6608 subcodes 2 and 3).
            Phase::OpenConfirm | Phase::Established => self.error(c, unexpected_in(phase), now),
        }
    }

    pub(super) fn on_keepalive(&mut self, c: Conn, now: Instant) {
        match self.phase(c) {
            None | Some(Phase::Connecting) => {}
            // §8.2.2 OpenConfirm, Event 26: the peer confirmed.
            Some(Phase::OpenConfirm) => self.establish(c, now),
            Some(Phase::Established) => self.restart_hold(c, now),
            Some(p) => self.error(c, unexpected_in(p), now),
        }
    }

    pub(super) fn on_update(&mut self, c: Conn, now: Instant) {
        match self.phase(c) {
            None | Some(Phase::Connecting) => {}
            // §8.2.2 Established, Event 27: restart the HoldTimer.
            Some(Phase::Established) => self.restart_hold(c, now),
            // Events 27-28 before Established: FSM Error (RFC 6608).
            Some(p) => self.error(c, unexpected_in(p), now),
        }
    }

    pub(super) fn on_notification(&mut self, c: Conn, n: Notification, now: Instant) {
        // Only a connection with TCP up carries messages.
        let Some(phase) = self.phase(c).filter(|p| *p != Phase::Connecting) else {
            return;
        };
        self.close(c);
        let reason = DownReason::NotificationReceived(n.clone());
        if !damps(&n) {
            // An orderly close: this connection only (the other one, if
            // any, goes on); an Established session restarts at once.
            if phase == Phase::Established {
                self.session_lost(reason, now);
            }
        } else {
            // Event 24 (version error) leaves the counter alone; Event 25 increments it.
            let version =
                n.code == code::OPEN_MESSAGE && n.subcode == open_subcode::UNSUPPORTED_VERSION;
            self.fail(reason, now, !version);
        }
    }

    // ---- actions ----

    /// Starts the first outgoing attempt (active mode) or waits (passive).
    fn start_connecting(&mut self, now: Instant) {
        if self.config.mode == PeerMode::Active {
            self.connect(now);
        }
    }

    /// Starts an outgoing attempt, abandoning a pending one.
    fn connect(&mut self, now: Instant) {
        match self.phase(Conn::Outgoing) {
            Some(Phase::Connecting) => self.close(Conn::Outgoing),
            Some(_) => return,
            None => {}
        }
        self.out.push(Output::Connect);
        self.links[slot(Conn::Outgoing)] = Some(Link::new(Phase::Connecting));
        self.connect_retry = Some(now + self.config.connect_retry);
    }

    /// TCP is up on `c`: our OPEN now, or after the DelayOpenTimer.
    fn tcp_up(&mut self, c: Conn, now: Instant) {
        match self.config.delay_open {
            Some(d) => {
                if let Some(l) = self.link_mut(c) {
                    l.phase = Phase::DelayOpen;
                    l.timers.delay_open = Some(now + d);
                }
            }
            None => self.send_open(c, now),
        }
    }

    fn send_open(&mut self, c: Conn, now: Instant) {
        let Some(l) = self.link_mut(c) else { return };
        l.phase = Phase::OpenSent;
        l.timers.delay_open = None;
        // §8.2.2: "sets the HoldTimer to a large value" while awaiting the OPEN.
        l.timers.hold = Some(now + LARGE_HOLD_TIME);
        self.out.push(Output::SendOpen(c));
    }

    fn accept_open(&mut self, c: Conn, open: &OpenInfo, now: Instant) {
        let neg = match negotiate(&self.config.local_open, open, &self.config.expect) {
            Ok(neg) => neg,
            Err(n) => return self.error(c, n, now),
        };
        self.out.push(Output::SendKeepalive(c));
        if let Some(l) = self.link_mut(c) {
            l.phase = Phase::OpenConfirm;
            l.timers.hold = None;
            l.negotiated = Some(neg);
        }
        self.restart_hold(c, now);
        self.restart_keepalive(c, now);
        self.resolve_collision(c);
    }

    /// RFC 4271 §6.8, now that `c` has the peer's OPEN.
    fn resolve_collision(&mut self, c: Conn) {
        let o = c.other();
        let dump = Notification::cease(cease_subcode::CONNECTION_COLLISION);
        match self.phase(o) {
            None | Some(Phase::DelayOpen | Phase::OpenSent) => {}
            // The peer's connection made it first: stop our attempt (as BIRD).
            Some(Phase::Connecting) => self.close(o),
            Some(Phase::OpenConfirm) => {
                let Some(neg) = self.negotiated_on(c) else {
                    return;
                };
                let remote = Speaker {
                    router_id: neg.peer_router_id,
                    asn: neg.peer_asn,
                };
                let local = Speaker {
                    router_id: self.config.expect.local_router_id,
                    asn: self.config.local_open.asn(),
                };
                let keep = resolve(local, remote);
                self.notify(keep.other(), dump);
            }
            Some(Phase::Established) => self.notify(c, dump),
        }
    }

    fn establish(&mut self, c: Conn, now: Instant) {
        let Some(l) = self.link_mut(c) else { return };
        l.phase = Phase::Established;
        let neg = l.negotiated.clone();
        self.established_at = Some(now);
        self.restart_hold(c, now);
        // §6.8: the session has one connection from now on.
        let o = c.other();
        match self.link(o).map(Link::tcp_up) {
            Some(true) => self.notify(o, Notification::cease(cease_subcode::CONNECTION_COLLISION)),
            Some(false) => self.close(o),
            None => {}
        }
        if let Some(neg) = neg {
            self.out.push(Output::Established(c, Box::new(neg)));
        }
    }

    fn restart_hold(&mut self, c: Conn, now: Instant) {
        let Some(l) = self.link_mut(c) else { return };
        // A negotiated hold time of 0 disables the HoldTimer (§4.4).
        l.timers.hold = l
            .negotiated
            .as_ref()
            .filter(|n| n.hold_time > 0)
            .map(|n| now + Duration::from_secs(u64::from(n.hold_time)));
    }

    fn restart_keepalive(&mut self, c: Conn, now: Instant) {
        let Some(l) = self.link_mut(c) else { return };
        l.timers.keepalive = l
            .negotiated
            .as_ref()
            .and_then(|n| n.keepalive)
            .map(|k| now + k);
    }

    /// A protocol error on `c`: `n` goes out on it, then the whole session
    /// fails and is damped.
    pub(super) fn error(&mut self, c: Conn, n: Notification, now: Instant) {
        if !self.link(c).is_some_and(Link::tcp_up) {
            return;
        }
        self.notify(c, n.clone());
        self.fail(DownReason::NotificationSent(n), now, true);
    }

    /// Sends `n` on `c` and closes it.
    fn notify(&mut self, c: Conn, n: Notification) {
        if self.link(c).is_some() {
            self.out.push(Output::SendNotification(c, n));
            self.close(c);
        }
    }

    /// Closes `c` (or abandons the attempt) and forgets it.
    fn close(&mut self, c: Conn) {
        if self.links[slot(c)].take().is_some() {
            self.out.push(Output::Close(c));
        }
    }

    /// Closes every connection, sending `n` first on those with TCP up.
    fn close_all(&mut self, n: Option<&Notification>) {
        for c in Conn::BOTH {
            match (self.link(c).map(Link::tcp_up), n) {
                (Some(true), Some(n)) => self.notify(c, n.clone()),
                (Some(_), _) => self.close(c),
                (None, _) => {}
            }
        }
    }

    /// The Established session (if any) is over; a long one resets the counter.
    fn end_session(&mut self, reason: DownReason, now: Instant) {
        if let Some(since) = self.established_at.take() {
            if now.saturating_duration_since(since) >= self.config.stable_after {
                self.errors = 0;
            }
            self.out.push(Output::Down(reason));
        }
    }

    /// Not an error: the session ends (if it was up) and starts over at once.
    fn session_lost(&mut self, reason: DownReason, now: Instant) {
        self.close_all(None);
        self.end_session(reason, now);
        self.connect_retry = None;
        self.start_connecting(now);
    }

    /// A protocol error: every connection closes (Cease on those that
    /// remain, as BIRD), the session ends and waits out the IdleHoldTimer.
    fn fail(&mut self, reason: DownReason, now: Instant, count: bool) {
        self.close_all(Some(&Notification::cease(0)));
        self.end_session(reason, now);
        if count {
            self.errors = self.errors.saturating_add(1);
        }
        self.connect_retry = None;
        self.idle_hold = Some(now + self.idle_hold_time());
    }
}
