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
use conn::{Connection, Origin, ReadError};
use futures::FutureExt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tortie_bgp_session::{Expectation, Input, Session, SessionConfig, State};
use tortie_bgp_wire::{DecodeContext, Message, OpenMsg};
use tracing::Instrument;

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
type PendingOpen = tokio::task::JoinHandle<Option<(Connection, OpenMsg)>>;

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
    conn: Option<Connection>,
    connecting: Option<Connecting>,
    pending: Option<PendingOpen>,
    local_open: OpenMsg,
    ctx_rx: DecodeContext,
    ctx_tx: DecodeContext,
    rib_in: AdjRibIn,
    established: bool,
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

async fn read_opt(
    conn: &mut Option<Connection>,
    ctx: &DecodeContext,
) -> Result<Option<(Message, usize)>, ReadError> {
    match conn {
        Some(c) => c.read_message(ctx).await,
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

async fn pending_opt(p: &mut Option<PendingOpen>) -> Option<(Connection, OpenMsg)> {
    match p {
        Some(h) => h.await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// Reads a colliding connection's OPEN (RFC 4271 §6.8 needs its BGP Identifier).
async fn read_open(mut conn: Connection, limit: Duration) -> Option<(Connection, OpenMsg)> {
    let ctx = DecodeContext::default();
    match tokio::time::timeout(limit, conn.read_message(&ctx)).await {
        Ok(Ok(Some((Message::Open(o), _)))) => Some((conn, o)),
        _ => None,
    }
}

impl<'a> PeerRun<'a> {
    fn new(sh: &'a mut PeerShared) -> Self {
        let local_open = convert::local_open(sh.local_asn, sh.router_id, &sh.cfg);
        let fsm = Session::new(session_config(sh, &local_open));
        Self {
            sh,
            fsm,
            conn: None,
            connecting: None,
            pending: None,
            local_open,
            ctx_rx: DecodeContext::default(),
            ctx_tx: DecodeContext::default(),
            rib_in: AdjRibIn::default(),
            established: false,
            warn: RateLimit::default(),
        }
    }

    fn peer(&self) -> IpAddr {
        self.sh.cfg.address
    }

    async fn run(mut self) {
        self.feed(Input::Start).await;
        loop {
            let deadline = self.fsm.next_timer().map(|(_, at)| at);
            tokio::select! {
                cmd = self.sh.cmd_rx.recv() => match cmd {
                    None => return self.stop(crate::ShutdownMode::Cease).await,
                    Some(PeerCmd::Stop(mode)) => return self.stop(mode).await,
                    Some(cmd) => self.handle_cmd(cmd).await,
                },
                () = sleep_opt(deadline) => self.handle_timers().await,
                r = connect_opt(&mut self.connecting) => {
                    self.connecting = None;
                    self.handle_connected(r).await;
                }
                r = read_opt(&mut self.conn, &self.ctx_rx) => self.handle_read(r).await,
                r = pending_opt(&mut self.pending) => {
                    self.pending = None;
                    if let Some((conn, open)) = r {
                        self.handle_collision(conn, open).await;
                    }
                }
            }
        }
    }

    async fn stop(mut self, mode: crate::ShutdownMode) {
        if mode == crate::ShutdownMode::Cease {
            self.feed(Input::ManualStop).await;
        }
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
    }

    async fn handle_timers(&mut self) {
        let now = now();
        while let Some((kind, at)) = self.fsm.next_timer() {
            if at > now {
                break;
            }
            self.feed(Input::TimerExpired(kind)).await;
        }
    }

    async fn handle_cmd(&mut self, cmd: PeerCmd) {
        match cmd {
            PeerCmd::Incoming(stream) => self.handle_incoming(stream).await,
            PeerCmd::Send { epoch, bytes } => {
                // Bytes for a session that has since gone are dropped: the
                // RIB dumps the whole table to the next one.
                if self.established && epoch == self.sh.epoch && self.write(&bytes).await.is_err() {
                    self.feed(Input::TcpFailed).await;
                }
            }
            PeerCmd::RouteRefresh { epoch } => {
                if self.established && epoch == self.sh.epoch {
                    self.request_refresh().await;
                }
            }
            PeerCmd::Stop(_) => {}
        }
    }

    async fn handle_incoming(&mut self, stream: TcpStream) {
        if let Err(e) = crate::transport::apply_ttl(&stream, &self.sh.cfg) {
            tracing::warn!(error = %e, "cannot apply TTL policy to an incoming connection");
            return;
        }
        let conn = Connection::new(stream, Origin::Remote);
        match self.fsm.state() {
            // §8.2.2 Idle: connections are refused (IdleHoldTimer running or stopped).
            State::Idle => conn.close().await,
            // Nothing of ours in flight: this connection is the session's.
            State::Active if self.conn.is_none() => {
                self.connecting = None;
                self.conn = Some(conn);
                self.feed(Input::TcpConnected).await;
            }
            // §6.8: our own attempt may be about to succeed; read the new
            // connection's OPEN, then resolve (see `handle_collision`).
            State::Connect | State::Active | State::OpenSent | State::OpenConfirm
                if self.pending.is_none() =>
            {
                let limit = Duration::from_secs(10);
                self.pending = Some(tokio::spawn(read_open(conn, limit).in_current_span()));
            }
            // §6.8: a collision with an Established session closes the new connection.
            _ => self.refuse_collision(conn).await,
        }
    }

    async fn handle_connected(&mut self, r: std::io::Result<TcpStream>) {
        match r {
            Ok(stream) => {
                tracing::debug!("connected");
                self.conn = Some(Connection::new(stream, Origin::Local));
                self.feed(Input::TcpConnected).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connect failed");
                self.set_error(format!("connect: {e}"));
                self.feed(Input::TcpFailed).await;
            }
        }
    }

    async fn handle_read(&mut self, r: Result<Option<(Message, usize)>, ReadError>) {
        match r {
            Ok(Some((msg, _len))) => self.handle_message(msg).await,
            Ok(None) => {
                self.set_error("connection closed by peer".into());
                self.feed(Input::TcpFailed).await;
            }
            Err(ReadError::Io(e)) => {
                self.set_error(format!("connection: {e}"));
                self.feed(Input::TcpFailed).await;
            }
            Err(ReadError::Decode(e)) => {
                if let Some(suppressed) = self.warn.allow() {
                    tracing::warn!(error = %e, suppressed, "malformed message from peer");
                }
                let n = tortie_bgp_wire::NotificationMsg::from(&e);
                self.feed(Input::MessageError(convert::notification_in(&n)))
                    .await;
            }
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
