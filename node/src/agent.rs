//! The agent loop: joins the datastore syncer, the BGP speaker and the felix
//! thread. A snapshot changes sessions (only those concerned), the blocks
//! we originate and felix's input; a speaker event changes the learned
//! routes and felix's input.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::mpsc;
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    EventRx, PeerStatus, Speaker, SpeakerConfig, SpeakerError, SpeakerEvent, SpeakerHandle,
    SpeakerOptions,
};
use tortie_bgp_wire::{Origin, PathAttributes, Prefix};
use tortie_datastore::OpenOptions;
use tortie_felix::FelixInput;

use crate::dataplane::FibState;
use crate::feed::{felix_input, FeedContext};
use crate::learned::Learned;
use crate::peers::{desired_peers, diff, LocalIdentity, PeerMap};
use crate::snapshot::Snapshot;
use crate::sync::{self, SyncConfig};

/// Everything the agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Datastore URL.
    pub datastore: String,
    /// Backend options.
    pub options: OpenOptions,
    /// Node name.
    pub node_name: String,
    /// Node IP with prefix length.
    pub node_ip: IpNet,
    /// BGP port (`None`: BGPConfiguration listenPort, else 179).
    pub bgp_port: Option<u16>,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// HTTP address for /metrics, /livez, /readyz.
    pub http_addr: SocketAddr,
    /// Program the kernel (false: BGP only).
    pub dataplane: bool,
    /// Felix's MTU file.
    pub mtu_file: PathBuf,
}

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The node IP is not IPv4 (the BGP identifier must be).
    #[error(
        "node IP {0} is not IPv4: tortie-node needs an IPv4 node address for its BGP identifier"
    )]
    NotIpv4(IpNet),
    /// The datastore syncer stopped before the first snapshot.
    #[error("the datastore syncer stopped")]
    SyncerStopped,
    /// The speaker could not start.
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
    /// A socket could not be bound.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// Which socket.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// State shared with the control socket and HTTP servers.
#[derive(Debug)]
pub struct Shared {
    /// Node name.
    pub node: String,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our AS.
    pub asn: u32,
    /// The speaker.
    pub speaker: SpeakerHandle,
    /// Routes learned.
    pub learned: Mutex<Learned>,
    /// FIB state from felix (`None` with `--dataplane none`).
    pub fib: Option<Arc<Mutex<FibState>>>,
    /// The latest snapshot.
    pub snapshot: Mutex<Snapshot>,
}

impl Shared {
    /// Every peer's status from the speaker (empty if it stopped).
    pub async fn peers(&self) -> Vec<PeerStatus> {
        self.speaker.peer_status().await.unwrap_or_default()
    }

    /// FIB in sync and route count.
    pub fn fib_report(&self) -> crate::api::FibReport {
        match &self.fib {
            None => crate::api::FibReport {
                in_sync: true,
                routes: 0,
            },
            Some(f) => {
                let f = f.lock().unwrap_or_else(|e| e.into_inner());
                crate::api::FibReport {
                    in_sync: f.in_sync,
                    routes: f.routes(),
                }
            }
        }
    }

    /// Ready: every peer Established (with End-of-RIB received) or known
    /// down (it failed with an error), and the FIB in sync.
    pub fn ready_with(&self, peers: &[PeerStatus]) -> bool {
        let learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        let peers_ok = peers.iter().all(|p| {
            if p.state == State::Established {
                learned.end_of_rib(&p.address)
            } else {
                p.last_error.is_some()
            }
        });
        peers_ok && self.fib_report().in_sync
    }
}

struct Agent {
    me: LocalIdentity,
    node_ip: IpNet,
    shared: Arc<Shared>,
    running: PeerMap,
    originated: BTreeSet<Prefix>,
    felix_tx: Option<std::sync::mpsc::Sender<FelixInput>>,
    last_input: Option<FelixInput>,
    connected: Vec<IpNet>,
}

/// IPv4 subnets of this namespace's interfaces (workload veths excluded).
fn connected_subnets() -> Vec<IpNet> {
    crate::autodetect::read_interfaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.name != "lo" && !i.name.starts_with("cali"))
        .flat_map(|i| i.addrs)
        .filter(|a| a.addr().is_ipv4() && a.prefix_len() < 32)
        .map(|a| a.trunc())
        .collect()
}

fn to_prefix(n: &IpNet) -> Option<Prefix> {
    Prefix::new(n.addr(), n.prefix_len()).ok()
}

impl Agent {
    async fn on_snapshot(&mut self, snap: Snapshot) {
        let desired = desired_peers(&snap, &self.me);
        let d = diff(&self.running, &desired);
        for p in d.remove {
            tracing::info!(peer = %p, "removing peer");
            if let Err(e) = self.shared.speaker.remove_peer(p).await {
                tracing::warn!(peer = %p, error = %e, "remove_peer failed");
            }
            self.shared
                .learned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .forget(&p);
        }
        for p in d.add {
            tracing::info!(peer = %p.address, peer_type = p.peer_type.as_str(), "adding peer");
            if let Err(e) = self.shared.speaker.add_peer(p.clone()).await {
                tracing::warn!(peer = %p.address, error = %e, "add_peer failed");
            }
        }
        for p in d.update {
            tracing::info!(peer = %p.address, "updating peer");
            if let Err(e) = self.shared.speaker.update_peer(p.clone()).await {
                tracing::warn!(peer = %p.address, error = %e, "update_peer failed");
            }
        }
        self.running = desired;
        if self.felix_tx.is_some() {
            self.connected = connected_subnets();
        }
        self.originate(&snap).await;
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snap;
        self.feed();
    }

    async fn originate(&mut self, snap: &Snapshot) {
        let want: BTreeSet<Prefix> = snap
            .blocks_of(&self.me.name)
            .iter()
            .filter(|b| snap.pool_of(b).is_some_and(|p| !p.spec.disable_bgp_export))
            .filter_map(to_prefix)
            .collect();
        let gone: Vec<Prefix> = self.originated.difference(&want).copied().collect();
        let new: Vec<Prefix> = want.difference(&self.originated).copied().collect();
        if !gone.is_empty() {
            tracing::info!(count = gone.len(), "withdrawing blocks");
            let _ = self.shared.speaker.withdraw(gone).await;
        }
        if !new.is_empty() {
            tracing::info!(count = new.len(), "originating blocks");
            let attrs = PathAttributes {
                origin: Some(Origin::Igp),
                ..PathAttributes::default()
            };
            let _ = self.shared.speaker.originate(new, attrs).await;
        }
        self.originated = want;
    }

    fn on_speaker_event(&mut self, ev: SpeakerEvent) {
        match &ev {
            SpeakerEvent::PeerUp { peer, .. } => tracing::info!(peer = %peer, "peer up"),
            SpeakerEvent::PeerDown { peer, reason } => {
                tracing::info!(peer = %peer, reason = %reason, "peer down")
            }
            _ => {}
        }
        self.shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_event(&ev);
        if matches!(
            ev,
            SpeakerEvent::Routes { .. } | SpeakerEvent::PeerDown { .. }
        ) {
            self.feed();
        }
    }

    fn feed(&mut self) {
        let Some(tx) = &self.felix_tx else { return };
        let hops = self
            .shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_hops();
        let input = {
            let snap = self
                .shared
                .snapshot
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ctx = FeedContext {
                me: &self.me.name,
                node_ip: self.node_ip,
                connected: &self.connected,
            };
            felix_input(&snap, ctx, &hops)
        };
        if self.last_input.as_ref() != Some(&input) {
            let _ = tx.send(input.clone());
            self.last_input = Some(input);
        }
    }
}

fn start_syncer(cfg: &AgentConfig) -> mpsc::UnboundedReceiver<Snapshot> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sc = SyncConfig {
        datastore: cfg.datastore.clone(),
        options: cfg.options.clone(),
        node_name: cfg.node_name.clone(),
        node_ip: cfg.node_ip,
        resync: Duration::from_secs(10),
    };
    std::thread::Builder::new()
        .name("syncer".into())
        .spawn(move || sync::run(sc, tx))
        .ok();
    rx
}

fn start_felix(cfg: &AgentConfig) -> (std::sync::mpsc::Sender<FelixInput>, Arc<Mutex<FibState>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let state = Arc::new(Mutex::new(FibState::default()));
    let st = state.clone();
    let fc = crate::dataplane::felix_config(&cfg.mtu_file);
    std::thread::Builder::new()
        .name("felix".into())
        .spawn(move || crate::dataplane::run(fc, rx, st))
        .ok();
    (tx, state)
}

fn start_speaker(
    cfg: &AgentConfig,
    snap: &Snapshot,
    router_id: Ipv4Addr,
) -> Result<(SpeakerHandle, EventRx, u32), AgentError> {
    let asn = snap
        .node(&cfg.node_name)
        .map_or_else(|| snap.default_asn(), |n| snap.node_asn(n));
    let port = cfg
        .bgp_port
        .or_else(|| snap.bgp_config.as_ref().and_then(|c| c.listen_port))
        .unwrap_or(179);
    let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    tracing::info!(asn, %router_id, %listen, "starting the BGP speaker");
    let options = SpeakerOptions {
        cluster_id: snap
            .node(&cfg.node_name)
            .and_then(crate::snapshot::rr_cluster),
        ..SpeakerOptions::default()
    };
    let config = SpeakerConfig {
        asn,
        router_id,
        listen: Some(listen),
        peers: vec![],
    };
    let (h, rx) = Speaker::start_with(config, options)?;
    Ok((h, rx, asn))
}

fn sigterm() -> Result<tokio::signal::unix::Signal, AgentError> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|source| {
        AgentError::Listen {
            what: "SIGTERM".into(),
            source,
        }
    })
}

/// Runs the agent until SIGINT/SIGTERM.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let IpAddr::V4(router_id) = cfg.node_ip.addr() else {
        return Err(AgentError::NotIpv4(cfg.node_ip));
    };
    let mut snap_rx = start_syncer(&cfg);
    let first = snap_rx.recv().await.ok_or(AgentError::SyncerStopped)?;
    let (speaker, mut events, asn) = start_speaker(&cfg, &first, router_id)?;
    let (felix_tx, fib) = if cfg.dataplane {
        let (tx, st) = start_felix(&cfg);
        (Some(tx), Some(st))
    } else {
        (None, None)
    };
    let port = first
        .bgp_config
        .as_ref()
        .and_then(|c| c.listen_port)
        .unwrap_or(179);
    let shared = Arc::new(Shared {
        node: cfg.node_name.clone(),
        router_id,
        asn,
        speaker: speaker.clone(),
        learned: Mutex::new(Learned::default()),
        fib,
        snapshot: Mutex::new(Snapshot::default()),
    });
    crate::server::start_control(&cfg.control_socket, shared.clone())?;
    crate::server::start_http(cfg.http_addr, shared.clone()).await?;
    let mut agent = Agent {
        me: LocalIdentity {
            name: cfg.node_name.clone(),
            ip: cfg.node_ip.addr(),
            port: cfg.bgp_port.unwrap_or(port),
        },
        node_ip: cfg.node_ip,
        shared,
        running: PeerMap::new(),
        originated: BTreeSet::new(),
        felix_tx,
        last_input: None,
        connected: Vec::new(),
    };
    agent.on_snapshot(first).await;
    let mut term = sigterm()?;
    loop {
        tokio::select! {
            Some(s) = snap_rx.recv() => agent.on_snapshot(s).await,
            Some(ev) = events.recv() => agent.on_speaker_event(ev),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("shutting down");
    let _ = speaker.shutdown().await;
    let _ = std::fs::remove_file(&cfg.control_socket);
    Ok(())
}
