//! The felix thread: takes the latest [`FelixInput`], computes the desired
//! kernel state and keeps the kernel there, publishing whether the FIB is
//! in sync, how many routes it holds, and reconcile timings.
//!
//! Restart safety: nothing is written before the first input (the first
//! full datastore snapshot), so a restart never removes workload routes or
//! blackholes for lack of data; after a restart ([`previous_routes`] found
//! routes of ours) the BGP routes of the previous run are held — new and
//! changed ones written at once — until [`FelixMsg::ReleaseHold`] (the
//! speaker's restart is complete) or a bound ([`Start::Restart`]), then
//! swept. The FIB is not reported in sync while the hold lasts.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tortie_felix::{compute, FelixConfig, FelixInput, RouteDataplane as _};
use tortie_felix_dataplane::routes::NetlinkRoutes;
use tortie_felix_dataplane::{
    DataplaneOptions, FelixDataplane, FelixError, IpipSupport, NatSupport,
};

/// After a restart, BGP routes of the previous run are held at most the
/// speaker's selection deferral plus this, should the speaker never say its
/// restart is complete.
pub const RESTART_HOLD_MARGIN: Duration = Duration::from_secs(30);

/// What the agent sends the felix thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FelixMsg {
    /// The latest input (replaces the previous one).
    Input(Box<FelixInput>),
    /// The speaker's restart is complete: sweep the BGP routes held.
    ReleaseHold,
}

/// Routes of felix's protocols in felix's table now (before felix runs):
/// more than zero means tortie-node ran here before and this is a restart.
pub fn previous_routes(config: &FelixConfig) -> Result<usize, FelixError> {
    let protocols = [config.proto_felix, config.proto_bgp];
    let mut routes = NetlinkRoutes::open(None, config.table, &protocols)?;
    let found = routes
        .dump_routes()
        .map_err(|e| FelixError::Routes(tortie_felix::reconcile::ReconcileError::Dump(e)))?;
    Ok(found.len())
}

/// Upper bounds (seconds) of the reconcile-time histogram buckets.
pub const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// What the felix thread publishes.
#[derive(Debug, Clone, Default)]
pub struct FibState {
    /// Kernel matches the desired state.
    pub in_sync: bool,
    /// Desired routes by protocol number.
    pub routes_by_proto: std::collections::BTreeMap<u8, u64>,
    /// Histogram counts per bucket (cumulative at render time).
    pub reconcile_buckets: [u64; 8],
    /// Number of passes.
    pub reconcile_count: u64,
    /// Total seconds.
    pub reconcile_sum: f64,
}

impl FibState {
    /// Routes in total.
    pub fn routes(&self) -> u64 {
        self.routes_by_proto.values().sum()
    }

    fn observe(&mut self, secs: f64) {
        self.reconcile_count += 1;
        self.reconcile_sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.reconcile_buckets[i] += 1;
        }
    }
}

pub use tortie_node_api::kernel_has_ipip;

/// Felix settings for a node whose state lives under `state_dir` (the MTU file).
pub fn felix_config(mtu_file: &Path) -> FelixConfig {
    FelixConfig {
        mtu_file: mtu_file.display().to_string(),
        ..FelixConfig::default()
    }
}

fn open(config: FelixConfig) -> Result<FelixDataplane, FelixError> {
    FelixDataplane::open(DataplaneOptions {
        config,
        netns: None,
        resync_interval: Duration::from_secs(30),
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
    })
}

/// Whether the `nft` command (nftables) can be run; felix programs NAT
/// outgoing with it.
fn nft_present() -> bool {
    std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

type ProtoCounts = std::collections::BTreeMap<u8, u64>;

fn count_by_proto(d: &tortie_felix::DesiredState) -> ProtoCounts {
    let mut by_proto = ProtoCounts::new();
    for spec in d.routes.values() {
        *by_proto.entry(spec.protocol).or_insert(0) += 1;
    }
    by_proto
}

/// How the felix thread starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A fresh start: routes of ours not desired are removed.
    Fresh,
    /// A restart: hold BGP routes not desired until released or this long.
    Restart(Duration),
}

fn open_retrying(config: &FelixConfig) -> FelixDataplane {
    loop {
        match open(config.clone()) {
            Ok(dp) => return dp,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the dataplane; retrying");
                std::thread::park_timeout(Duration::from_secs(1));
            }
        }
    }
}

/// Takes one message from the agent.
fn receive(m: FelixMsg, input: &mut Option<FelixInput>, dp: &mut FelixDataplane) {
    match m {
        FelixMsg::Input(i) => *input = Some(*i),
        FelixMsg::ReleaseHold => dp.release_hold(),
    }
}

/// Runs until `input_rx` closes.
pub fn run(
    config: FelixConfig,
    start: Start,
    input_rx: Receiver<FelixMsg>,
    state: Arc<Mutex<FibState>>,
) {
    let mut dp = open_retrying(&config);
    if let Start::Restart(bound) = start {
        dp.hold(&[config.proto_bgp], Instant::now() + bound);
    }
    let mut input: Option<FelixInput> = None;
    let mut counts = ProtoCounts::new();
    // Nothing is written before the first input: an empty desired state
    // would delete every route of ours, workload routes included.
    let mut started = false;
    loop {
        match input_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => receive(m, &mut input, &mut dp),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(m) = input_rx.try_recv() {
            receive(m, &mut input, &mut dp);
        }
        let Some(mut i) = input.take() else {
            if !started || (dp.in_sync() && !dp.holding()) {
                continue;
            }
            pass(&mut dp, &state, &counts);
            continue;
        };
        started = true;
        i.host_interfaces = dp.host_interfaces().unwrap_or_default();
        let desired = compute(&i, &config);
        counts = count_by_proto(&desired);
        dp.set_desired(desired);
        pass(&mut dp, &state, &counts);
    }
}

fn pass(dp: &mut FelixDataplane, state: &Mutex<FibState>, counts: &ProtoCounts) {
    let start = Instant::now();
    match dp.apply(start) {
        Ok(r) if r.failed > 0 => tracing::warn!(failed = r.failed, "route writes failed"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "felix pass failed; retrying"),
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.in_sync = dp.in_sync() && !dp.holding();
    s.routes_by_proto = counts.clone();
    s.observe(start.elapsed().as_secs_f64());
}
