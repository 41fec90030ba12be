//! The felix dataplane shell: applies a `DesiredState` (devices, sysctls,
//! MTU file, NAT, routes) into one namespace and keeps it there.
//!
//! Keeping it there: [`FelixDataplane::monitors`] starts the kernel and
//! nftables monitors, whose [`KernelEvent`]s ([`FelixDataplane::handle`])
//! mark what must be looked at again — a route event goes straight into the
//! reconciler, a device / address / FDB / neighbour change of ours or a
//! foreign change to our nftables table makes the device step due, a link
//! going down makes the routes be re-read, an overrun makes everything be
//! re-read. Besides, sysctls and the MTU file are checked every
//! [`HOST_CHECK`] (the kernel announces few sysctl changes), and everything
//! is re-read every `resync_interval` (FelixConfiguration
//! `routeRefreshInterval`). [`FelixDataplane::next_wake`] says when the next
//! pass is due; [`FelixDataplane::run`] is the loop for callers without one.
//!
//! Restart hold: [`FelixDataplane::hold`] keeps the routes of some protocols
//! that the kernel holds but the desired state lacks, and the VXLAN device
//! and VTEP entries they may use, until [`FelixDataplane::release_hold`] or
//! the hold's bound; routes are still added and replaced meanwhile.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use tortie_felix::input::HostInterface;
use tortie_felix::reconcile::ReconcileError;
use tortie_felix::{ApplyReport, DesiredState, FelixConfig, Ownership, Reconciler, RouteHold};

use crate::devices::{ensure_ipip, ensure_vxlan, sync_vteps, DeviceError, Removal};
use crate::events::{EventQueue, EventSink, KernelEvent};
use crate::host::{apply_sysctls, write_mtu_file, HostError};
use crate::links::dump_links;
use crate::monitor::{KernelMonitor, MonitorConfig};
use crate::nat::{NatError, NatProgrammer};
use crate::nftmon::NftMonitor;
use crate::nl::{NlError, NlSocket};
use crate::routes::{NetlinkRoutes, RouteError};

/// Sysctls and the MTU file are checked this often.
pub const HOST_CHECK: Duration = Duration::from_millis(500);
/// A failed pass is retried after this long.
pub const RETRY: Duration = Duration::from_millis(100);
/// The longest wait between retries of a failing device step.
const DEVICE_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Device steps set off by events are at least this far apart (a device
/// change felix cannot make stick must not become a busy loop).
const DEVICE_MIN_GAP: Duration = Duration::from_millis(20);

/// A pass of the dataplane failed somewhere; the next pass retries.
#[derive(Debug, thiserror::Error)]
pub enum FelixError {
    /// Netlink setup failed.
    #[error(transparent)]
    Netlink(#[from] NlError),
    /// A device could not be set up.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A sysctl or the MTU file could not be written.
    #[error(transparent)]
    Host(#[from] HostError),
    /// nftables refused NAT outgoing.
    #[error(transparent)]
    Nat(#[from] NatError),
    /// Reading routes failed.
    #[error(transparent)]
    Routes(#[from] ReconcileError<RouteError>),
    /// The policy table could not be written or removed.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

/// Whether the device tunl0 is required to exist (kernels without IPIP can
/// still run VXLAN or direct routing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpipSupport {
    /// Manage tunl0.
    Manage,
    /// Leave tunl0 alone (no ipip module here).
    Skip,
}

/// Whether NAT outgoing is programmed (needs `nft` and nf_tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatSupport {
    /// Program the NAT table.
    Manage,
    /// Leave nftables alone.
    Skip,
}

/// Configuration of the shell.
#[derive(Debug, Clone)]
pub struct DataplaneOptions {
    /// Names, numbers and paths.
    pub config: FelixConfig,
    /// Namespace to program (`None`: the current one).
    pub netns: Option<PathBuf>,
    /// Full re-read period (FelixConfiguration `routeRefreshInterval`).
    pub resync_interval: Duration,
    /// tunl0 handling.
    pub ipip: IpipSupport,
    /// NAT outgoing handling.
    pub nat: NatSupport,
}

/// The monitors of one dataplane; dropping them stops and joins their threads.
#[derive(Debug)]
pub struct Monitors {
    _kernel: KernelMonitor,
    _nft: Option<NftMonitor>,
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataplaneStats {
    /// Passes run.
    pub passes: u64,
    /// Device steps run (devices, FDB / neighbours, NAT).
    pub device_steps: u64,
    /// Full re-reads of the routes.
    pub route_resyncs: u64,
}

/// When the device step runs next.
#[derive(Debug, Clone, Copy, Default)]
struct DeviceSchedule {
    /// Something changed: run at `not_before`.
    due: bool,
    not_before: Option<Instant>,
    failures: u32,
    /// The last run (the periodic re-read counts from it).
    last: Option<Instant>,
}

/// Everything felix programs into one namespace.
#[derive(Debug)]
pub struct FelixDataplane {
    opts: DataplaneOptions,
    reconciler: Reconciler<NetlinkRoutes>,
    sock: NlSocket,
    nat: NatProgrammer,
    desired: DesiredState,
    devices: DeviceSchedule,
    next_host_check: Option<Instant>,
    route_retry: Option<Instant>,
    /// Protocol numbers used earlier in this run (their routes stay ours).
    retired: BTreeSet<u8>,
    passes: u64,
    device_steps: u64,
}

fn backoff(failures: u32) -> Duration {
    (RETRY * 2u32.saturating_pow(failures.min(8))).min(DEVICE_BACKOFF_MAX)
}

impl FelixDataplane {
    /// Opens the netlink sockets in the target namespace.
    pub fn open(opts: DataplaneOptions) -> Result<Self, FelixError> {
        let ns = opts.netns.as_deref();
        let c = &opts.config;
        let routes = NetlinkRoutes::open(ns, c.table, &c.protocols())?;
        let mut reconciler = Reconciler::new(routes, opts.resync_interval);
        reconciler.set_ownership(Ownership::new(c.protocols(), Vec::new()));
        Ok(Self {
            reconciler,
            sock: NlSocket::open(ns)?,
            nat: NatProgrammer::new(ns, &c.nat_table),
            desired: DesiredState::default(),
            devices: DeviceSchedule {
                due: true,
                ..DeviceSchedule::default()
            },
            next_host_check: None,
            route_retry: None,
            retired: BTreeSet::new(),
            passes: 0,
            device_steps: 0,
            opts,
        })
    }

    /// The namespace programmed.
    pub fn netns(&self) -> Option<&Path> {
        self.opts.netns.as_deref()
    }

    /// The configuration in force.
    pub fn config(&self) -> &FelixConfig {
        &self.opts.config
    }

    /// Up interfaces with their MTUs (input to MTU detection).
    pub fn host_interfaces(&mut self) -> Result<Vec<HostInterface>, FelixError> {
        Ok(dump_links(&mut self.sock)?
            .into_iter()
            .filter(|l| l.up)
            .map(|l| HostInterface {
                name: l.name,
                mtu: l.mtu,
            })
            .collect())
    }

    /// Every protocol number whose routes are ours: the current two and
    /// those used earlier in this run.
    fn protocols(&self) -> Vec<u8> {
        let mut all: BTreeSet<u8> = self.retired.clone();
        all.extend(self.opts.config.protocols());
        all.into_iter().collect()
    }

    fn update_ownership(&mut self) {
        let o = Ownership::new(self.protocols(), self.desired.owned_prefixes.clone());
        self.reconciler.set_ownership(o);
    }

    /// Sets the state to hold.
    pub fn set_desired(&mut self, desired: DesiredState) {
        self.reconciler.set_desired(desired.routes.clone());
        if desired != self.desired {
            self.devices.due = true;
            self.devices.not_before = None;
        }
        self.desired = desired;
        self.update_ownership();
    }

    /// Writes routes with these protocol numbers from now on (FelixConfiguration
    /// `deviceRouteProtocol` / `bgpRouteProtocol`). Routes of the numbers used
    /// before stay ours for the rest of this run, so they are replaced or
    /// removed like any other.
    pub fn set_protocols(&mut self, proto_felix: u8, proto_bgp: u8) {
        let c = &mut self.opts.config;
        if (c.proto_felix, c.proto_bgp) == (proto_felix, proto_bgp) {
            return;
        }
        self.retired.extend(c.protocols());
        c.proto_felix = proto_felix;
        c.proto_bgp = proto_bgp;
        self.retired
            .retain(|p| ![proto_felix, proto_bgp].contains(p));
        let all = self.protocols();
        self.reconciler.dataplane_mut().set_protocols(&all);
        self.update_ownership();
    }

    /// Re-reads everything every `interval` from now on.
    pub fn set_resync_interval(&mut self, interval: Duration) {
        self.opts.resync_interval = interval;
        self.reconciler.set_resync_interval(interval);
    }

    /// Takes one event from the monitors.
    pub fn handle(&mut self, ev: KernelEvent) {
        match ev {
            KernelEvent::Route(r) => self.reconciler.on_event(r),
            KernelEvent::LinksChanged => self.reconciler.request_resync(),
            KernelEvent::DevicesChanged => self.devices.due = true,
            KernelEvent::NatChanged => {
                self.nat.invalidate();
                self.devices.due = true;
            }
            KernelEvent::Overflow => {
                self.reconciler.request_resync();
                self.nat.invalidate();
                self.devices.due = true;
            }
            KernelEvent::Wake => {}
        }
    }

    /// Starts the kernel monitor (and the nftables monitor when NAT is
    /// managed) for this namespace, sending to `sink`.
    pub fn monitors(&self, sink: EventSink) -> Result<Monitors, NlError> {
        let c = &self.opts.config;
        let cfg = MonitorConfig {
            table: c.table,
            devices: vec![c.ipip_device.clone(), c.vxlan_device.clone()],
        };
        let kernel = KernelMonitor::start(self.netns(), cfg, sink.clone())?;
        let nft = match self.opts.nat {
            NatSupport::Manage => Some(NftMonitor::start(
                self.netns(),
                &c.nat_table,
                self.nat.own_pids(),
                sink,
            )?),
            NatSupport::Skip => None,
        };
        Ok(Monitors {
            _kernel: kernel,
            _nft: nft,
        })
    }

    /// A bounded event queue of `capacity` with this dataplane's monitors
    /// feeding it (for [`FelixDataplane::run`]); keep the monitors alive.
    pub fn watch(&self, capacity: usize) -> Result<(Monitors, EventQueue), NlError> {
        let (sink, queue) = crate::events::event_queue(capacity);
        Ok((self.monitors(sink)?, queue))
    }

    /// Keeps undesired routes of `protocols` (and the VXLAN state) until
    /// [`FelixDataplane::release_hold`] or `until`, whichever comes first.
    pub fn hold(&mut self, protocols: &[u8], until: Instant) {
        let protocols: BTreeSet<u8> = protocols.iter().copied().collect();
        tracing::info!(
            ?protocols,
            "holding routes not (yet) desired until released"
        );
        self.reconciler.hold(RouteHold { protocols, until });
    }

    /// Ends the hold: the next pass sweeps what it kept.
    pub fn release_hold(&mut self) {
        if self.reconciler.release_hold() {
            tracing::info!(held = self.reconciler.held(), "hold released: sweeping");
            self.devices.due = true;
            self.devices.not_before = None;
        }
    }

    /// True while a hold is active.
    pub fn holding(&self) -> bool {
        self.reconciler.holding().is_some()
    }

    /// True when routes match and nothing else is due.
    pub fn in_sync(&self) -> bool {
        !self.devices.due && self.reconciler.in_sync()
    }

    /// The route reconciler (for counts and `in_sync`).
    pub fn routes(&self) -> &Reconciler<NetlinkRoutes> {
        &self.reconciler
    }

    /// Counters.
    pub fn stats(&self) -> DataplaneStats {
        DataplaneStats {
            passes: self.passes,
            device_steps: self.device_steps,
            route_resyncs: self.reconciler.resyncs(),
        }
    }

    /// When the next pass is due (now, when something is pending).
    pub fn next_wake(&self, now: Instant) -> Instant {
        let interval = self.opts.resync_interval;
        let mut at = [
            self.reconciler.next_resync().unwrap_or(now),
            self.devices.last.map_or(now, |t| t + interval),
            self.next_host_check.unwrap_or(now),
        ]
        .into_iter()
        .min()
        .unwrap_or(now);
        if let Some(h) = self.reconciler.holding() {
            at = at.min(h.until);
        }
        if self.devices.due {
            at = at.min(self.devices.not_before.unwrap_or(now));
        }
        if self.reconciler.has_work() {
            at = at.min(self.route_retry.unwrap_or(now));
        }
        at
    }

    /// Devices, FDB / neighbours and NAT; every step runs even when an
    /// earlier one failed (the first error is returned).
    fn apply_devices(&mut self) -> Result<(), FelixError> {
        let c = &self.opts.config;
        let d = &self.desired;
        let removal = match self.reconciler.holding() {
            Some(_) => Removal::Deferred,
            None => Removal::Now,
        };
        let mut first: Option<FelixError> = None;
        let mut note = |r: Result<(), FelixError>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        if let (Some(ipip), IpipSupport::Manage) = (&d.ipip, self.opts.ipip) {
            note(ensure_ipip(&mut self.sock, c, ipip).map_err(FelixError::from));
        }
        match ensure_vxlan(&mut self.sock, c, d.vxlan.as_ref(), removal) {
            Ok(Some(idx)) => note(
                sync_vteps(&mut self.sock, c, idx, &d.vteps, removal).map_err(FelixError::from),
            ),
            Ok(None) => {}
            Err(e) => note(Err(e.into())),
        }
        if self.opts.nat == NatSupport::Manage {
            note(self.nat.apply(&d.nat).map(drop).map_err(FelixError::from));
        }
        first.map_or(Ok(()), Err)
    }

    /// Sysctls and the MTU file (both steps run; the first error is returned).
    fn apply_host(&mut self) -> Result<(), FelixError> {
        let sysctls = apply_sysctls(self.opts.netns.as_deref(), &self.desired.sysctls);
        let mtu = write_mtu_file(Path::new(&self.opts.config.mtu_file), self.desired.mtus.pod);
        sysctls.map(drop).and(mtu).map_err(FelixError::from)
    }

    /// The device step, when due (a change, or the periodic re-read).
    fn device_step(&mut self, now: Instant) -> Option<FelixError> {
        if self.reconciler.expire_hold(now) {
            tracing::warn!("the route hold ran out before it was released: sweeping");
            self.devices.due = true;
            self.devices.not_before = None;
        }
        let periodic = self
            .devices
            .last
            .is_none_or(|t| now >= t + self.opts.resync_interval);
        if periodic {
            self.nat.invalidate();
            self.devices.due = true;
            self.devices.not_before = None;
        }
        if !self.devices.due || self.devices.not_before.is_some_and(|t| now < t) {
            return None;
        }
        let _span = tracing::debug_span!("devices").entered();
        self.device_steps += 1;
        self.devices.last = Some(now);
        match self.apply_devices() {
            Ok(()) => {
                self.devices.due = false;
                self.devices.failures = 0;
                self.devices.not_before = Some(now + DEVICE_MIN_GAP);
                None
            }
            Err(e) => {
                self.devices.failures += 1;
                self.devices.not_before = Some(now + backoff(self.devices.failures));
                Some(e)
            }
        }
    }

    /// One pass at `now`: devices/NAT when changed or due, sysctls and the
    /// MTU file when their check is due, then routes. A device or host error
    /// is returned after the routes were written: a broken device or NAT
    /// step must not hold back the routes that don't depend on it.
    pub fn apply(&mut self, now: Instant) -> Result<ApplyReport, FelixError> {
        self.passes += 1;
        let mut err = self.device_step(now);
        if self.next_host_check.is_none_or(|t| now >= t) {
            self.next_host_check = Some(now + HOST_CHECK);
            if let Err(e) = self.apply_host() {
                err.get_or_insert(e);
            }
        }
        let span = tracing::debug_span!("reconcile", table = self.opts.config.table);
        let _g = span.enter();
        let report = match self.reconciler.apply(now) {
            Ok(r) => r,
            Err(e) => {
                self.route_retry = Some(now + RETRY);
                return Err(e.into());
            }
        };
        self.route_retry = (report.failed > 0).then_some(now + RETRY);
        if report.replaced + report.deleted > 0 {
            tracing::debug!(
                replaced = report.replaced,
                deleted = report.deleted,
                failed = report.failed,
                "routes written"
            );
        }
        match err {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Keeps the state in place until `stop`: takes events as they come
    /// (draining bursts first), passes when something is due.
    pub fn run(&mut self, events: &EventQueue, stop: &AtomicBool) {
        let mut last_error = None;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .next_wake(now)
                .saturating_duration_since(now)
                .min(crate::monitor::POLL);
            match events.recv_timeout(wait) {
                Ok(ev) => {
                    self.handle(ev);
                    while let Some(ev) = events.try_recv() {
                        self.handle(ev);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if events.take_lost() {
                self.handle(KernelEvent::Overflow);
            }
            let now = Instant::now();
            if self.next_wake(now) > now {
                continue;
            }
            let msg = self.apply(now).err().map(|e| e.to_string());
            if msg.is_some() && msg != last_error {
                tracing::warn!(
                    error = msg.as_deref().unwrap_or_default(),
                    "felix pass failed; retrying"
                );
            }
            last_error = msg;
        }
    }
}
