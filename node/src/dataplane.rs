//! The felix thread: takes the latest [`FelixInput`], computes the desired
//! kernel state and keeps the kernel there, publishing whether the FIB is
//! in sync, how many routes it holds, and reconcile timings.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tortie_felix::{compute, FelixConfig, FelixInput};
use tortie_felix_dataplane::{
    DataplaneOptions, FelixDataplane, FelixError, IpipSupport, NatSupport,
};

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

/// Whether this kernel has IPIP (the `ipip` module is loaded or built in).
pub fn kernel_has_ipip() -> bool {
    Path::new("/sys/module/ipip").exists()
}

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
        nat: NatSupport::Skip,
    })
}

type ProtoCounts = std::collections::BTreeMap<u8, u64>;

fn count_by_proto(d: &tortie_felix::DesiredState) -> ProtoCounts {
    let mut by_proto = ProtoCounts::new();
    for spec in d.routes.values() {
        *by_proto.entry(spec.protocol).or_insert(0) += 1;
    }
    by_proto
}

/// Runs until `input_rx` closes.
pub fn run(config: FelixConfig, input_rx: Receiver<FelixInput>, state: Arc<Mutex<FibState>>) {
    let mut dp = loop {
        match open(config.clone()) {
            Ok(dp) => break dp,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the dataplane; retrying");
                std::thread::park_timeout(Duration::from_secs(1));
            }
        }
    };
    let mut input: Option<FelixInput> = None;
    let mut counts = ProtoCounts::new();
    loop {
        match input_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(i) => input = Some(i),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(i) = input_rx.try_recv() {
            input = Some(i);
        }
        let Some(mut i) = input.take() else {
            if dp.in_sync() {
                continue;
            }
            pass(&mut dp, &state, &counts);
            continue;
        };
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
    s.in_sync = dp.in_sync();
    s.routes_by_proto = counts.clone();
    s.observe(start.elapsed().as_secs_f64());
}
