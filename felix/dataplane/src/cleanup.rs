//! Taking felix off a node: removes the routes that are felix's (its
//! protocols inside the prefixes tortie owns), the VXLAN device (with its
//! FDB and neighbour entries), felix's addresses on tunl0, the nftables
//! tables and the MTU file. Everything else — routes of other programs,
//! routes of our numbers outside our prefixes, other devices and tables —
//! stays.
//!
//! Left on purpose: tunl0 itself (the kernel's fallback device of the ipip
//! module; it cannot be deleted) and the sysctls felix set. `ip_forward`
//! stays on because other programs on a node (kube-proxy, container
//! runtimes) rely on it and felix cannot know whether it was on before;
//! the per-workload sysctls go with the workloads' interfaces.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use netlink_packet_route::link::InfoKind;
use tortie_felix::{FelixConfig, Ownership, RouteDataplane as _, RouteOp};

use crate::devices::DeviceError;
use crate::felix::FelixError;
use crate::links::{del_address, delete_link, dump_addresses, dump_links};
use crate::nat::NatProgrammer;
use crate::nl::NlSocket;
use crate::routes::NetlinkRoutes;

/// What to remove.
#[derive(Debug, Clone)]
pub struct CleanupPlan {
    /// Device names, table, nftables table, MTU file.
    pub config: FelixConfig,
    /// The namespace (`None`: the current one).
    pub netns: Option<PathBuf>,
    /// Route protocol numbers that are ours (the configured two, and any
    /// older ones asked for, such as 186 of tortie 0.1).
    pub protocols: Vec<u8>,
    /// The prefixes tortie owns (pools, node and tunnel addresses).
    pub prefixes: Vec<IpNet>,
    /// Remove the nftables tables (false when `nft` is not installed).
    pub nat: bool,
}

/// What was removed, and what was left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Routes removed.
    pub routes_removed: usize,
    /// Routes carrying one of our numbers outside our prefixes, left alone.
    pub routes_left: Vec<IpNet>,
    /// The VXLAN device was removed.
    pub vxlan_removed: bool,
    /// Addresses removed from tunl0.
    pub tunl0_addresses_removed: usize,
    /// The nftables tables were removed (NAT and the policy table).
    pub nat_removed: bool,
    /// The MTU file was removed.
    pub mtu_file_removed: bool,
}

fn nl_err(device: &str) -> impl Fn(crate::nl::NlError) -> FelixError + '_ {
    move |source| {
        FelixError::Device(DeviceError::Netlink {
            device: device.to_string(),
            source,
        })
    }
}

fn remove_routes(plan: &CleanupPlan, report: &mut CleanupReport) -> Result<(), FelixError> {
    let c = &plan.config;
    let mut routes = NetlinkRoutes::open(plan.netns.as_deref(), c.table, &plan.protocols)?;
    let all = routes
        .dump_routes()
        .map_err(|e| FelixError::Routes(tortie_felix::reconcile::ReconcileError::Dump(e)))?;
    let owner = Ownership::new(plan.protocols.iter().copied(), plan.prefixes.clone());
    let (ours, left): (Vec<_>, Vec<_>) = all.into_iter().partition(|(k, v)| owner.owns(k, v));
    report.routes_left = left.into_iter().map(|(k, _)| k.dst).collect();
    let ops: Vec<RouteOp> = ours
        .into_iter()
        .map(|(k, v)| RouteOp::Delete(k, v))
        .collect();
    for r in routes.apply_routes(&ops) {
        match r {
            Ok(()) => report.routes_removed += 1,
            Err(e) => tracing::warn!(error = %e, "cannot remove a route"),
        }
    }
    Ok(())
}

fn remove_devices(plan: &CleanupPlan, report: &mut CleanupReport) -> Result<(), FelixError> {
    let c = &plan.config;
    let mut sock = NlSocket::open(plan.netns.as_deref())?;
    let links = dump_links(&mut sock).map_err(nl_err("links"))?;
    if let Some(l) = links
        .iter()
        .find(|l| l.name == c.vxlan_device && l.kind == Some(InfoKind::Vxlan))
    {
        delete_link(&mut sock, l.index).map_err(nl_err(&c.vxlan_device))?;
        report.vxlan_removed = true;
    }
    let owner = Ownership::new([], plan.prefixes.clone());
    if let Some(l) = links.iter().find(|l| l.name == c.ipip_device) {
        for (ip, len) in dump_addresses(&mut sock, l.index).map_err(nl_err(&c.ipip_device))? {
            if owner.covers(&IpNet::from(ip)) {
                del_address(&mut sock, l.index, ip, len).map_err(nl_err(&c.ipip_device))?;
                report.tunl0_addresses_removed += 1;
            }
        }
    }
    Ok(())
}

/// Removes felix's state from the namespace; the first error stops it.
pub fn cleanup(plan: &CleanupPlan) -> Result<CleanupReport, FelixError> {
    let mut report = CleanupReport::default();
    remove_routes(plan, &mut report)?;
    remove_devices(plan, &mut report)?;
    if plan.nat {
        NatProgrammer::new(plan.netns.as_deref(), &plan.config.nat_table).remove()?;
        let table = tortie_felix::policy::PolicyConfig::default().table;
        crate::policy::PolicyProgrammer::new(plan.netns.as_deref(), &table).remove()?;
        report.nat_removed = true;
    }
    let mtu = Path::new(&plan.config.mtu_file);
    match std::fs::remove_file(mtu) {
        Ok(()) => report.mtu_file_removed = true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(FelixError::Host(crate::host::HostError::Write {
                path: mtu.to_path_buf(),
                source,
            }))
        }
    }
    Ok(report)
}
