//! The felix dataplane shell: applies a `DesiredState` (devices, sysctls,
//! MTU file, NAT, routes) into one namespace and keeps it there.
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
use tortie_felix::{ApplyReport, DesiredState, FelixConfig, Reconciler, RouteEvent, RouteHold};

use crate::devices::{ensure_ipip, ensure_vxlan, sync_vteps, DeviceError, Removal};
use crate::host::{apply_sysctls, write_mtu_file, HostError};
use crate::links::dump_links;
use crate::monitor::RouteMonitor;
use crate::nat::{NatError, NatProgrammer};
use crate::nl::{NlError, NlSocket};
use crate::routes::{NetlinkRoutes, RouteError};

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
    /// Full re-read period.
    pub resync_interval: Duration,
    /// tunl0 handling.
    pub ipip: IpipSupport,
    /// NAT outgoing handling.
    pub nat: NatSupport,
}

/// Everything felix programs into one namespace.
#[derive(Debug)]
pub struct FelixDataplane {
    opts: DataplaneOptions,
    reconciler: Reconciler<NetlinkRoutes>,
    sock: NlSocket,
    nat: NatProgrammer,
    desired: DesiredState,
    devices_due: bool,
    last_devices: Option<Instant>,
}

impl FelixDataplane {
    /// Opens the netlink sockets in the target namespace.
    pub fn open(opts: DataplaneOptions) -> Result<Self, FelixError> {
        let ns = opts.netns.as_deref();
        let c = &opts.config;
        let routes = NetlinkRoutes::open(ns, c.table, &[c.proto_felix, c.proto_bgp])?;
        Ok(Self {
            reconciler: Reconciler::new(routes, opts.resync_interval),
            sock: NlSocket::open(ns)?,
            nat: NatProgrammer::new(ns, &c.nat_table),
            desired: DesiredState::default(),
            devices_due: true,
            last_devices: None,
            opts,
        })
    }

    /// The namespace programmed.
    pub fn netns(&self) -> Option<&Path> {
        self.opts.netns.as_deref()
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

    /// Sets the state to hold.
    pub fn set_desired(&mut self, desired: DesiredState) {
        self.reconciler.set_desired(desired.routes.clone());
        if desired != self.desired {
            self.devices_due = true;
        }
        self.desired = desired;
    }

    /// Feeds a monitor event.
    pub fn on_event(&mut self, ev: RouteEvent) {
        if ev == RouteEvent::Overflow {
            self.devices_due = true;
        }
        self.reconciler.on_event(ev);
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
            self.devices_due = true;
        }
    }

    /// True while a hold is active.
    pub fn holding(&self) -> bool {
        self.reconciler.holding().is_some()
    }

    /// True when routes match and nothing else is due.
    pub fn in_sync(&self) -> bool {
        !self.devices_due && self.reconciler.in_sync()
    }

    /// The route reconciler (for counts and `in_sync`).
    pub fn routes(&self) -> &Reconciler<NetlinkRoutes> {
        &self.reconciler
    }

    /// Devices, sysctls, MTU file and NAT; every step runs even when an
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
                tracing::warn!(error = %e, "dataplane step failed");
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
        note(
            apply_sysctls(self.opts.netns.as_deref(), &d.sysctls)
                .map(drop)
                .map_err(FelixError::from),
        );
        note(write_mtu_file(Path::new(&c.mtu_file), d.mtus.pod).map_err(FelixError::from));
        if self.opts.nat == NatSupport::Manage {
            note(self.nat.apply(&d.nat).map(drop).map_err(FelixError::from));
        }
        first.map_or(Ok(()), Err)
    }

    /// One pass at `now`: devices/sysctls/MTU/NAT when changed or due, then
    /// routes; a device error is returned after the routes were written.
    pub fn apply(&mut self, now: Instant) -> Result<ApplyReport, FelixError> {
        if self.reconciler.expire_hold(now) {
            tracing::warn!("the route hold ran out before it was released: sweeping");
            self.devices_due = true;
        }
        let due = self
            .last_devices
            .is_none_or(|t| now >= t + self.opts.resync_interval);
        let mut device_err = None;
        if self.devices_due || due {
            if due {
                self.nat.invalidate();
            }
            let _span = tracing::debug_span!("devices").entered();
            let res = self.apply_devices();
            self.devices_due = res.is_err();
            self.last_devices = Some(now);
            device_err = res.err();
        }
        let span = tracing::debug_span!("reconcile", table = self.opts.config.table);
        let _g = span.enter();
        let report = self.reconciler.apply(now)?;
        if report.failed > 0 {
            tracing::warn!(
                failed = report.failed,
                "some route writes failed; retrying after a resync"
            );
        } else if report.replaced + report.deleted > 0 {
            tracing::debug!(
                replaced = report.replaced,
                deleted = report.deleted,
                "routes written"
            );
        }
        // Routes were still written: a broken device or NAT step must not
        // hold back the routes that don't depend on it.
        match device_err {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Starts a route monitor for this namespace.
    pub fn monitor(&self) -> Result<RouteMonitor, NlError> {
        let c = &self.opts.config;
        RouteMonitor::start(self.netns(), c.table, &[c.proto_felix, c.proto_bgp])
    }

    /// Keeps the state in place until `stop`: applies at once on monitor
    /// events (draining bursts first), retries failures, resyncs on the timer.
    pub fn run(&mut self, monitor: &RouteMonitor, stop: &AtomicBool) {
        let retry = Duration::from_millis(100);
        let mut wait = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            match monitor.events().recv_timeout(wait) {
                Ok(ev) => {
                    self.on_event(ev);
                    while let Ok(ev) = monitor.events().try_recv() {
                        self.on_event(ev);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            wait = match self.apply(now) {
                Ok(r) if r.failed == 0 => self
                    .reconciler
                    .next_resync()
                    .map_or(retry, |t| t.saturating_duration_since(now))
                    .min(Duration::from_millis(500)),
                Ok(_) => retry,
                Err(e) => {
                    tracing::warn!(error = %e, "felix pass failed; retrying");
                    retry
                }
            };
        }
    }
}
