//! The network-policy task: felix's policy table (`inet tortie-policy`)
//! kept equal to what the datastore says, on a blocking thread of the
//! agent's task tree beside the routing dataplane.
//!
//! The agent hands it the latest [`PolicyInput`] (built from each
//! snapshot); the task compiles it ([`tortie_felix::policy::compile`]) and
//! programs the table with one atomic `nft -f` transaction through
//! [`PolicyProgrammer`] (the minimal difference from what was applied,
//! a whole replace the first time). Inputs arriving while a program runs
//! collapse into the latest (the syncer already coalesces datastore bursts),
//! and an input equal to the last one is not compiled again.
//!
//! Repair: an nftables monitor on the table reports commits by any process
//! other than our own `nft` children; the task then checks the table
//! ([`PolicyProgrammer::check`]) and replaces it whole if it drifted. A
//! check also runs every [`CHECK`] as a safety net, and a failed program is
//! retried every [`RETRY`]. Nothing is written before the first input (the
//! first full snapshot), so a restart never opens or closes traffic for
//! lack of data.
//!
//! Must not: touch any nftables table but its own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tortie_felix::policy::{compile, PolicyConfig, PolicyInput};
use tortie_felix_dataplane::nftmon::NftMonitor;
use tortie_felix_dataplane::policy::{PolicyProgrammer, TableState};
use tortie_felix_dataplane::{event_queue, EventQueue, EventSink, KernelEvent};

use crate::snapshot::Snapshot;

/// Safety-net check of the table when no monitor event came.
pub const CHECK: Duration = Duration::from_secs(10);
/// Retry of a failed program.
pub const RETRY: Duration = Duration::from_secs(1);
/// Events the monitor may queue.
const QUEUE: usize = 256;
/// Upper bounds (seconds) of the program-time histogram buckets.
pub const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

/// The policy input of node `me` from a snapshot.
pub fn policy_input(snap: &Snapshot, me: &str) -> PolicyInput {
    PolicyInput {
        node_name: me.to_string(),
        ..snap.policy.input.clone()
    }
}

/// What the task publishes (metrics, readiness).
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    /// Successful programs of the table (changes written).
    pub programs: u64,
    /// Failed programs.
    pub errors: u64,
    /// Repairs: the table drifted (someone else changed it) and was restored.
    pub repairs: u64,
    /// Rules in the table.
    pub rules: u64,
    /// Named sets in the table.
    pub sets: u64,
    /// Local endpoints policed.
    pub endpoints: u64,
    /// The last program failed (with this error); cleared by a success.
    pub last_error: Option<String>,
    /// Histogram counts per bucket of program time (compile + nft).
    pub buckets: [u64; 8],
    /// Programs timed.
    pub count: u64,
    /// Total seconds.
    pub sum: f64,
}

impl PolicyState {
    /// Ready: the last program did not fail.
    pub fn ok(&self) -> bool {
        self.last_error.is_none()
    }

    fn observe(&mut self, secs: f64) {
        self.count += 1;
        self.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
    }
}

#[derive(Debug, Default)]
struct Inbox {
    input: Option<Box<PolicyInput>>,
    stop: bool,
}

/// The agent's side of the running policy task.
#[derive(Debug)]
pub struct PolicyTask {
    inbox: Arc<Mutex<Inbox>>,
    wake: EventSink,
    join: tokio::task::JoinHandle<()>,
}

impl PolicyTask {
    /// Starts the task on a blocking thread of the current runtime.
    pub fn start(state: Arc<Mutex<PolicyState>>) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let (wake, queue) = event_queue(QUEUE);
        let (ib, sink) = (inbox.clone(), wake.clone());
        let join = tokio::task::spawn_blocking(move || run(&ib, &queue, &sink, &state));
        Self { inbox, wake, join }
    }

    fn post(&self, f: impl FnOnce(&mut Inbox)) {
        f(&mut self.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.send(KernelEvent::Wake);
    }

    /// The latest input (replaces any not taken yet).
    pub fn set_input(&self, input: PolicyInput) {
        self.post(|i| i.input = Some(Box::new(input)));
    }

    /// Stops the task and waits for it (the table stays as it is).
    pub async fn stop(self) {
        self.post(|i| i.stop = true);
        if let Err(e) = self.join.await {
            tracing::warn!(error = %e, "the policy task failed");
        }
    }
}

/// The loop's state.
struct Loop<'a> {
    cfg: PolicyConfig,
    prog: PolicyProgrammer,
    state: &'a Mutex<PolicyState>,
    input: Option<PolicyInput>,
    /// The input changed since the last successful program.
    dirty: bool,
    /// The table may have been changed by someone else.
    suspect: bool,
    next_check: Instant,
    next_retry: Option<Instant>,
}

impl Loop<'_> {
    fn take(&mut self, inbox: &Mutex<Inbox>) -> bool {
        let (input, stop) = {
            let mut i = inbox.lock().unwrap_or_else(|e| e.into_inner());
            (i.input.take(), i.stop)
        };
        if let Some(i) = input {
            if self.input.as_ref() != Some(&*i) {
                self.input = Some(*i);
                self.dirty = true;
                self.next_retry = None;
            }
        }
        !stop
    }

    fn program(&mut self) {
        let Some(input) = &self.input else { return };
        let start = Instant::now();
        let compiled = compile(input, &self.cfg);
        for p in &compiled.problems {
            tracing::warn!(problem = %p, "network policy");
        }
        let rules: usize = compiled
            .ruleset
            .chains
            .values()
            .map(|c| c.rules.len())
            .sum();
        let result = self.prog.apply(&compiled.ruleset);
        let secs = start.elapsed().as_secs_f64();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(r) => {
                if !r.unchanged {
                    s.programs += 1;
                    s.observe(secs);
                    tracing::debug!(
                        commands = r.commands,
                        full = r.full,
                        seconds = secs,
                        "policy table programmed"
                    );
                }
                s.rules = rules as u64;
                s.sets = compiled.ruleset.sets.len() as u64;
                s.endpoints = compiled.applied.len() as u64;
                if s.last_error.take().is_some() {
                    tracing::info!("policy table programmed again after a failure");
                }
                self.dirty = false;
                self.next_retry = None;
            }
            Err(e) => {
                s.errors += 1;
                let msg = e.to_string();
                if s.last_error.as_deref() != Some(&msg) {
                    tracing::warn!(error = %msg, "cannot program the policy table; retrying");
                }
                s.last_error = Some(msg);
                self.prog.invalidate();
                self.next_retry = Some(Instant::now() + RETRY);
            }
        }
    }

    fn check(&mut self) {
        self.next_check = Instant::now() + CHECK;
        self.suspect = false;
        match self.prog.check() {
            Ok(TableState::Drifted) => {
                tracing::warn!("policy table changed by someone else; restoring it");
                self.prog.invalidate();
                self.dirty = true;
                self.program();
                if !self.dirty {
                    self.state.lock().unwrap_or_else(|e| e.into_inner()).repairs += 1;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the policy table back; replacing it");
                self.prog.invalidate();
                self.dirty = true;
                self.program();
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut t = self.next_check;
        if let Some(r) = self.next_retry {
            t = t.min(r);
        }
        t
    }

    fn step(&mut self) {
        let now = Instant::now();
        let retry_due = self.next_retry.is_none_or(|r| r <= now);
        if self.dirty && retry_due {
            self.program();
        } else if self.suspect || (self.input.is_some() && now >= self.next_check) {
            self.check();
        }
    }
}

fn run(inbox: &Mutex<Inbox>, queue: &EventQueue, sink: &EventSink, state: &Mutex<PolicyState>) {
    let cfg = PolicyConfig::default();
    let prog = PolicyProgrammer::new(None, &cfg.table);
    let monitor = match NftMonitor::start_inet(None, &cfg.table, prog.own_pids(), sink.clone()) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "no nftables monitor: the policy table is checked every 10 s only");
            None
        }
    };
    let mut l = Loop {
        cfg,
        prog,
        state,
        input: None,
        dirty: false,
        suspect: false,
        next_check: Instant::now() + CHECK,
        next_retry: None,
    };
    loop {
        let wait = l.next_wake().saturating_duration_since(Instant::now());
        if let Ok(ev) = queue.recv_timeout(wait) {
            let mut evs = vec![ev];
            while let Some(ev) = queue.try_recv() {
                evs.push(ev);
            }
            if evs.iter().any(|e| *e != KernelEvent::Wake) {
                l.suspect = true;
            }
        }
        if queue.take_lost() {
            l.suspect = true;
        }
        if !l.take(inbox) {
            break;
        }
        if l.input.is_some() {
            l.step();
        }
    }
    drop(monitor);
    tracing::info!("policy task stopped; the policy table stays as it is");
}
