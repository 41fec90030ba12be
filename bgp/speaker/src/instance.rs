//! The instance task: owns the peer table, the listener and the originated
//! set; dispatches accepted connections to peer tasks by address.

use crate::config::{PeerConfig, SpeakerConfig};
use crate::peer::{supervise, PeerCmd, PeerShared};
use crate::rib::Originated;
use crate::status::PeerStatus;
use crate::{SpeakerError, SpeakerEvent};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tortie_bgp_wire::{PathAttributes, Prefix};
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
    Status(Reply<Vec<PeerStatus>>),
    Shutdown(Reply<()>),
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
    originated: Arc<Originated>,
    unknown_warned: Option<tokio::time::Instant>,
}

async fn accept_opt(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Instance {
    pub fn new(
        config: SpeakerConfig,
        listener: Option<TcpListener>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        events_tx: mpsc::UnboundedSender<SpeakerEvent>,
    ) -> Self {
        Self {
            config,
            listener,
            cmd_rx,
            events_tx,
            peers: HashMap::new(),
            originated: Arc::new(Originated::default()),
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
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return self.shutdown().await,
                    Some(cmd) => self.handle_command(cmd).await,
                },
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
                        Ok(())
                    }
                    None => Err(SpeakerError::NoSuchPeer(addr)),
                };
                let _ = reply.send(r);
            }
            Command::Originate(prefixes, attrs, reply) => {
                let changed = Arc::make_mut(&mut self.originated).add(&prefixes, &attrs);
                self.broadcast(changed, Vec::new());
                let _ = reply.send(());
            }
            Command::Withdraw(prefixes, reply) => {
                let gone = Arc::make_mut(&mut self.originated).remove(&prefixes);
                self.broadcast(Vec::new(), gone);
                let _ = reply.send(());
            }
            Command::Status(reply) => {
                let mut v: Vec<PeerStatus> = self
                    .peers
                    .values()
                    .map(|e| e.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
                    .collect();
                v.sort_by_key(|s| s.address);
                let _ = reply.send(v);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn broadcast(&self, announce: Vec<Prefix>, withdraw: Vec<Prefix>) {
        if announce.is_empty() && withdraw.is_empty() {
            return;
        }
        for e in self.peers.values() {
            let _ = e.cmd_tx.send(PeerCmd::Routes {
                originated: self.originated.clone(),
                announce: announce.clone(),
                withdraw: withdraw.clone(),
            });
        }
    }

    fn handle_accept(&mut self, stream: TcpStream, remote: IpAddr) {
        match self.peers.get(&remote) {
            Some(e) => {
                let _ = e.cmd_tx.send(PeerCmd::Incoming(stream));
            }
            None => {
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
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let shared = PeerShared {
            cfg: cfg.clone(),
            local_asn: self.config.asn,
            router_id: self.config.router_id,
            status: status.clone(),
            events_tx: self.events_tx.clone(),
            cmd_rx,
            originated: self.originated.clone(),
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
        if let Some(e) = self.peers.remove(&cfg.address) {
            self.stop_peer(e).await;
        }
        self.add_peer(cfg)
    }

    async fn stop_peer(&mut self, e: PeerEntry) {
        let _ = e.cmd_tx.send(PeerCmd::Stop);
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

    async fn shutdown(&mut self) {
        let peers: Vec<PeerEntry> = self.peers.drain().map(|(_, e)| e).collect();
        for e in peers {
            self.stop_peer(e).await;
        }
    }
}
