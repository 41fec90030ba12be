//! One peer's task: drives its session FSM over TCP, reports sessions and
//! UPDATEs to the instance's RIB, writes the bytes the RIB's update group
//! encoded, and (optionally) keeps a plain Adj-RIB-In for `Routes` events. A failure here, even a panic, closes only
//! this session; the supervisor restarts it.

mod actions;
pub mod conn;
pub mod convert;
mod info;
pub mod routes;

use crate::config::PeerConfig;
use crate::rib::AdjRibIn;
use crate::routing::RibMsg;
use crate::status::PeerStatus;
use crate::SpeakerEvent;
use conn::{Connection, ReadError};
use futures::FutureExt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tortie_bgp_session::{Conn, Expectation, Input, Session, SessionConfig, State};
use tortie_bgp_wire::{Message, OpenMsg};

/// Commands from the instance to a peer task.
#[derive(Debug)]
pub(crate) enum PeerCmd {
    /// The listener accepted a connection from this peer.
    Incoming(TcpStream),
    /// UPDATEs encoded by the instance for the session numbered `epoch`.
    Send { epoch: u64, bytes: Arc<Vec<u8>> },
    /// Our import rules changed: ask the peer of session `epoch` for its
    /// routes again (RFC 2918), every negotiated family.
    RouteRefresh { epoch: u64 },
    /// Stop the session and end the task: with a Cease / Administrative
    /// Shutdown NOTIFICATION, or (graceful restart) by closing the
    /// connection without one.
    Stop(crate::ShutdownMode),
}

/// What survives a restart of the peer's run after a panic.
pub(crate) struct PeerShared {
    pub cfg: PeerConfig,
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub status: Arc<Mutex<PeerStatus>>,
    pub events_tx: mpsc::UnboundedSender<SpeakerEvent>,
    pub cmd_rx: mpsc::UnboundedReceiver<PeerCmd>,
    /// Routing messages to the instance's RIB.
    pub rib_tx: mpsc::UnboundedSender<RibMsg>,
    /// Numbers Established sessions across the speaker.
    pub epochs: Arc<AtomicU64>,
    /// Keep an Adj-RIB-In here and emit `SpeakerEvent::Routes`.
    pub route_events: bool,
    /// Our own restart is in progress: OPENs carry the Restart State bit.
    pub restarting: Arc<std::sync::atomic::AtomicBool>,
    /// The number of the last Established session (0 = none yet).
    pub epoch: u64,
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

/// Runs a peer until it is stopped; a panic inside restarts the session
/// after its first idle hold time.
pub(crate) async fn supervise(mut shared: PeerShared) {
    loop {
        let run = PeerRun::new(&mut shared);
        match AssertUnwindSafe(run.run()).catch_unwind().await {
            Ok(()) => return,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "peer task panicked; session closed, restarting");
                {
                    let mut st = shared.status.lock().unwrap_or_else(|e| e.into_inner());
                    st.last_error = Some(format!("internal error: {what}"));
                    st.state = State::Idle;
                    st.since = std::time::SystemTime::now();
                    st.prefixes_received = 0;
                    st.prefixes_sent = 0;
                }
                // Forwarding survives a crash of this task: keep the routes
                // as for a lost connection (RFC 4724 when the peer does GR).
                let _ = shared.rib_tx.send(RibMsg::Down {
                    peer: shared.cfg.address,
                    epoch: shared.epoch,
                    kind: tortie_bgp_rib::DownKind::Graceful,
                });
                let _ = shared.events_tx.send(SpeakerEvent::PeerDown {
                    peer: shared.cfg.address,
                    reason: "internal error".into(),
                });
                let wait = Duration::from_millis(shared.cfg.timers.idle_hold_ms);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Suppresses repeated peer-caused warnings (at most one per 10 s).
#[derive(Debug, Default)]
struct RateLimit {
    last: Option<tokio::time::Instant>,
    suppressed: u32,
}

impl RateLimit {
    fn allow(&mut self) -> Option<u32> {
        let now = tokio::time::Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < Duration::from_secs(10) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// One run of a peer's session (replaced wholesale after a panic).
struct PeerRun<'a> {
    sh: &'a mut PeerShared,
    fsm: Session,
    /// The connection we opened, once TCP is up.
    outgoing: Option<Connection>,
    /// The connection the peer opened, once the FSM accepted it.
    incoming: Option<Connection>,
    /// Our TCP connect in progress.
    connecting: Option<Connecting>,
    /// A connection from the listener the FSM has not answered yet.
    offered: Option<Connection>,
    /// Numbers connections (see [`Connection::id`]).
    next_id: u64,
    local_open: OpenMsg,
    rib_in: AdjRibIn,
    /// The connection the session is Established on.
    established: Option<Conn>,
    warn: RateLimit,
}

pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn session_config(sh: &PeerShared, local_open: &OpenMsg) -> SessionConfig {
    let t = &sh.cfg.timers;
    SessionConfig {
        local_open: convert::open_info(local_open),
        expect: Expectation {
            peer_asn: sh.cfg.asn,
            local_router_id: sh.router_id,
            hold_time: t.hold_time,
            keepalive: t.keepalive,
        },
        mode: sh.cfg.mode(),
        connect_retry: t.connect_retry(),
        delay_open: t.delay_open.map(|s| Duration::from_secs(u64::from(s))),
        idle_hold: Duration::from_millis(t.idle_hold_ms),
        idle_hold_max: Duration::from_millis(t.idle_hold_max_ms.max(t.idle_hold_ms)),
        stable_after: Duration::from_secs(60),
    }
}

async fn read_opt(conn: &mut Option<Connection>) -> Result<Option<(Message, usize)>, ReadError> {
    match conn {
        Some(c) => c.read_message().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

async fn connect_opt(c: &mut Option<Connecting>) -> std::io::Result<TcpStream> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl<'a> PeerRun<'a> {
    fn new(sh: &'a mut PeerShared) -> Self {
        let local_open = convert::local_open(sh.local_asn, sh.router_id, &sh.cfg);
        let fsm = Session::new(session_config(sh, &local_open));
        Self {
            sh,
            fsm,
            outgoing: None,
            incoming: None,
            connecting: None,
            offered: None,
            next_id: 0,
            local_open,
            rib_in: AdjRibIn::default(),
            established: None,
            warn: RateLimit::default(),
        }
    }

    fn peer(&self) -> IpAddr {
        self.sh.cfg.address
    }

    /// The connection in slot `c`.
    fn conn_mut(&mut self, c: Conn) -> &mut Option<Connection> {
        match c {
            Conn::Outgoing => &mut self.outgoing,
            Conn::Incoming => &mut self.incoming,
        }
    }

    /// A new connection object (numbered, so that a failure reported for an
    /// earlier one in the same slot is recognised).
    fn wrap(&mut self, stream: TcpStream) -> Connection {
        self.next_id += 1;
        Connection::new(stream, self.next_id)
    }

    async fn run(mut self) {
        self.feed(Input::Start).await;
        loop {
            let deadline = self.fsm.next_timer().map(|(_, at)| at);
            tokio::select! {
                cmd = self.sh.cmd_rx.recv() => match cmd {
                    None => return self.stop(crate::ShutdownMode::Cease).await,
                    Some(PeerCmd::Stop(mode)) => return self.stop(mode).await,
                    Some(cmd) => {
                        if let ControlFlow::Break(mode) = self.handle_cmd(cmd).await {
                            return self.stop(mode).await;
                        }
                    }
                },
                () = sleep_opt(deadline) => self.handle_timers().await,
                r = connect_opt(&mut self.connecting) => {
                    self.connecting = None;
                    self.handle_connected(r).await;
                }
                r = read_opt(&mut self.outgoing) => self.handle_read(Conn::Outgoing, r).await,
                r = read_opt(&mut self.incoming) => self.handle_read(Conn::Incoming, r).await,
            }
        }
    }

    async fn stop(mut self, mode: crate::ShutdownMode) {
        // Graceful-restart mode: the connections just close (no
        // NOTIFICATION), so that the peers keep our routes (RFC 4724).
        if mode == crate::ShutdownMode::Cease {
            self.feed(Input::ManualStop).await;
        }
        for c in Conn::BOTH {
            if let Some(conn) = self.conn_mut(c).take() {
                conn.close().await;
            }
        }
    }

    async fn handle_timers(&mut self) {
        let now = now();
        while let Some((t, at)) = self.fsm.next_timer() {
            if at > now {
                break;
            }
            if t == tortie_bgp_session::Timer::ConnectRetry && self.connecting.is_some() {
                // The attempt the FSM now abandons got no answer within
                // ConnectRetryTime: say so (with TCP-MD5 the likely cause is
                // a password mismatch, which the peer never reports).
                let why = crate::transport::timeout_message(&self.sh.cfg);
                self.set_error(format!("connect: {why}"));
            }
            self.feed(Input::TimerExpired(t)).await;
        }
    }

    /// Handles one command (and the UPDATE bytes queued behind it); breaks
    /// with its mode when a Stop was among them.
    async fn handle_cmd(&mut self, cmd: PeerCmd) -> ControlFlow<crate::ShutdownMode> {
        let mut next = Some(cmd);
        while let Some(cmd) = next.take() {
            match cmd {
                PeerCmd::Incoming(stream) => self.handle_incoming(stream).await,
                PeerCmd::Send { epoch, bytes } => next = self.send_queued(epoch, bytes).await,
                PeerCmd::RouteRefresh { epoch } => {
                    if self.established.is_some() && epoch == self.sh.epoch {
                        self.request_refresh().await;
                    }
                }
                PeerCmd::Stop(mode) => return ControlFlow::Break(mode),
            }
        }
        ControlFlow::Continue(())
    }

    /// Writes `first` and every UPDATE batch queued behind it in one write
    /// (a route reflector's client gets one batch per source in a burst);
    /// returns the first other command drained meanwhile. Bytes for a
    /// session that has since gone are dropped: the RIB dumps the whole
    /// table to the next one.
    async fn send_queued(&mut self, epoch: u64, first: Arc<Vec<u8>>) -> Option<PeerCmd> {
        const MAX: usize = 1 << 20;
        let current = self.sh.epoch;
        let mut buf = Vec::new();
        if epoch == current {
            buf.extend_from_slice(&first);
        }
        let mut other = None;
        while buf.len() < MAX {
            match self.sh.cmd_rx.try_recv() {
                Ok(PeerCmd::Send { epoch, bytes }) if epoch == current => {
                    buf.extend_from_slice(&bytes)
                }
                Ok(PeerCmd::Send { .. }) => {}
                Ok(cmd) => {
                    other = Some(cmd);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(c) = self.established.filter(|_| !buf.is_empty()) {
            if self.write(&buf).await.is_err() {
                self.feed(Input::TcpFailed(c)).await;
            }
        }
        other
    }

    /// RFC 4271 §8: a connection from the peer is offered to the FSM, which
    /// accepts it (our OPEN goes out at once) or refuses it with a
    /// NOTIFICATION (damped, or a collision with an Established session).
    async fn handle_incoming(&mut self, stream: TcpStream) {
        if let Err(e) = crate::transport::apply_ttl(&stream, &self.sh.cfg) {
            tracing::warn!(error = %e, "cannot apply TTL policy to an incoming connection");
            return;
        }
        tracing::debug!("incoming connection");
        self.offered = Some(self.wrap(stream));
        self.feed(Input::TcpIncoming).await;
        // The FSM answers every offer; nothing is left here.
        self.offered = None;
    }

    async fn handle_connected(&mut self, r: std::io::Result<TcpStream>) {
        match r {
            Ok(stream) => {
                tracing::debug!("connected");
                self.outgoing = Some(self.wrap(stream));
                self.feed(Input::TcpConnected).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connect failed");
                self.set_connect_error(format!("connect: {e}"));
                self.feed(Input::TcpFailed(Conn::Outgoing)).await;
            }
        }
    }

    async fn handle_read(&mut self, c: Conn, r: Result<Option<(Message, usize)>, ReadError>) {
        match r {
            Ok(Some((msg, _len))) => self.handle_message(c, msg).await,
            Ok(None) => {
                self.set_error("connection closed by peer".into());
                self.feed(Input::TcpFailed(c)).await;
            }
            Err(ReadError::Io(e)) => {
                self.set_error(format!("connection: {e}"));
                self.feed(Input::TcpFailed(c)).await;
            }
            Err(ReadError::Decode { error, msg_type }) => {
                // RFC 6608: an UPDATE or ROUTE-REFRESH before Established is
                // unexpected whatever its content (FSM Error).
                let early = self.fsm.connection(c) != Some(State::Established);
                if early && matches!(msg_type, Some(2 | 5)) {
                    return self.feed(Input::UpdateReceived(c)).await;
                }
                if let Some(suppressed) = self.warn.allow() {
                    tracing::warn!(error = %error, suppressed, conn = c.name(), "malformed message from peer");
                }
                let n = tortie_bgp_wire::NotificationMsg::from(&error);
                self.feed(Input::MessageError(c, convert::notification_in(&n)))
                    .await;
            }
        }
    }

    /// A failed connect of ours is the last error only while nothing
    /// weightier is recorded: the NOTIFICATION or loss that ended the last
    /// session stays visible while we keep retrying (as FRR's "last
    /// reset"); the state (Active/Connect) shows the retries.
    fn set_connect_error(&self, e: String) {
        let mut st = self.sh.status.lock().unwrap_or_else(|e| e.into_inner());
        if st
            .last_error
            .as_deref()
            .is_none_or(|l| l.starts_with("connect: "))
        {
            st.last_error = Some(e);
        }
    }

    fn set_error(&self, e: String) {
        self.sh
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error = Some(e);
    }
}
