//! The `tortie-ipam` plugin: ADD assigns addresses to the handle
//! `k8s-pod-network.<containerID>` from the pools this node may use (an
//! existing handle's addresses are returned again), DEL releases by handle,
//! CHECK verifies the handle still owns addresses, GC releases handles of
//! attachments the runtime no longer lists.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use tortie_ipam_core::pools::select_pools;
use tortie_ipam_core::store::TypedStoreExt;
use tortie_ipam_core::{
    AllowedUse, AssignRequest, DatastoreIpamStore, IpVersion, Ipam, IpamError, IpamKey,
};
use tortie_model::ipam::{pod_handle, AllocationBlock, IpamHandle};

use crate::config::IpamConf;
use crate::endpoint::node_name;
use crate::env::Command;
use crate::error::CniError;
use crate::plugin::Invocation;
use crate::result::{CniResult, IpConfig};

/// The `ipam.type` that `tortie` runs in-process (same code, same result
/// and errors as exec'ing the `tortie-ipam` binary, without a second process
/// or a second datastore connection).
pub const IPAM_TYPE: &str = "tortie-ipam";

/// The datastore used when neither the config nor `TORTIE_DATASTORE` names one.
pub const DEFAULT_DATASTORE: &str = "sqlite:///var/lib/tortie/tortie.db";

fn ipam_err(e: IpamError) -> CniError {
    match e {
        IpamError::Contention { .. } => CniError::TryAgainLater(e.to_string()),
        other => CniError::Ipam(other.to_string()),
    }
}

fn open(inv: &Invocation) -> Result<Arc<Ipam<DatastoreIpamStore>>, CniError> {
    let url = inv
        .conf
        .datastore
        .clone()
        .or_else(|| {
            std::env::var("TORTIE_DATASTORE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_DATASTORE.into());
    crate::shared_store::open(&url)
}

/// Runs the command; `Ok(Some(json))` is printed on stdout.
pub fn run(inv: &Invocation) -> Result<Option<serde_json::Value>, CniError> {
    run_command(inv, inv.env.command)
}

/// Runs `command` for `inv` (which may be another plugin's invocation with
/// the same configuration, as when `tortie` runs this IPAM in-process).
pub fn run_command(
    inv: &Invocation,
    command: Command,
) -> Result<Option<serde_json::Value>, CniError> {
    match command {
        Command::Version => Ok(Some(crate::version::version_info())),
        Command::Add => add(inv).map(|(r, _)| Some(r.to_json(inv.conf.cni_version))),
        Command::Del => {
            let ipam = open(inv)?;
            ipam.release_by_handle(&pod_handle(&inv.env.container_id))
                .map(|_| None)
                .map_err(ipam_err)
        }
        Command::Check => check(inv).map(|_| None),
        Command::Status => status(inv).map(|_| None),
        Command::Gc => gc(inv).map(|_| None),
    }
}

fn request(inv: &Invocation, ipam: &IpamConf, node: &str) -> Result<AssignRequest, CniError> {
    let mut attrs = BTreeMap::new();
    attrs.insert("node".to_string(), node.to_string());
    if let Some(ns) = &inv.env.args.pod_namespace {
        attrs.insert("namespace".to_string(), ns.clone());
    }
    if let Some(pod) = &inv.env.args.pod_name {
        attrs.insert("pod".to_string(), pod.clone());
    }
    Ok(AssignRequest {
        handle_id: pod_handle(&inv.env.container_id),
        node: node.to_string(),
        num_v4: usize::from(ipam.assign_ipv4),
        num_v6: usize::from(ipam.assign_ipv6),
        v4_pools: ipam.ipv4_pools.clone(),
        v6_pools: ipam.ipv6_pools.clone(),
        attrs,
        use_: AllowedUse::Workload,
    })
}

/// ADD as `tortie` runs it in-process: the result JSON (exactly what the
/// binary prints) and whether this call allocated the addresses (`false`:
/// the handle already owned them, so they belong to an earlier ADD).
pub fn add_json(inv: &Invocation) -> Result<(serde_json::Value, bool), CniError> {
    add(inv).map(|(r, fresh)| (r.to_json(inv.conf.cni_version), fresh))
}

fn add(inv: &Invocation) -> Result<(CniResult, bool), CniError> {
    let conf = inv.conf.require_ipam()?;
    let node = node_name(&inv.conf);
    let req = request(inv, conf, &node)?;
    let ipam = open(inv)?;
    let mut ips = addresses_of(&ipam, &req.handle_id)?;
    let fresh = ips.is_empty();
    if fresh {
        let pools = ipam
            .store()
            .pool_views(&node)
            .map_err(|e| CniError::Datastore(format!("read IPPools: {e}")))?;
        let assigned = ipam.auto_assign(&req, &pools).map_err(ipam_err)?;
        ips = assigned.v4.into_iter().chain(assigned.v6).collect();
    }
    let result = CniResult {
        ips: ips
            .into_iter()
            .map(|ip| IpConfig {
                version: None,
                address: IpNet::from(ip),
                gateway: None,
                interface: None,
            })
            .collect(),
        ..CniResult::default()
    };
    Ok((result, fresh))
}

/// The addresses `handle` owns now (empty when it does not exist).
fn addresses_of(ipam: &Ipam<DatastoreIpamStore>, handle: &str) -> Result<Vec<IpAddr>, CniError> {
    let store = ipam.store();
    let read = |e| CniError::Datastore(format!("read handle {handle}: {e}"));
    let Some(h) = store
        .get_json::<IpamHandle>(&IpamKey::Handle(handle.to_string()))
        .map_err(read)?
    else {
        return Ok(Vec::new());
    };
    let mut ips = Vec::new();
    for cidr in h.block.keys().filter_map(|c| c.parse::<IpNet>().ok()) {
        let Some(b) = store
            .get_json::<AllocationBlock>(&IpamKey::Block(cidr))
            .map_err(read)?
        else {
            continue;
        };
        ips.extend(
            (0..b.allocations.len())
                .filter(|&o| b.handle_of(o) == Some(handle))
                .filter_map(|o| b.ordinal_to_ip(o)),
        );
    }
    ips.sort();
    Ok(ips)
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let handle = pod_handle(&inv.env.container_id);
    if addresses_of(open(inv)?.as_ref(), &handle)?.is_empty() {
        return Err(CniError::CheckFailed(format!(
            "IPAM handle {handle} owns no address"
        )));
    }
    Ok(())
}

/// STATUS: the datastore answers, and for each family the config asks for
/// a usable pool (the named ones, else any enabled pool selecting this
/// node for workloads) has a free address. Anything else is code 50: ADD
/// cannot succeed, while running pods are not affected.
fn status(inv: &Invocation) -> Result<(), CniError> {
    let conf = inv.conf.require_ipam()?;
    let node = node_name(&inv.conf);
    let ipam = open(inv).map_err(|e| CniError::NotAvailable(e.to_string()))?;
    let pools = ipam
        .store()
        .pool_views(&node)
        .map_err(|e| CniError::NotAvailable(format!("read IPPools: {e}")))?;
    let wanted = [
        (
            conf.assign_ipv4,
            IpVersion::V4,
            "ipam.ipv4_pools",
            &conf.ipv4_pools,
        ),
        (
            conf.assign_ipv6,
            IpVersion::V6,
            "ipam.ipv6_pools",
            &conf.ipv6_pools,
        ),
    ];
    for (_, version, field, requested) in wanted.into_iter().filter(|w| w.0) {
        let usable = select_pools(&pools, requested, version, AllowedUse::Workload).map_err(
            |(cidr, why)| {
                CniError::NotAvailable(format!("{field}: IPPool {cidr} cannot be used: {why}"))
            },
        )?;
        if usable.is_empty() {
            return Err(CniError::NotAvailable(format!(
                "no enabled {version} IPPool selects node {node} for workloads"
            )));
        }
        let usage = ipam
            .usage(&usable)
            .map_err(|e| CniError::NotAvailable(e.to_string()))?;
        if usage.iter().all(|u| u.in_use >= u.capacity) {
            let full: Vec<String> = usage
                .iter()
                .map(|u| format!("{} ({} of {} in use)", u.cidr, u.in_use, u.capacity))
                .collect();
            return Err(CniError::NotAvailable(format!(
                "every {version} IPPool this node may use is full: {}",
                full.join(", ")
            )));
        }
    }
    Ok(())
}

/// GC: releases the `k8s-pod-network.<id>` handles holding addresses on
/// this node whose container is not in `cni.dev/valid-attachments`. The
/// list covers this node's runtime only, so other nodes' handles are never
/// touched; a failure does not stop the rest (the first one is reported).
fn gc(inv: &Invocation) -> Result<(), CniError> {
    inv.conf.require_valid_attachments()?;
    let node = node_name(&inv.conf);
    let ipam = open(inv)?;
    let prefix = pod_handle("");
    let mut stale = BTreeSet::new();
    for b in ipam.blocks().map_err(ipam_err)? {
        for attr in b
            .allocations
            .iter()
            .flatten()
            .filter_map(|&i| b.attributes.get(i))
        {
            let Some(handle) = attr.handle_id.as_deref() else {
                continue;
            };
            let on_node = attr.secondary.get("node").map(String::as_str) == Some(node.as_str());
            let gone = handle
                .strip_prefix(&prefix)
                .is_some_and(|cid| !inv.conf.is_valid_attachment(cid, None));
            if on_node && gone {
                stale.insert(handle.to_string());
            }
        }
    }
    let mut first_error = None;
    for handle in stale {
        if let Err(e) = ipam.release_by_handle(&handle) {
            first_error.get_or_insert(ipam_err(e));
        }
    }
    first_error.map_or(Ok(()), Err)
}
