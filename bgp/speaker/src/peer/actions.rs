//! What a peer run does with FSM outputs and received messages.

use super::conn::{Connection, Origin};
use super::routes::split_update;
use super::{convert, info, now, PeerRun};
use crate::routing::RibMsg;
use crate::SpeakerEvent;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tortie_bgp_session::{
    notification::cease_subcode, resolve_collision, DownReason, Input, Keep, Negotiated,
    Notification, Output, Session, State,
};
use tortie_bgp_wire::{
    encode, DecodeContext, Direction, Family, Message, NotificationMsg, OpenMsg, RouteRefreshMsg,
    RouteRefreshSubtype, UpdateMsg,
};

impl PeerRun<'_> {
    /// Feeds one input and carries out the outputs; an I/O failure while
    /// doing so is fed back as TcpConnectionFails (Event 18).
    pub(super) async fn feed(&mut self, input: Input) {
        let span = tracing::debug_span!("fsm");
        let mut outs = span.in_scope(|| self.fsm.handle(input, now()));
        loop {
            let mut failed = false;
            for o in outs {
                failed |= self.apply(o).await.is_err();
            }
            if !failed {
                return;
            }
            outs = self.fsm.handle(Input::TcpFailed, now());
        }
    }

    async fn apply(&mut self, out: Output) -> std::io::Result<()> {
        match out {
            Output::Connect => {
                let cfg = self.sh.cfg.clone();
                let timeout = cfg.timers.connect_retry();
                self.connecting = Some(Box::pin(async move {
                    crate::transport::connect(&cfg, timeout).await
                }));
            }
            Output::CloseConnection => {
                self.connecting = None;
                if let Some(c) = self.conn.take() {
                    c.close().await;
                }
            }
            Output::SendOpen => {
                let restarting = self.sh.restarting.load(Ordering::Relaxed);
                let m = Message::Open(convert::with_restart_state(&self.local_open, restarting));
                self.send(&m).await?;
            }
            Output::SendKeepalive => self.send(&Message::Keepalive).await?,
            Output::SendNotification(n) => {
                tracing::info!(
                    code = n.code,
                    subcode = n.subcode,
                    "sending NOTIFICATION {n}"
                );
                self.set_error(format!("sent NOTIFICATION {n}"));
                let m = Message::Notification(convert::notification_out(&n));
                // The connection closes next; a failed write changes nothing.
                let _ = self.send(&m).await;
            }
            Output::TimerSet { .. } | Output::TimerStopped(_) => {}
            Output::StateChanged { from, to } => self.on_state(from, to),
            Output::Established(neg) => self.on_established(&neg).await?,
            Output::Down(reason) => self.on_down(&reason),
        }
        Ok(())
    }

    fn on_state(&mut self, from: State, to: State) {
        tracing::info!(from_state = %from, to_state = %to, "state change");
        let mut st = self.sh.status.lock().unwrap_or_else(|e| e.into_inner());
        st.state = to;
        st.since = std::time::SystemTime::now();
        if from == State::Established {
            st.flaps += 1;
        }
    }

    fn on_down(&mut self, reason: &DownReason) {
        if let DownReason::NotificationReceived(n) = reason {
            self.set_error(format!("received NOTIFICATION {n}"));
        }
        if std::mem::take(&mut self.established) {
            tracing::info!(reason = %reason, "session down");
            let _ = self.sh.rib_tx.send(RibMsg::Down {
                peer: self.peer(),
                epoch: self.sh.epoch,
                kind: info::down_kind(reason),
            });
            self.rib_in.clear();
            {
                let mut st = self.sh.status.lock().unwrap_or_else(|e| e.into_inner());
                st.prefixes_received = 0;
                st.prefixes_sent = 0;
            }
            let _ = self.sh.events_tx.send(SpeakerEvent::PeerDown {
                peer: self.peer(),
                reason: reason.to_string(),
            });
        }
        self.ctx_rx = DecodeContext::default();
        self.ctx_tx = DecodeContext::default();
    }

    async fn on_established(&mut self, neg: &Negotiated) -> std::io::Result<()> {
        self.established = true;
        self.sh
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error = None;
        let _ = self.sh.events_tx.send(SpeakerEvent::PeerUp {
            peer: self.peer(),
            negotiated: Arc::new(neg.clone()),
        });
        // The RIB sends the initial table, then End-of-RIB per family
        // (RFC 4271 §9.4, RFC 4724 §2), through `PeerCmd::Send`.
        self.sh.epoch = self.sh.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        let local = self
            .conn
            .as_ref()
            .and_then(|c| c.local_addr().ok())
            .map(|a| a.ip());
        let info = info::peer_info(&self.sh.cfg, self.sh.local_asn, neg, local);
        let _ = self.sh.rib_tx.send(RibMsg::Up {
            epoch: self.sh.epoch,
            info: Box::new(info),
            ctx_tx: self.ctx_tx.clone(),
        });
        Ok(())
    }

    pub(super) async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let updates = count_messages(buf);
        let limit = self.write_limit();
        match self.conn.as_mut() {
            Some(c) => {
                timed(limit, c.write(buf)).await?;
                self.sh
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sent
                    .update += updates;
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        let mut buf = Vec::new();
        encode(msg, &self.ctx_tx, &mut buf).map_err(std::io::Error::other)?;
        tracing::trace!(target: "bgp::packet", peer = %self.peer(), ?msg, "tx");
        let limit = self.write_limit();
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        timed(limit, c.write(&buf)).await?;
        let mut st = self.sh.status.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut st.sent, msg);
        Ok(())
    }

    pub(super) async fn handle_message(&mut self, msg: Message) {
        tracing::trace!(target: "bgp::packet", peer = %self.peer(), ?msg, "rx");
        count(
            &mut self
                .sh
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .received,
            &msg,
        );
        match msg {
            Message::Open(o) => {
                self.set_contexts(&o);
                self.feed(Input::OpenReceived(convert::open_info(&o))).await;
            }
            Message::Keepalive => self.feed(Input::KeepaliveReceived).await,
            Message::Notification(n) => {
                let n = convert::notification_in(&n);
                tracing::info!(
                    code = n.code,
                    subcode = n.subcode,
                    "received NOTIFICATION {n}"
                );
                self.feed(Input::NotificationReceived(n)).await;
            }
            Message::Update(u) => {
                self.feed(Input::UpdateReceived).await;
                if self.established {
                    self.handle_update(u).await;
                }
            }
            Message::RouteRefresh(rr) => {
                self.feed(Input::RouteRefreshReceived).await;
                // RFC 2918 §4: the RIB re-advertises that family's Adj-RIB-Out.
                if self.established && rr.subtype == RouteRefreshSubtype::Normal {
                    let _ = self.sh.rib_tx.send(RibMsg::Refresh {
                        peer: self.peer(),
                        epoch: self.sh.epoch,
                        family: rr.family,
                    });
                }
            }
        }
    }

    /// RFC 2918 §3: a ROUTE-REFRESH (normal subtype) per negotiated family,
    /// when the peer advertised the capability; otherwise only a warning —
    /// routes refused under the old import rules were not kept, so they
    /// stay missing until the peer re-sends them or the session restarts.
    pub(super) async fn request_refresh(&mut self) {
        let Some(neg) = self.fsm.negotiated().cloned() else {
            return;
        };
        if !neg.route_refresh {
            tracing::warn!(
                "import rules changed but the peer does not support ROUTE-REFRESH: \
                 routes refused before were not kept and stay missing until the \
                 session restarts"
            );
            return;
        }
        for f in &neg.families {
            let family = convert::family_to_wire(*f);
            tracing::info!(%family, "import rules changed: sending ROUTE-REFRESH");
            let m = Message::RouteRefresh(RouteRefreshMsg::request(family));
            if self.send(&m).await.is_err() {
                self.feed(Input::TcpFailed).await;
                return;
            }
        }
    }

    fn set_contexts(&mut self, remote: &OpenMsg) {
        let l = &self.local_open.capabilities;
        self.ctx_rx = DecodeContext::negotiated(l, &remote.capabilities, Direction::Receive);
        self.ctx_tx = DecodeContext::negotiated(l, &remote.capabilities, Direction::Send);
    }

    async fn handle_update(&mut self, u: UpdateMsg) {
        let eor = u.end_of_rib_family();
        let legacy = self.sh.route_events || self.sh.cfg.max_prefixes.is_some();
        let exceeded = match (eor, legacy) {
            (None, true) => self.legacy_rib_in(&u),
            _ => false,
        };
        let max_family = u.attributes.mp_reach.as_ref().map(|r| r.family);
        let _ = self.sh.rib_tx.send(RibMsg::Update {
            peer: self.peer(),
            epoch: self.sh.epoch,
            msg: Box::new(u),
        });
        if let Some(family) = eor {
            let _ = self.sh.events_tx.send(SpeakerEvent::EndOfRib {
                peer: self.peer(),
                family,
            });
        }
        if exceeded {
            self.max_prefixes_exceeded(max_family.unwrap_or(Family::IPV4_UNICAST))
                .await;
        }
    }

    /// Updates the plain Adj-RIB-In and sends `Routes` events; true when
    /// the peer is now over its prefix limit.
    fn legacy_rib_in(&mut self, u: &UpdateMsg) -> bool {
        let mut events = Vec::new();
        for (family, change) in split_update(u, self.sh.local_asn) {
            for n in &change.withdrawn {
                self.rib_in.remove(family, n);
            }
            for (n, p) in &change.announced {
                self.rib_in.insert(family, *n, p.clone());
            }
            events.push(SpeakerEvent::Routes {
                peer: self.peer(),
                family,
                announced: change.announced,
                withdrawn: change.withdrawn,
            });
        }
        // The count first: an owner reading the status on the event sees it.
        let have = self.rib_in.len() as u64;
        self.sh
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .prefixes_received = have;
        if self.sh.route_events {
            for ev in events {
                let _ = self.sh.events_tx.send(ev);
            }
        }
        self.sh
            .cfg
            .max_prefixes
            .is_some_and(|max| have > u64::from(max))
    }

    /// RFC 4486 §4: Cease / Maximum Number of Prefixes Reached, data = AFI,
    /// SAFI, upper bound.
    async fn max_prefixes_exceeded(&mut self, f: Family) {
        let max = self.sh.cfg.max_prefixes.unwrap_or(0);
        let mut data = f.afi.code().to_be_bytes().to_vec();
        data.push(f.safi.code());
        data.extend_from_slice(&max.to_be_bytes());
        let n = Notification::with_data(6, cease_subcode::MAX_PREFIXES, data);
        self.feed(Input::AutomaticStop(n)).await;
    }

    /// RFC 4271 §6.8 once the colliding connection's OPEN is in.
    pub(super) async fn handle_collision(&mut self, conn: Connection, open: OpenMsg) {
        let current_local = self.conn.as_ref().map(|c| c.origin) == Some(Origin::Local);
        match self.fsm.state() {
            State::Established => self.refuse_collision(conn).await,
            State::OpenSent | State::OpenConfirm => {
                let keep = resolve_collision(self.sh.router_id, open.bgp_id);
                if keep == Keep::RemotelyInitiated && current_local {
                    tracing::info!("connection collision: keeping the peer's connection");
                    self.feed(Input::CollisionDump).await;
                    self.adopt(conn, open).await;
                } else {
                    tracing::info!("connection collision: keeping our connection");
                    self.refuse_collision(conn).await;
                }
            }
            State::Idle | State::Connect | State::Active => self.adopt(conn, open).await,
        }
    }

    /// Closes a colliding connection with Cease / Connection Collision Resolution.
    pub(super) async fn refuse_collision(&mut self, mut conn: Connection) {
        let n = NotificationMsg::cease(cease_subcode::CONNECTION_COLLISION);
        let mut buf = Vec::new();
        if encode(
            &Message::Notification(n),
            &DecodeContext::default(),
            &mut buf,
        )
        .is_ok()
        {
            let _ = conn.write(&buf).await;
        }
        conn.close().await;
    }

    /// Continues on a new connection whose OPEN was already read: a fresh
    /// FSM (one per connection, RFC 4271 §8) started on it.
    async fn adopt(&mut self, conn: Connection, open: OpenMsg) {
        self.fsm = Session::new(self.fsm.config().clone());
        let outs = self.fsm.handle(Input::Start, now());
        for o in outs.into_iter().filter(|o| *o != Output::Connect) {
            let _ = self.apply(o).await;
        }
        self.connecting = None;
        self.conn = Some(conn);
        self.feed(Input::TcpConnected).await;
        self.set_contexts(&open);
        self.feed(Input::OpenReceived(convert::open_info(&open)))
            .await;
    }
}

/// A write that takes longer than this means a peer that stopped reading:
/// the negotiated hold time (RFC 4271 §4.4 spirit), else the 4-minute one.
impl PeerRun<'_> {
    fn write_limit(&self) -> std::time::Duration {
        match self.fsm.negotiated().map(|n| n.hold_time) {
            Some(h) if h > 0 => std::time::Duration::from_secs(u64::from(h)),
            _ => tortie_bgp_session::fsm::LARGE_HOLD_TIME,
        }
    }
}

async fn timed(
    limit: std::time::Duration,
    f: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "peer stopped reading"))?
}

fn count(c: &mut crate::status::MessageCounters, m: &Message) {
    match m {
        Message::Open(_) => c.open += 1,
        Message::Update(_) => c.update += 1,
        Message::Notification(_) => c.notification += 1,
        Message::Keepalive => c.keepalive += 1,
        Message::RouteRefresh(_) => c.route_refresh += 1,
    }
}

/// Messages in an encoded buffer (walks the length fields).
fn count_messages(buf: &[u8]) -> u64 {
    let mut n = 0;
    let mut at = 0;
    while let Some(len) = buf.get(at + 16..at + 18) {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len == 0 {
            break;
        }
        at += len;
        n += 1;
    }
    n
}
