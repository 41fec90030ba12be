//! The agent as one task tree on one tokio runtime: the datastore syncer
//! (a blocking thread of the runtime, the store driven by the runtime), the
//! BGP speaker, the dataplane task (felix's loop and its monitors on a
//! blocking thread), the control socket and HTTP servers, and the agent's
//! own loop ([`crate::handlers`]) joining them. Channels between them are
//! bounded; every task is joined on the way out.
//!
//! SIGTERM or SIGINT stops it in order, within 5 s: the BGP sessions end
//! (a Cease / Administrative Shutdown NOTIFICATION, or with
//! `--shutdown-mode graceful-restart` a close without one so that the peers
//! keep our routes through the restart), the servers stop (the control
//! socket's file is removed), the dataplane loop and the network-policy
//! task stop (the kernel state and the policy table stay: the next start
//! is a graceful restart), then the syncer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ipnet::IpNet;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tortie_bgp_session::State;
use tortie_bgp_speaker::{PeerStatus, RestartOptions, ShutdownMode, SpeakerError, SpeakerHandle};
use tortie_datastore::OpenOptions;
use tortie_felix::{owned_prefixes, Ownership};

use crate::bgp::SpeakerParams;
use crate::dataplane::{DataplaneConfig, DataplaneTask, FibState, Start};
use crate::feed::{felix_input, FeedContext};
use crate::felixcfg::{effective, DataplaneSettings};
use crate::handlers::{Agent, AgentStart};
use crate::learned::Learned;
use crate::netpol::{PolicyState, PolicyTask};
use crate::peers::LocalIdentity;
use crate::serve::{serve, Limits, ServerStats};
use crate::server::{bind_control, bind_http, ControlService, HttpService};
use crate::snapshot::Snapshot;
use crate::sync::{self, SyncConfig};

/// Snapshots the syncer may queue for the agent.
const SNAPSHOTS: usize = 4;
/// The longest each step of the shutdown may take.
const SPEAKER_STOP: Duration = Duration::from_secs(2);
const SERVERS_STOP: Duration = Duration::from_millis(500);
const DATAPLANE_STOP: Duration = Duration::from_secs(1);
const SYNCER_STOP: Duration = Duration::from_millis(300);
/// How often the password files of the sessions are read again (a
/// Kubernetes secret volume changes its files in place on rotation).
const SECRETS_POLL: Duration = Duration::from_secs(1);

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
    /// How sessions end on SIGTERM / SIGINT.
    pub shutdown: ShutdownMode,
    /// Where `secretKeyRef {name, key}` resolves: `<dir>/<name>/<key>`.
    pub secrets_dir: PathBuf,
    /// Sets the BGP crates' log level (BGPConfiguration `logSeverityScreen`);
    /// `None`: left as the subscriber has it.
    pub logs: Option<crate::logs::LogControl>,
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
    /// Network-policy state from the policy task (`None` when policy is
    /// not enforced: `--dataplane none`, or no `nft`).
    pub policy: Option<Arc<Mutex<PolicyState>>>,
    /// Sessions held back because their password cannot be read: shown
    /// as `Idle` with the reason in `last_error`.
    pub blocked: Mutex<Vec<PeerStatus>>,
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
    pub(crate) fn replace_speaker(&self, speaker: SpeakerHandle, asn: u32) {
        *self
            .current_speaker
            .write()
            .unwrap_or_else(|e| e.into_inner()) = speaker;
        self.asn.store(asn, Ordering::Relaxed);
    }

    /// Every peer's status from the speaker (empty if it stopped), and
    /// the sessions held back for their password.
    pub async fn peers(&self) -> Vec<PeerStatus> {
        let mut v = self.speaker().peer_status().await.unwrap_or_default();
        v.extend(
            self.blocked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        v.sort_by_key(|p| p.address);
        v
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

    /// Whether the last program of the policy table succeeded (true
    /// without policy).
    pub fn policy_ok(&self) -> bool {
        self.policy
            .as_ref()
            .is_none_or(|p| p.lock().unwrap_or_else(|e| e.into_inner()).ok())
    }

    /// Ready: every peer Established (with End-of-RIB received) or known
    /// down (it failed with an error), the FIB in sync, and the last
    /// program of the policy table successful.
    pub fn ready_with(&self, peers: &[PeerStatus]) -> bool {
        let learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        let peers_ok = peers.iter().all(|p| {
            if p.state == State::Established {
                learned.end_of_rib(&p.address)
            } else {
                p.last_error.is_some()
            }
        });
        peers_ok && self.fib_report().in_sync && self.policy_ok()
    }
}

/// The tasks the agent owns besides its own loop.
struct Tree {
    stop: CancellationToken,
    syncer: JoinHandle<()>,
    servers: Vec<JoinHandle<()>>,
    control_socket: PathBuf,
}

/// SIGTERM and SIGINT.
struct Signals(Signal, Signal);

impl Signals {
    fn new() -> Result<Self, AgentError> {
        let l = |what: &str| {
            let what = what.to_string();
            move |source| AgentError::Listen { what, source }
        };
        Ok(Self(
            signal(SignalKind::terminate()).map_err(l("SIGTERM"))?,
            signal(SignalKind::interrupt()).map_err(l("SIGINT"))?,
        ))
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.0.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = self.1.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
}

fn start_syncer(cfg: &AgentConfig) -> (JoinHandle<()>, mpsc::Receiver<Snapshot>) {
    let (tx, rx) = mpsc::channel(SNAPSHOTS);
    let sc = SyncConfig {
        datastore: cfg.datastore.clone(),
        options: cfg.options.clone(),
        node_name: cfg.node_name.clone(),
        node_ip: cfg.node_ip,
        node_ip6: cfg.node_ip6,
        policy: cfg.dataplane,
    };
    (tokio::task::spawn_blocking(move || sync::run(sc, tx)), rx)
}

/// The prefixes tortie owns here, from a snapshot (pools, node and tunnel
/// addresses), and the dataplane settings it gives.
fn ownership(cfg: &AgentConfig, snap: &Snapshot) -> (Vec<IpNet>, DataplaneSettings) {
    let ctx = FeedContext {
        me: &cfg.node_name,
        node_ip: cfg.node_ip,
        connected: &[],
    };
    let input = felix_input(snap, ctx, &Default::default());
    let settings = DataplaneSettings::from_spec(&effective(&snap.felix_configs, &cfg.node_name));
    (owned_prefixes(&input), settings)
}

/// A restart: routes of ours (felix's protocols inside tortie's prefixes)
/// are in the kernel from a previous run (`kill -9`, a crash, an upgrade,
/// a graceful-restart stop). Then the speaker starts as an RFC 4724 §4.1
/// restarting speaker and felix holds those BGP routes until the speaker's
/// restart is complete. `None` for a fresh start and with `--dataplane none`.
fn detect_restart(cfg: &AgentConfig, snap: &Snapshot) -> Option<RestartOptions> {
    if !cfg.dataplane {
        return None;
    }
    let (prefixes, settings) = ownership(cfg, snap);
    let felix = crate::dataplane::felix_config(&cfg.mtu_file, &settings);
    let owned = Ownership::new(felix.protocols(), prefixes);
    match crate::dataplane::previous_routes(&felix, &owned) {
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

fn start_dataplane(
    cfg: &AgentConfig,
    snap: &Snapshot,
    restart: Option<RestartOptions>,
) -> (Option<DataplaneTask>, Option<Arc<Mutex<FibState>>>) {
    if !cfg.dataplane {
        return (None, None);
    }
    let (_, settings) = ownership(cfg, snap);
    let start = restart.map_or(Start::Fresh, |r| {
        Start::Restart(r.selection_deferral + crate::dataplane::RESTART_HOLD_MARGIN)
    });
    let fib = Arc::new(Mutex::new(FibState::default()));
    let dc = DataplaneConfig {
        felix: crate::dataplane::felix_config(&cfg.mtu_file, &settings),
        settings,
        start,
    };
    (Some(DataplaneTask::start(dc, fib.clone())), Some(fib))
}

/// Starts the network-policy task when the agent programs the kernel and
/// `nft` is installed.
fn start_policy(cfg: &AgentConfig) -> (Option<PolicyTask>, Option<Arc<Mutex<PolicyState>>>) {
    if !cfg.dataplane {
        return (None, None);
    }
    if !crate::dataplane::nft_present() {
        tracing::warn!("nft not found: network policy is NOT enforced on this node");
        return (None, None);
    }
    let state = Arc::new(Mutex::new(PolicyState::default()));
    (Some(PolicyTask::start(state.clone())), Some(state))
}

/// Binds both servers and starts them under `stop`.
async fn start_servers(
    cfg: &AgentConfig,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
) -> Result<Vec<JoinHandle<()>>, AgentError> {
    let control = bind_control(&cfg.control_socket)?;
    let http = bind_http(cfg.http_addr).await?;
    let limits = Limits::default();
    let c = tokio::spawn(serve(
        control,
        Arc::new(ControlService(shared.clone())),
        limits,
        Arc::new(ServerStats::default()),
        stop.clone(),
    ));
    let h = tokio::spawn(serve(
        http,
        Arc::new(HttpService(shared.clone())),
        limits,
        Arc::new(ServerStats::default()),
        stop.clone(),
    ));
    Ok(vec![c, h])
}

/// Waits for `task` up to `limit`; false when it did not end in time.
async fn join_within<T>(what: &str, task: JoinHandle<T>, limit: Duration) -> bool {
    let abort = task.abort_handle();
    match tokio::time::timeout(limit, task).await {
        Ok(_) => true,
        Err(_) => {
            tracing::warn!(task = what, "did not stop in time");
            abort.abort();
            false
        }
    }
}

impl Tree {
    /// Stops what the tree owns in order; the speaker first, when there is one.
    async fn shutdown(
        self,
        speaker: Option<SpeakerHandle>,
        mode: ShutdownMode,
        dataplane: Option<DataplaneTask>,
        netpol: Option<PolicyTask>,
        snap_rx: mpsc::Receiver<Snapshot>,
    ) {
        if let Some(s) = speaker {
            let how = match mode {
                ShutdownMode::Cease => "Cease (Administrative Shutdown)",
                ShutdownMode::GracefulRestart => "graceful restart: peers keep our routes",
            };
            tracing::info!(sessions = how, "ending the BGP sessions");
            if tokio::time::timeout(SPEAKER_STOP, s.shutdown_with(mode))
                .await
                .is_err()
            {
                tracing::warn!("the BGP speaker did not stop in time");
            }
        }
        self.stop.cancel();
        for s in self.servers {
            join_within("server", s, SERVERS_STOP).await;
        }
        let _ = std::fs::remove_file(&self.control_socket);
        if let Some(dp) = dataplane {
            if tokio::time::timeout(DATAPLANE_STOP, dp.stop())
                .await
                .is_err()
            {
                tracing::warn!("the dataplane did not stop in time");
            }
        }
        if let Some(np) = netpol {
            if tokio::time::timeout(DATAPLANE_STOP, np.stop())
                .await
                .is_err()
            {
                tracing::warn!("the policy task did not stop in time");
            }
        }
        drop(snap_rx);
        join_within("syncer", self.syncer, SYNCER_STOP).await;
        tracing::info!("stopped");
    }
}

/// Runs the agent until SIGINT/SIGTERM, then stops every task in order.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let IpAddr::V4(router_id) = cfg.node_ip.addr() else {
        return Err(AgentError::NotIpv4(cfg.node_ip));
    };
    let mut signals = Signals::new()?;
    let (syncer, mut snap_rx) = start_syncer(&cfg);
    let mut tree = Tree {
        stop: CancellationToken::new(),
        syncer,
        servers: Vec::new(),
        control_socket: cfg.control_socket.clone(),
    };
    let first = tokio::select! {
        s = snap_rx.recv() => s,
        () = signals.recv() => None,
    };
    let Some(first) = first else {
        let stopped = tree.syncer.is_finished();
        tree.shutdown(None, cfg.shutdown, None, None, snap_rx).await;
        return if stopped {
            Err(AgentError::SyncerStopped)
        } else {
            Ok(())
        };
    };
    let mut agent = match start_agent(&cfg, router_id, &first, &mut tree).await {
        Ok(a) => a,
        Err(e) => {
            tree.shutdown(None, cfg.shutdown, None, None, snap_rx).await;
            return Err(e);
        }
    };
    let result = main_loop(&mut agent, first, &mut snap_rx, &mut signals).await;
    let speaker = agent.shared.speaker();
    let (dp, np) = (agent.dataplane.take(), agent.netpol.take());
    tree.shutdown(Some(speaker), cfg.shutdown, dp, np, snap_rx)
        .await;
    result
}

/// Starts the speaker, the dataplane and the servers for the first snapshot.
async fn start_agent(
    cfg: &AgentConfig,
    router_id: Ipv4Addr,
    first: &Snapshot,
    tree: &mut Tree,
) -> Result<Agent, AgentError> {
    let params = SpeakerParams::from_snapshot(first, &cfg.node_name, cfg.bgp_port);
    let built = crate::policy::build(first, &cfg.node_name);
    for p in &built.problems {
        tracing::warn!(problem = %p, "BGP policy");
    }
    let restart = detect_restart(cfg, first);
    let (speaker, events) =
        crate::bgp::start(params, router_id, Some(built.policy.clone()), restart).await?;
    let fib_rx = speaker.subscribe_fib().await?;
    let (dataplane, fib) = start_dataplane(cfg, first, restart);
    let (netpol, policy) = start_policy(cfg);
    let shared = Arc::new(Shared {
        node: cfg.node_name.clone(),
        router_id,
        asn: AtomicU32::new(params.asn),
        current_speaker: RwLock::new(speaker.clone()),
        learned: Mutex::new(Learned::default()),
        fib,
        snapshot: Mutex::new(Snapshot::default()),
        policy,
        blocked: Mutex::new(Vec::new()),
    });
    let agent = Agent::new(AgentStart {
        me: LocalIdentity {
            name: cfg.node_name.clone(),
            ip: cfg.node_ip.addr(),
            port: params.port,
        },
        node_ip: cfg.node_ip,
        router_id,
        bgp_port_flag: cfg.bgp_port,
        secrets_dir: cfg.secrets_dir.clone(),
        logs: cfg.logs.clone(),
        shared: shared.clone(),
        dataplane,
        netpol,
        params,
        policy: built.policy,
        events,
        fib_rx,
    });
    match start_servers(cfg, &shared, &tree.stop).await {
        Ok(s) => tree.servers = s,
        Err(e) => {
            let _ = tokio::time::timeout(SPEAKER_STOP, speaker.shutdown()).await;
            let mut agent = agent;
            if let Some(dp) = agent.dataplane.take() {
                dp.stop().await;
            }
            if let Some(np) = agent.netpol.take() {
                np.stop().await;
            }
            return Err(e);
        }
    }
    Ok(agent)
}

async fn main_loop(
    agent: &mut Agent,
    first: Snapshot,
    snap_rx: &mut mpsc::Receiver<Snapshot>,
    signals: &mut Signals,
) -> Result<(), AgentError> {
    agent.on_snapshot(first).await?;
    let mut secrets_poll = tokio::time::interval(SECRETS_POLL);
    secrets_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = secrets_poll.tick() => agent.on_secrets_poll().await,
            s = snap_rx.recv() => match s {
                Some(s) => agent.on_snapshot(s).await?,
                None => return Err(AgentError::SyncerStopped),
            },
            Some(ev) = agent.events.recv() => agent.on_speaker_event(ev),
            Some(ev) = agent.fib_rx.recv() => agent.on_fib(ev),
            () = signals.recv() => return Ok(()),
        }
    }
}
