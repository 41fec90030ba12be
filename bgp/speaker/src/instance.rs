//! The instance task: owns the peer table, the listener and the RIB
//! (through [`RibDriver`]); dispatches accepted connections to peer tasks by
//! address and routing messages of the peer tasks to the RIB.

use crate::config::{PeerConfig, SpeakerConfig, SpeakerOptions};
use crate::peer::{supervise, PeerCmd, PeerShared};
use crate::routing::{FibEvent, RibDriver, RibMsg};
use crate::status::PeerStatus;
use crate::{SpeakerError, SpeakerEvent};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tortie_bgp_rib::{DownKind, PolicyConfig, RibEntry};
use tortie_bgp_wire::{
    encode, DecodeContext, Family, Message, NotificationMsg, PathAttributes, Prefix,
};
use tracing::Instrument;

type Reply<T> = oneshot::Sender<T>;

/// Requests from a [`crate::SpeakerHandle`].
#[derive(Debug)]
pub(crate) enum Command {
    AddPeer(PeerConfig, Reply<Result<(), SpeakerError>>),
    UpdatePeer(PeerConfig, Reply<Result<(), SpeakerError>>),
    RemovePeer(IpAddr, Reply<Result<(), SpeakerError>>),
    Originate(Vec<Prefix>, Arc<PathAttributes>, Reply<()>),
    Withdraw(Vec<Prefix>, Reply<()>),
    SetPolicy(Option<PolicyConfig>, Reply<()>),
    Status(Reply<Vec<PeerStatus>>),
    RibQuery(Option<Family>, Reply<Vec<RibEntry>>),
    SubscribeFib(Reply<mpsc::UnboundedReceiver<FibEvent>>),
    Restarting(Reply<bool>),
    Shutdown(crate::ShutdownMode, Reply<()>),
}

struct PeerEntry {
    cfg: PeerConfig,
    cmd_tx: mpsc::UnboundedSender<PeerCmd>,
    status: Arc<Mutex<PeerStatus>>,
    task: JoinHandle<()>,
}

pub(crate) struct Instance {
    pub config: SpeakerConfig,
    pub listener: Option<TcpListener>,
    pub cmd_rx: mpsc::UnboundedReceiver<Command>,
    pub events_tx: mpsc::UnboundedSender<SpeakerEvent>,
    peers: HashMap<IpAddr, PeerEntry>,
    routing: RibDriver,
    rib_tx: mpsc::UnboundedSender<RibMsg>,
    rib_rx: mpsc::UnboundedReceiver<RibMsg>,
    epochs: Arc<AtomicU64>,
    route_events: bool,
    unknown_warned: Option<tokio::time::Instant>,
}

async fn accept_opt(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The peer a routing message is about.
fn rib_msg_peer(m: &RibMsg) -> IpAddr {
    match m {
        RibMsg::Up { info, .. } => info.addr,
        RibMsg::Down { peer, .. } | RibMsg::Update { peer, .. } | RibMsg::Refresh { peer, .. } => {
            *peer
        }
    }
}

/// Cease / Connection Rejected (RFC 4486), encoded.
fn connection_rejected() -> Vec<u8> {
    let n = NotificationMsg::cease(
        tortie_bgp_session::notification::cease_subcode::CONNECTION_REJECTED,
    );
    let mut buf = Vec::new();
    let _ = encode(
        &Message::Notification(n),
        &DecodeContext::default(),
        &mut buf,
    );
    buf
}

pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Instance {
    pub fn new(
        config: SpeakerConfig,
        options: &SpeakerOptions,
        listener: Option<TcpListener>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        events_tx: mpsc::UnboundedSender<SpeakerEvent>,
    ) -> Self {
        let (rib_tx, rib_rx) = mpsc::unbounded_channel();
        Self {
            routing: RibDriver::new(
                config.asn,
                config.router_id,
                options,
                &config.peers.iter().map(|p| p.address).collect::<Vec<_>>(),
            ),
            config,
            listener,
            cmd_rx,
            events_tx,
            peers: HashMap::new(),
            rib_tx,
            rib_rx,
            epochs: Arc::new(AtomicU64::new(0)),
            route_events: options.route_events,
            unknown_warned: None,
        }
    }

    pub async fn run(mut self) {
        for p in std::mem::take(&mut self.config.peers) {
            if let Err(e) = self.add_peer(p) {
                tracing::error!(error = %e, "cannot add configured peer");
            }
        }
        loop {
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown(mode, reply)) => {
                        self.shutdown(mode).await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return self.shutdown(crate::ShutdownMode::Cease).await,
                    Some(cmd) => self.handle_command(cmd).await,
                },
                Some(m) = self.rib_rx.recv() => {
                    let tx = self.peers.get(&rib_msg_peer(&m)).map(|e| &e.cmd_tx);
                    self.routing.handle(m, tx);
                }
                () = sleep_until_opt(self.routing.deadline()) => self.routing.tick(),
                r = accept_opt(&self.listener) => match r {
                    Ok((stream, remote)) => self.handle_accept(stream, canonical(remote.ip())),
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                },
            }
        }
    }

    async fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::AddPeer(cfg, reply) => {
                let _ = reply.send(self.add_peer(cfg));
            }
            Command::UpdatePeer(cfg, reply) => {
                let r = self.update_peer(cfg).await;
                let _ = reply.send(r);
            }
            Command::RemovePeer(addr, reply) => {
                let r = match self.peers.remove(&addr) {
                    Some(e) => {
                        self.stop_peer(e).await;
                        self.routing.peer_gone(addr, DownKind::Hard);
                        self.routing.forget_filters(addr);
                        Ok(())
                    }
                    None => Err(SpeakerError::NoSuchPeer(addr)),
                };
                let _ = reply.send(r);
            }
            Command::Originate(prefixes, attrs, reply) => {
                self.routing.originate(&prefixes, (*attrs).clone());
                let _ = reply.send(());
            }
            Command::Withdraw(prefixes, reply) => {
                self.routing.withdraw(&prefixes);
                let _ = reply.send(());
            }
            Command::SetPolicy(policy, reply) => {
                self.routing.set_policy(policy);
                let _ = reply.send(());
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::RibQuery(family, reply) => {
                let _ = reply.send(self.routing.query(family));
            }
            Command::SubscribeFib(reply) => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.routing.subscribe(tx);
                let _ = reply.send(rx);
            }
            Command::Restarting(reply) => {
                let _ = reply.send(self.routing.is_restarting());
            }
            Command::Shutdown(..) => {}
        }
    }

    /// Every peer's status; prefix counts come from the RIB while Established.
    fn status(&self) -> Vec<PeerStatus> {
        let mut v: Vec<PeerStatus> = self
            .peers
            .values()
            .map(|e| {
                let mut st = e.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some((sent, received)) = self.routing.counts(st.address) {
                    st.prefixes_sent = sent;
                    if !self.route_events {
                        st.prefixes_received = received;
                    }
                }
                st
            })
            .collect();
        v.sort_by_key(|s| s.address);
        v
    }

    fn handle_accept(&mut self, stream: TcpStream, remote: IpAddr) {
        match self.peers.get(&remote) {
            Some(e) => {
                let _ = e.cmd_tx.send(PeerCmd::Incoming(stream));
            }
            None => {
                // RFC 4486 §4: a connection we do not want gets Cease /
                // Connection Rejected. A fresh socket's send buffer is
                // empty: the write does not block the loop.
                let _ = stream.try_write(&connection_rejected());
                let now = tokio::time::Instant::now();
                if self
                    .unknown_warned
                    .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
                {
                    self.unknown_warned = Some(now);
                    tracing::warn!(peer = %remote, "connection from an unconfigured address refused");
                }
            }
        }
    }

    fn add_peer(&mut self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        if self.peers.contains_key(&cfg.address) {
            return Err(SpeakerError::PeerExists(cfg.address));
        }
        if let (Some(l), Some(pw)) = (&self.listener, &cfg.password) {
            crate::transport::set_listener_md5(l, cfg.address, Some(pw))
                .map_err(|e| SpeakerError::Md5(cfg.address, e))?;
        }
        if let (Some(l), Some(_)) = (&self.listener, cfg.ttl_security) {
            // RFC 5082 §3: our SYN-ACK must leave with TTL 255 too.
            if let Err(e) = crate::transport::set_listener_ttl_255(l) {
                tracing::warn!(error = %e, "cannot set TTL 255 on the listener");
            }
        }
        let status = Arc::new(Mutex::new(PeerStatus::new(
            cfg.address,
            cfg.asn,
            cfg.peer_type,
        )));
        // RFC 4724 §4.1: a peer configured while our restart runs (e.g. once
        // the owner has read its datastore) is waited for as well.
        self.routing.expect_peer(cfg.address);
        self.routing.set_filters(cfg.address, cfg.filters.clone());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let shared = PeerShared {
            cfg: cfg.clone(),
            local_asn: self.config.asn,
            router_id: self.config.router_id,
            status: status.clone(),
            events_tx: self.events_tx.clone(),
            cmd_rx,
            rib_tx: self.rib_tx.clone(),
            epochs: self.epochs.clone(),
            route_events: self.route_events,
            restarting: self.routing.restarting_flag(),
            epoch: 0,
        };
        let span = tracing::info_span!("peer", addr = %cfg.address);
        let task = tokio::spawn(supervise(shared).instrument(span));
        tracing::info!(peer = %cfg.address, asn = cfg.asn, "peer added");
        self.peers.insert(
            cfg.address,
            PeerEntry {
                cfg,
                cmd_tx,
                status,
                task,
            },
        );
        Ok(())
    }

    async fn update_peer(&mut self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        let Some(old) = self.peers.get(&cfg.address) else {
            return Err(SpeakerError::NoSuchPeer(cfg.address));
        };
        if old.cfg == cfg {
            return Ok(());
        }
        if old.cfg.same_but_filters(&cfg) {
            // Only the BGPFilter rules changed: the session stays up.
            self.routing.set_filters(cfg.address, cfg.filters.clone());
            if let Some(e) = self.peers.get_mut(&cfg.address) {
                e.cfg = cfg;
            }
            return Ok(());
        }
        if let Some(e) = self.peers.remove(&cfg.address) {
            self.stop_peer(e).await;
            self.routing.peer_gone(cfg.address, DownKind::Hard);
        }
        self.add_peer(cfg)
    }

    async fn stop_peer(&mut self, e: PeerEntry) {
        self.stop_peer_with(e, crate::ShutdownMode::Cease).await;
    }

    async fn stop_peer_with(&mut self, e: PeerEntry, mode: crate::ShutdownMode) {
        let _ = e.cmd_tx.send(PeerCmd::Stop(mode));
        let abort = e.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), e.task)
            .await
            .is_err()
        {
            abort.abort();
        }
        if let (Some(l), Some(_)) = (&self.listener, &e.cfg.password) {
            let _ = crate::transport::set_listener_md5(l, e.cfg.address, None);
        }
        tracing::info!(peer = %e.cfg.address, "peer removed");
    }

    async fn shutdown(&mut self, mode: crate::ShutdownMode) {
        // Stop listening first: a peer that reconnects at once after our
        // Cease is refused (a failed connect, which keeps the Cease as its
        // last error) instead of completing a handshake into a backlog
        // that nobody accepts and that is reset when the process exits.
        self.listener = None;
        let peers: Vec<PeerEntry> = self.peers.drain().map(|(_, e)| e).collect();
        for e in peers {
            let addr = e.cfg.address;
            self.stop_peer_with(e, mode).await;
            self.routing.peer_gone(addr, DownKind::Hard);
        }
    }
}
