//! The dataplane task: felix's own loop ([`FelixDataplane`] with its kernel
//! and nftables monitors) on a blocking thread owned by the agent's task
//! tree. It takes the latest [`FelixInput`], computes the desired kernel
//! state and keeps the kernel there: a route, device, address, FDB /
//! neighbour entry, sysctl or nftables table of ours changed by someone
//! else is put back at once, a netlink overrun re-reads everything, and a
//! full re-read runs every FelixConfiguration `routeRefreshInterval`. It
//! publishes whether the FIB is in sync, how many routes it holds, and
//! reconcile timings.
//!
//! The agent talks to it through a mailbox (the latest input, settings, a
//! hold release, stop) and a wake-up on the same bounded queue the
//! monitors feed, so a slow pass never blocks the agent and a burst of
//! inputs collapses into the latest.
//!
//! Restart safety: nothing is written before the first input (the first
//! full datastore snapshot), so a restart never removes workload routes or
//! blackholes for lack of data; after a restart ([`previous_routes`] found
//! routes of ours) the BGP routes of the previous run are held — new and
//! changed ones written at once — until [`DataplaneTask::release_hold`]
//! (the speaker's restart is complete) or a bound ([`Start::Restart`]),
//! then swept. The FIB is not reported in sync while the hold lasts.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tortie_felix::{compute, FelixConfig, FelixInput, Ownership, RouteDataplane as _};
use tortie_felix_dataplane::routes::NetlinkRoutes;
use tortie_felix_dataplane::{
    event_queue, DataplaneOptions, EventQueue, EventSink, FelixDataplane, FelixError, IpipSupport,
    KernelEvent, Monitors, NatSupport,
};

use crate::felixcfg::DataplaneSettings;

pub use tortie_node_api::kernel_has_ipip;

/// After a restart, BGP routes of the previous run are held at most the
/// speaker's selection deferral plus this, should the speaker never say its
/// restart is complete.
pub const RESTART_HOLD_MARGIN: Duration = Duration::from_secs(30);
/// Events the monitors may queue before the loop reads them (beyond that
/// they are dropped and everything is re-read).
const QUEUE: usize = 4096;
/// The longest the loop sleeps without looking at its mailbox (the agent
/// wakes it on every post; this is only a safety net).
const POLL: Duration = Duration::from_secs(1);

/// Routes that are ours (felix's protocols inside `owned` prefixes) in
/// felix's table now, before felix runs: more than zero means tortie-node
/// ran here before and this is a restart.
pub fn previous_routes(config: &FelixConfig, owned: &Ownership) -> Result<usize, FelixError> {
    let mut routes = NetlinkRoutes::open(None, config.table, &config.protocols())?;
    let found = routes
        .dump_routes()
        .map_err(|e| FelixError::Routes(tortie_felix::reconcile::ReconcileError::Dump(e)))?;
    Ok(found.iter().filter(|(k, v)| owned.owns(k, v)).count())
}

/// Upper bounds (seconds) of the reconcile-time histogram buckets.
pub const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// What the dataplane task publishes.
#[derive(Debug, Clone, Default)]
pub struct FibState {
    /// Kernel matches the desired state.
    pub in_sync: bool,
    /// Desired routes learned over BGP.
    pub bgp_routes: u64,
    /// Desired routes felix computed.
    pub felix_routes: u64,
    /// Histogram counts per bucket (cumulative at render time).
    pub reconcile_buckets: [u64; 8],
    /// Number of passes.
    pub reconcile_count: u64,
    /// Total seconds.
    pub reconcile_sum: f64,
    /// Full re-reads of the kernel's routes.
    pub resyncs: u64,
}

impl FibState {
    /// Routes in total.
    pub fn routes(&self) -> u64 {
        self.bgp_routes + self.felix_routes
    }

    fn observe(&mut self, secs: f64) {
        self.reconcile_count += 1;
        self.reconcile_sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.reconcile_buckets[i] += 1;
        }
    }
}

/// Felix settings for a node whose pod MTU goes to `mtu_file`.
pub fn felix_config(mtu_file: &Path, settings: &DataplaneSettings) -> FelixConfig {
    FelixConfig {
        mtu_file: mtu_file.display().to_string(),
        proto_felix: settings.proto_felix,
        proto_bgp: settings.proto_bgp,
        ..FelixConfig::default()
    }
}

/// Whether the `nft` command (nftables) can be run; felix programs NAT
/// outgoing with it.
pub fn nft_present() -> bool {
    std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// How the dataplane starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A fresh start: routes of ours not desired are removed.
    Fresh,
    /// A restart: hold BGP routes not desired until released or this long.
    Restart(Duration),
}

/// What the task is started with.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Names, numbers, the MTU file.
    pub felix: FelixConfig,
    /// The first settings (from the first snapshot).
    pub settings: DataplaneSettings,
    /// Fresh start or restart.
    pub start: Start,
}

/// What the agent left for the loop.
#[derive(Debug, Default)]
struct Inbox {
    input: Option<Box<FelixInput>>,
    settings: Option<DataplaneSettings>,
    release: bool,
    stop: bool,
}

/// The agent's side of the running dataplane task.
#[derive(Debug)]
pub struct DataplaneTask {
    inbox: Arc<Mutex<Inbox>>,
    wake: EventSink,
    join: tokio::task::JoinHandle<()>,
}

impl DataplaneTask {
    /// Starts the loop on a blocking thread of the current runtime.
    pub fn start(cfg: DataplaneConfig, fib: Arc<Mutex<FibState>>) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let (wake, queue) = event_queue(QUEUE);
        let (ib, sink) = (inbox.clone(), wake.clone());
        let join = tokio::task::spawn_blocking(move || run(cfg, &ib, &queue, &sink, &fib));
        Self { inbox, wake, join }
    }

    fn post(&self, f: impl FnOnce(&mut Inbox)) {
        f(&mut self.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.send(KernelEvent::Wake);
    }

    /// The latest input (replaces any not taken yet).
    pub fn set_input(&self, input: FelixInput) {
        self.post(|i| i.input = Some(Box::new(input)));
    }

    /// New settings (protocol numbers, re-read period).
    pub fn set_settings(&self, s: DataplaneSettings) {
        self.post(|i| i.settings = Some(s));
    }

    /// The speaker's restart is complete: sweep the BGP routes held.
    pub fn release_hold(&self) {
        self.post(|i| i.release = true);
    }

    /// Stops the loop and waits for it (its monitors are joined too).
    pub async fn stop(self) {
        self.post(|i| i.stop = true);
        if let Err(e) = self.join.await {
            tracing::warn!(error = %e, "the dataplane task failed");
        }
    }
}

fn options(config: FelixConfig, resync: Duration) -> DataplaneOptions {
    DataplaneOptions {
        config,
        netns: None,
        resync_interval: resync,
        ipip: if kernel_has_ipip() {
            IpipSupport::Manage
        } else {
            IpipSupport::Skip
        },
        nat: if nft_present() {
            NatSupport::Manage
        } else {
            tracing::warn!("nft not found: pools with natOutgoing get no masquerade rules");
            NatSupport::Skip
        },
    }
}

fn stopping(inbox: &Mutex<Inbox>) -> bool {
    inbox.lock().unwrap_or_else(|e| e.into_inner()).stop
}

/// Opens the dataplane and its monitors, retrying every second until they
/// open or the task is stopped.
fn open(
    cfg: &DataplaneConfig,
    inbox: &Mutex<Inbox>,
    sink: &EventSink,
) -> Option<(FelixDataplane, Monitors)> {
    let opts = options(cfg.felix.clone(), cfg.settings.resync);
    loop {
        let opened = FelixDataplane::open(opts.clone()).and_then(|dp| {
            let m = dp.monitors(sink.clone())?;
            Ok((dp, m))
        });
        match opened {
            Ok(x) => return Some(x),
            Err(e) => tracing::warn!(error = %e, "cannot open the dataplane; retrying"),
        }
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if stopping(inbox) {
                return None;
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
}

/// The loop's state between passes.
struct Loop<'a> {
    dp: FelixDataplane,
    fib: &'a Mutex<FibState>,
    /// The latest input (recomputed when the protocol numbers change);
    /// nothing is written before the first one.
    input: Option<FelixInput>,
    /// Desired routes (BGP, computed).
    counts: (u64, u64),
    last_error: Option<String>,
}

impl Loop<'_> {
    /// Takes what the agent left; false when told to stop.
    fn take_inbox(&mut self, inbox: &Mutex<Inbox>) -> bool {
        let (input, settings, release, stop) = {
            let mut i = inbox.lock().unwrap_or_else(|e| e.into_inner());
            (
                i.input.take(),
                i.settings.take(),
                std::mem::take(&mut i.release),
                i.stop,
            )
        };
        if stop {
            return false;
        }
        if let Some(s) = settings {
            self.dp.set_protocols(s.proto_felix, s.proto_bgp);
            self.dp.set_resync_interval(s.resync);
        }
        if release {
            self.dp.release_hold();
        }
        if let Some(mut i) = input {
            i.host_interfaces = self.dp.host_interfaces().unwrap_or_default();
            self.input = Some(*i);
            self.recompute();
        } else if settings.is_some() {
            self.recompute();
        }
        true
    }

    /// Desired state from the latest input under the current settings.
    fn recompute(&mut self) {
        let Some(i) = &self.input else { return };
        let c = self.dp.config();
        let desired = compute(i, c);
        let bgp = desired
            .routes
            .values()
            .filter(|r| r.protocol == c.proto_bgp)
            .count() as u64;
        self.counts = (bgp, desired.routes.len() as u64 - bgp);
        self.dp.set_desired(desired);
    }

    fn pass(&mut self) {
        let start = Instant::now();
        let msg = match self.dp.apply(start) {
            Ok(r) if r.failed > 0 => Some(format!("{} route writes failed", r.failed)),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        if msg.is_some() && msg != self.last_error {
            tracing::warn!(
                error = msg.as_deref().unwrap_or_default(),
                "felix pass failed; retrying"
            );
        }
        self.last_error = msg;
        self.publish(start.elapsed().as_secs_f64());
    }

    fn publish(&self, secs: f64) {
        let mut s = self.fib.lock().unwrap_or_else(|e| e.into_inner());
        s.in_sync = self.dp.in_sync() && !self.dp.holding();
        (s.bgp_routes, s.felix_routes) = self.counts;
        s.resyncs = self.dp.stats().route_resyncs;
        s.observe(secs);
    }
}

/// The loop: runs until the agent says stop (or drops the task).
fn run(
    cfg: DataplaneConfig,
    inbox: &Mutex<Inbox>,
    queue: &EventQueue,
    sink: &EventSink,
    fib: &Mutex<FibState>,
) {
    let Some((mut dp, monitors)) = open(&cfg, inbox, sink) else {
        return;
    };
    if let Start::Restart(bound) = cfg.start {
        dp.hold(&[cfg.settings.proto_bgp], Instant::now() + bound);
    }
    let mut l = Loop {
        dp,
        fib,
        input: None,
        counts: (0, 0),
        last_error: None,
    };
    loop {
        let now = Instant::now();
        let wait = l.dp.next_wake(now).saturating_duration_since(now).min(POLL);
        if let Ok(ev) = queue.recv_timeout(wait) {
            l.dp.handle(ev);
            while let Some(ev) = queue.try_recv() {
                l.dp.handle(ev);
            }
        }
        if queue.take_lost() {
            l.dp.handle(KernelEvent::Overflow);
        }
        if !l.take_inbox(inbox) {
            break;
        }
        let now = Instant::now();
        if l.input.is_some() && l.dp.next_wake(now) <= now {
            l.pass();
        }
    }
    drop(monitors);
    tracing::info!("dataplane stopped; the kernel state stays as it is");
}
