//! What a peer run does with FSM outputs and received messages.

use super::conn::Connection;
use super::routes::split_update;
use super::{convert, info, now, PeerRun};
use crate::routing::RibMsg;
use crate::SpeakerEvent;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tortie_bgp_session::{
    notification::cease_subcode, Conn, DownReason, Input, Negotiated, Notification, Output, State,
};
use tortie_bgp_wire::{
    encode, DecodeContext, Family, Message, RouteRefreshMsg, RouteRefreshSubtype, UpdateMsg,
};

/// A write failed on this connection (slot and [`Connection::id`]).
type Failed = (Conn, u64);

impl PeerRun<'_> {
    /// Feeds one input and carries out the outputs; an I/O failure while
    /// doing so is fed back as TcpConnectionFails (Event 18) of that
    /// connection, if it is still the one in its slot.
    pub(super) async fn feed(&mut self, input: Input) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let span = tracing::debug_span!("fsm");
            let outs = span.in_scope(|| self.fsm.handle(input, now()));
            let mut failed: Vec<Failed> = Vec::new();
            for o in outs {
                if let Err(f) = self.apply(o, &failed).await {
                    failed.push(f);
                }
            }
            for (c, id) in failed {
                if self.conn_mut(c).as_ref().is_some_and(|x| x.id == id) {
                    queue.push_back(Input::TcpFailed(c));
                }
            }
        }
    }

    async fn apply(&mut self, out: Output, failed: &[Failed]) -> Result<(), Failed> {
        let skip = |c: Conn, x: &Option<Connection>| {
            x.as_ref().is_some_and(|x| failed.contains(&(c, x.id)))
        };
        match out {
            Output::Connect => {
                let cfg = self.sh.cfg.clone();
                // The FSM's ConnectRetryTimer abandons a hanging attempt and
                // starts the next (RFC 4271 §8.2.2 Connect, Event 9); this
                // bound only backs it up.
                let timeout = cfg.timers.connect_retry() + std::time::Duration::from_secs(1);
                self.connecting = Some(Box::pin(async move {
                    crate::transport::connect(&cfg, timeout).await
                }));
            }
            Output::Accept => *self.conn_mut(Conn::Incoming) = self.offered.take(),
            Output::Refuse(n) => {
                if let Some(conn) = self.offered.take() {
                    tracing::debug!(
                        code = n.code,
                        subcode = n.subcode,
                        "refusing a connection: {n}"
                    );
                    refuse(conn, &n).await;
                    let mut st = self.sh.status.lock().unwrap_or_else(|e| e.into_inner());
                    st.sent.notification += 1;
                }
            }
            Output::Close(c) => {
                if c == Conn::Outgoing {
                    self.connecting = None;
                }
                if let Some(conn) = self.conn_mut(c).take() {
                    conn.close().await;
                }
            }
            Output::SendOpen(c) if !skip(c, self.conn_mut(c)) => {
                let restarting = self.sh.restarting.load(Ordering::Relaxed);
                let m = Message::Open(convert::with_restart_state(&self.local_open, restarting));
                self.send(c, &m).await?;
            }
            Output::SendKeepalive(c) if !skip(c, self.conn_mut(c)) => {
                self.send(c, &Message::Keepalive).await?
            }
            Output::SendNotification(c, n) => {
                tracing::info!(
                    code = n.code,
                    subcode = n.subcode,
                    conn = c.name(),
                    "sending NOTIFICATION {n}"
                );
                self.set_error(format!("sent NOTIFICATION {n}"));
                let m = Message::Notification(convert::notification_out(&n));
                // The connection closes next; a failed write changes nothing.
                let _ = self.send(c, &m).await;
            }
            Output::SendOpen(_) | Output::SendKeepalive(_) => {}
            Output::StateChanged { from, to } => self.on_state(from, to),
            Output::Established(c, neg) => self.on_established(c, &neg),
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
        if self.established.take().is_none() {
            return;
        }
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

    fn on_established(&mut self, c: Conn, neg: &Negotiated) {
        tracing::info!(conn = c.name(), "session established");
        self.established = Some(c);
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
        let conn = self.conn_mut(c).as_ref();
        let local = conn.and_then(|x| x.local_addr().ok()).map(|a| a.ip());
        let ctx_tx = conn.map(|x| x.ctx_tx.clone()).unwrap_or_default();
        let info = info::peer_info(&self.sh.cfg, self.sh.local_asn, neg, local);
        let _ = self.sh.rib_tx.send(RibMsg::Up {
            epoch: self.sh.epoch,
            info: Box::new(info),
            ctx_tx,
        });
    }

    pub(super) async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let updates = count_messages(buf);
        let Some(c) = self.established else {
            return Ok(());
        };
        let limit = self.write_limit(c);
        match self.conn_mut(c).as_mut() {
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

    /// Encodes and writes one message on connection `c`.
    async fn send(&mut self, c: Conn, msg: &Message) -> Result<(), Failed> {
        tracing::trace!(target: "bgp::packet", peer = %self.peer(), conn = c.name(), ?msg, "tx");
        let limit = self.write_limit(c);
        let Some(conn) = self.conn_mut(c).as_mut() else {
            return Ok(());
        };
        let mut buf = Vec::new();
        let id = conn.id;
        encode(msg, &conn.ctx_tx, &mut buf).map_err(|_| (c, id))?;
        timed(limit, conn.write(&buf)).await.map_err(|_| (c, id))?;
        let mut st = self.sh.status.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut st.sent, msg);
        Ok(())
    }

    pub(super) async fn handle_message(&mut self, c: Conn, msg: Message) {
        tracing::trace!(target: "bgp::packet", peer = %self.peer(), conn = c.name(), ?msg, "rx");
        count(
            &mut self
                .sh
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .received,
            &msg,
        );
        let here = self.established == Some(c);
        match msg {
            Message::Open(o) => {
                let local = self.local_open.clone();
                if let Some(conn) = self.conn_mut(c).as_mut() {
                    conn.negotiate(&local, &o);
                }
                self.feed(Input::OpenReceived(c, convert::open_info(&o)))
                    .await;
            }
            Message::Keepalive => self.feed(Input::KeepaliveReceived(c)).await,
            Message::Notification(n) => {
                let n = convert::notification_in(&n);
                tracing::info!(
                    code = n.code,
                    subcode = n.subcode,
                    conn = c.name(),
                    "received NOTIFICATION {n}"
                );
                self.set_error(format!("received NOTIFICATION {n}"));
                self.feed(Input::NotificationReceived(c, n)).await;
            }
            Message::Update(u) => {
                self.feed(Input::UpdateReceived(c)).await;
                if here && self.established == Some(c) {
                    self.handle_update(u).await;
                }
            }
            Message::RouteRefresh(rr) => {
                self.feed(Input::RouteRefreshReceived(c)).await;
                // RFC 2918 §4: the RIB re-advertises that family's Adj-RIB-Out.
                let normal = rr.subtype == RouteRefreshSubtype::Normal;
                if here && self.established == Some(c) && normal {
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
        let (Some(c), Some(neg)) = (self.established, self.fsm.negotiated().cloned()) else {
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
            if let Err((c, _)) = self.send(c, &m).await {
                self.feed(Input::TcpFailed(c)).await;
                return;
            }
        }
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
}

/// A write that takes longer than this means a peer that stopped reading:
/// the negotiated hold time (RFC 4271 §4.4 spirit), else the 4-minute one.
impl PeerRun<'_> {
    fn write_limit(&self, c: Conn) -> std::time::Duration {
        match self.fsm.negotiated_on(c).map(|n| n.hold_time) {
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

/// Answers a refused connection: the NOTIFICATION, then the close.
async fn refuse(mut conn: Connection, n: &Notification) {
    let mut buf = Vec::new();
    let m = Message::Notification(convert::notification_out(n));
    if encode(&m, &DecodeContext::default(), &mut buf).is_ok() {
        let _ = timed(std::time::Duration::from_secs(1), conn.write(&buf)).await;
    }
    conn.close().await;
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
