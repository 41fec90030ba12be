//! The agent loop: joins the datastore syncer, the BGP speaker and the felix
//! thread. A snapshot changes sessions (only those concerned), Calico's
//! import/export policy, the prefixes we originate and felix's input; a new
//! AS, route reflector cluster id or listen port replaces the speaker (all
//! sessions reset); the speaker's FIB stream (its Loc-RIB after the import
//! policy) changes felix's input.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ipnet::IpNet;
use tokio::sync::mpsc;
use tortie_bgp_rib::PolicyConfig;
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    EventRx, FibEvent, FibRx, PeerStatus, RestartOptions, SpeakerError, SpeakerEvent, SpeakerHandle,
};
use tortie_bgp_wire::{Origin, PathAttributes, Prefix};
use tortie_datastore::OpenOptions;
use tortie_felix::FelixInput;

use crate::bgp::SpeakerParams;
use crate::dataplane::{FelixMsg, FibState, Start};
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
    /// IPv6 node address with prefix length (`--ip6`), registered as
    /// `spec.bgp.ipv6Address`.
    pub node_ip6: Option<IpNet>,
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
    /// Our AS (changes when the speaker is replaced).
    asn: AtomicU32,
    /// The running speaker (replaced on an AS / cluster id change).
    current_speaker: RwLock<SpeakerHandle>,
    /// End-of-RIB per peer and the Loc-RIB's forwarding table.
    pub learned: Mutex<Learned>,
    /// FIB state from felix (`None` with `--dataplane none`).
    pub fib: Option<Arc<Mutex<FibState>>>,
    /// The latest snapshot.
    pub snapshot: Mutex<Snapshot>,
}

impl Shared {
    /// The running speaker.
    pub fn speaker(&self) -> SpeakerHandle {
        self.current_speaker
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Our AS.
    pub fn asn(&self) -> u32 {
        self.asn.load(Ordering::Relaxed)
    }

    /// Installs a new speaker running with AS `asn`.
    fn replace_speaker(&self, speaker: SpeakerHandle, asn: u32) {
        *self
            .current_speaker
            .write()
            .unwrap_or_else(|e| e.into_inner()) = speaker;
        self.asn.store(asn, Ordering::Relaxed);
    }

    /// Every peer's status from the speaker (empty if it stopped).
    pub async fn peers(&self) -> Vec<PeerStatus> {
        self.speaker().peer_status().await.unwrap_or_default()
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
    router_id: Ipv4Addr,
    bgp_port_flag: Option<u16>,
    shared: Arc<Shared>,
    running: PeerMap,
    originated: BTreeSet<Prefix>,
    felix_tx: Option<std::sync::mpsc::Sender<FelixMsg>>,
    last_input: Option<FelixInput>,
    connected: Vec<IpNet>,
    /// What the running speaker was started with.
    params: SpeakerParams,
    /// The policy the speaker has.
    policy: PolicyConfig,
    /// The running speaker's events and FIB stream.
    events: EventRx,
    fib_rx: FibRx,
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

impl Agent {
    async fn on_snapshot(&mut self, snap: Snapshot) -> Result<(), AgentError> {
        let params = SpeakerParams::from_snapshot(&snap, &self.me.name, self.bgp_port_flag);
        let built = crate::policy::build(&snap, &self.me.name);
        if let Some(why) = self.params.restart_reason(&params) {
            self.restart_speaker(params, built.policy.clone(), &why)
                .await?;
        }
        self.set_policy(built).await;
        let speaker = self.shared.speaker();
        let desired = desired_peers(&snap, &self.me);
        let d = diff(&self.running, &desired);
        for p in d.remove {
            tracing::info!(peer = %p, "removing peer");
            if let Err(e) = speaker.remove_peer(p).await {
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
            if let Err(e) = speaker.add_peer(p.clone()).await {
                tracing::warn!(peer = %p.address, error = %e, "add_peer failed");
            }
        }
        for p in d.update {
            tracing::info!(peer = %p.address, "updating peer");
            if let Err(e) = speaker.update_peer(p.clone()).await {
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
        Ok(())
    }

    /// Hands a changed policy to the speaker (sessions stay up).
    async fn set_policy(&mut self, built: crate::policy::BuiltPolicy) {
        if built.policy == self.policy {
            return;
        }
        for p in &built.problems {
            tracing::warn!(problem = %p, "BGP policy");
        }
        tracing::info!(
            pools = built.policy.pools.len(),
            local_blocks = built.policy.local_blocks.len(),
            service_cidrs = built.policy.service_cidrs.len(),
            "BGP import/export policy changed"
        );
        if let Err(e) = self
            .shared
            .speaker()
            .set_policy(Some(built.policy.clone()))
            .await
        {
            tracing::warn!(error = %e, "set_policy failed");
        }
        self.policy = built.policy;
    }

    /// Replaces the speaker: every session resets, peers, originations and
    /// the FIB subscription are set up again on the new one.
    async fn restart_speaker(
        &mut self,
        params: SpeakerParams,
        policy: PolicyConfig,
        why: &str,
    ) -> Result<(), AgentError> {
        tracing::warn!(
            change = why,
            "restarting the BGP speaker in-process: every BGP session resets"
        );
        let _ = self.shared.speaker().shutdown().await;
        let (speaker, events) =
            crate::bgp::start(params, self.router_id, Some(policy.clone()), None).await?;
        let fib_rx = speaker.subscribe_fib().await?;
        self.shared.replace_speaker(speaker, params.asn);
        self.shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if self.bgp_port_flag.is_none() {
            self.me.port = params.port;
        }
        self.running = PeerMap::new();
        self.originated = BTreeSet::new();
        self.policy = policy;
        self.params = params;
        self.events = events;
        self.fib_rx = fib_rx;
        Ok(())
    }

    async fn originate(&mut self, snap: &Snapshot) {
        let want = crate::policy::originations(snap, &self.me.name, &self.policy);
        let gone: Vec<Prefix> = self.originated.difference(&want).copied().collect();
        let new: Vec<Prefix> = want.difference(&self.originated).copied().collect();
        let speaker = self.shared.speaker();
        if !gone.is_empty() {
            tracing::info!(count = gone.len(), "withdrawing prefixes");
            let _ = speaker.withdraw(gone).await;
        }
        if !new.is_empty() {
            tracing::info!(count = new.len(), "originating prefixes");
            let attrs = PathAttributes {
                origin: Some(Origin::Igp),
                ..PathAttributes::default()
            };
            let _ = speaker.originate(new, attrs).await;
        }
        self.originated = want;
    }

    fn on_fib(&mut self, ev: FibEvent) {
        if ev == FibEvent::RestartComplete {
            self.on_restart_complete();
            return;
        }
        let changed = self
            .shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_fib(&ev);
        if changed {
            self.feed();
        }
    }

    /// The speaker's restart is over and felix has the whole Loc-RIB (the
    /// FIB stream sent it just before): felix may sweep the BGP routes of
    /// the previous run that are not in it.
    fn on_restart_complete(&mut self) {
        tracing::info!("graceful restart complete: sweeping stale BGP routes");
        if let Some(tx) = &self.felix_tx {
            let _ = tx.send(FelixMsg::ReleaseHold);
        }
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
            let _ = tx.send(FelixMsg::Input(Box::new(input.clone())));
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
        node_ip6: cfg.node_ip6,
    };
    std::thread::Builder::new()
        .name("syncer".into())
        .spawn(move || sync::run(sc, tx))
        .ok();
    rx
}

fn start_felix(
    cfg: &AgentConfig,
    start: Start,
) -> (std::sync::mpsc::Sender<FelixMsg>, Arc<Mutex<FibState>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let state = Arc::new(Mutex::new(FibState::default()));
    let st = state.clone();
    let fc = crate::dataplane::felix_config(&cfg.mtu_file);
    std::thread::Builder::new()
        .name("felix".into())
        .spawn(move || crate::dataplane::run(fc, start, rx, st))
        .ok();
    (tx, state)
}

/// A restart: felix's protocols hold routes in the kernel from a previous
/// run (`kill -9`, a crash, an upgrade). Then the speaker starts as an
/// RFC 4724 §4.1 restarting speaker and felix holds those BGP routes until
/// the speaker's restart is complete. `None` for a fresh start and with
/// `--dataplane none`.
fn detect_restart(cfg: &AgentConfig) -> Option<RestartOptions> {
    if !cfg.dataplane {
        return None;
    }
    match crate::dataplane::previous_routes(&crate::dataplane::felix_config(&cfg.mtu_file)) {
        Ok(0) => None,
        Ok(routes) => {
            tracing::info!(
                routes,
                "routes of a previous run in the kernel: restarting gracefully (RFC 4724)"
            );
            Some(RestartOptions::default())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the kernel's routes: starting afresh");
            None
        }
    }
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
    let params = SpeakerParams::from_snapshot(&first, &cfg.node_name, cfg.bgp_port);
    let built = crate::policy::build(&first, &cfg.node_name);
    for p in &built.problems {
        tracing::warn!(problem = %p, "BGP policy");
    }
    let restart = detect_restart(&cfg);
    let (speaker, events) =
        crate::bgp::start(params, router_id, Some(built.policy.clone()), restart).await?;
    let fib_rx = speaker.subscribe_fib().await?;
    let felix_start = restart.map_or(Start::Fresh, |r| {
        Start::Restart(r.selection_deferral + crate::dataplane::RESTART_HOLD_MARGIN)
    });
    let (felix_tx, fib) = if cfg.dataplane {
        let (tx, st) = start_felix(&cfg, felix_start);
        (Some(tx), Some(st))
    } else {
        (None, None)
    };
    let shared = Arc::new(Shared {
        node: cfg.node_name.clone(),
        router_id,
        asn: AtomicU32::new(params.asn),
        current_speaker: RwLock::new(speaker),
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
            port: params.port,
        },
        node_ip: cfg.node_ip,
        router_id,
        bgp_port_flag: cfg.bgp_port,
        shared,
        running: PeerMap::new(),
        originated: BTreeSet::new(),
        felix_tx,
        last_input: None,
        connected: Vec::new(),
        params,
        policy: built.policy,
        events,
        fib_rx,
    };
    agent.on_snapshot(first).await?;
    let mut term = sigterm()?;
    loop {
        tokio::select! {
            Some(s) = snap_rx.recv() => agent.on_snapshot(s).await?,
            Some(ev) = agent.events.recv() => agent.on_speaker_event(ev),
            Some(ev) = agent.fib_rx.recv() => agent.on_fib(ev),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("shutting down");
    let _ = agent.shared.speaker().shutdown().await;
    let _ = std::fs::remove_file(&cfg.control_socket);
    Ok(())
}
