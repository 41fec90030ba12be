//! The datastore side of tortie-node, on a blocking thread of the agent's
//! runtime (the store is driven by that runtime too): registers this
//! node's Node resource, allocates tunnel addresses when a pool needs them,
//! and sends a fresh [`Snapshot`] whenever what the node reads changes.
//!
//! It lists what the node reads once ([`Scope`]), then follows it with
//! watches and applies each event to an in-memory [`Cache`]; snapshots are
//! built from the cache, never by reading the store again. An idle cluster
//! costs no request at all. It lists again only when a watch cannot resume
//! (etcd compacted past the revision it needs, a SQLite change log cut, a
//! failed watch), counted as a watch restart; an etcd restart or a lost
//! connection is resumed by the store's watch from the next revision, with
//! no list. There is no periodic re-list (Calico's agents have none either).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::mpsc::Sender;
use tortie_datastore::typed::TypedError;
use tortie_datastore::{typed, BlockingStore, CountingStore, OpenOptions, Revision, StoreStats};
use tortie_ipam_core::{AllowedUse, AssignRequest, DatastoreIpamStore, Ipam, IpamError};
use tortie_model::ipam::{ipip_tunnel_handle, vxlan_tunnel_handle};
use tortie_model::{Node, NodeBgpSpec, Resource};

use crate::snapshot::Snapshot;
use crate::sync_metrics::SyncMetrics;
use crate::syncer::Syncer;

pub use crate::cache::{Cache, Scope};

/// Why a sync pass failed (the syncer retries).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A resource read or write failed.
    #[error("datastore: {0}")]
    Store(#[from] TypedError),
    /// An IPAM operation failed.
    #[error("ipam: {0}")]
    Ipam(#[from] IpamError),
    /// An IPAM store read failed.
    #[error("ipam store: {0}")]
    IpamStore(#[from] tortie_ipam_core::StoreError),
}

/// What the syncer needs to know.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Datastore URL.
    pub datastore: String,
    /// Backend options.
    pub options: OpenOptions,
    /// Our node name.
    pub node_name: String,
    /// Our node IP with prefix length.
    pub node_ip: IpNet,
    /// Our IPv6 node address with prefix length, when there is one.
    pub node_ip6: Option<IpNet>,
    /// Follow what network policy reads (policy kinds, every endpoint).
    pub policy: bool,
}

/// Writes our Node; returns the revision of the write.
fn write_node(ipam: &Ipam<DatastoreIpamStore>, node: Node) -> Result<Revision, SyncError> {
    let b = ipam.store().blocking();
    let written = b.block_on(typed::apply(b.store().as_ref(), vec![Resource::Node(node)]))?;
    Ok(written
        .first()
        .and_then(|r| r.metadata().resource_version.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Our Node as it must be: created if missing, `spec.bgp.ipv4Address`
/// current, and `spec.bgp.ipv6Address` current when we have an IPv6
/// address (an address set by hand is left alone when we have none, as
/// calico-node with `IP6=none`). `None` when nothing needs writing.
pub fn desired_node(snap: &Snapshot, cfg: &SyncConfig) -> Option<Node> {
    let existing = snap.node(&cfg.node_name);
    let mut node = existing
        .cloned()
        .unwrap_or_else(|| Node::new(cfg.node_name.clone()));
    let bgp = node.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
    let v6_current = cfg.node_ip6.is_none() || bgp.ipv6_address == cfg.node_ip6;
    if existing.is_some() && bgp.ipv4_address == Some(cfg.node_ip) && v6_current {
        return None;
    }
    bgp.ipv4_address = Some(cfg.node_ip);
    if cfg.node_ip6.is_some() {
        bgp.ipv6_address = cfg.node_ip6;
    }
    Some(node)
}

/// Creates our Node resource if missing, and keeps its addresses current.
/// Returns the revision of the write, `None` when nothing needed writing.
pub fn register_node(
    ipam: &Ipam<DatastoreIpamStore>,
    snap: &Snapshot,
    cfg: &SyncConfig,
) -> Result<Option<Revision>, SyncError> {
    let Some(node) = desired_node(snap, cfg) else {
        return Ok(None);
    };
    tracing::info!(
        node = %cfg.node_name,
        ip = %cfg.node_ip,
        ip6 = ?cfg.node_ip6,
        "registering Node resource"
    );
    Ok(Some(write_node(ipam, node)?))
}

fn allocate_tunnel(
    ipam: &Ipam<DatastoreIpamStore>,
    node: &str,
    handle: &str,
    kind: &str,
) -> Result<Option<IpAddr>, SyncError> {
    let mut req = AssignRequest::v4(handle, node, 1);
    req.use_ = AllowedUse::Tunnel;
    req.attrs.insert("type".into(), kind.into());
    let pools = ipam.store().pool_views(node)?;
    Ok(ipam.auto_assign(&req, &pools)?.v4.first().copied())
}

/// Allocates the VXLAN / IPIP tunnel address when a pool uses that
/// encapsulation and our Node has none. Returns the revision of the Node
/// write, `None` when nothing was written.
pub fn ensure_tunnel_addrs(
    ipam: &Ipam<DatastoreIpamStore>,
    snap: &Snapshot,
    name: &str,
) -> Result<Option<Revision>, SyncError> {
    let Some(mut node) = snap.node(name).cloned() else {
        return Ok(None);
    };
    let vxlan = snap.pools.iter().any(|p| p.spec.vxlan_mode().is_enabled());
    let ipip = snap.pools.iter().any(|p| p.spec.ipip_mode().is_enabled());
    let mut changed = false;
    if vxlan && node.spec.ipv4_vxlan_tunnel_addr.is_none() {
        let h = vxlan_tunnel_handle(name);
        if let Some(IpAddr::V4(a)) = allocate_tunnel(ipam, name, &h, "vxlanTunnelAddress")? {
            tracing::info!(addr = %a, "allocated the VXLAN tunnel address");
            node.spec.ipv4_vxlan_tunnel_addr = Some(a);
            let mac = tortie_felix::desired::mac_for_node(name);
            node.spec.vxlan_tunnel_mac_addr = Some(format_mac(mac));
            changed = true;
        }
    }
    let bgp = node.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
    if ipip && bgp.ipv4_ipip_tunnel_addr.is_none() {
        let h = ipip_tunnel_handle(name);
        if let Some(IpAddr::V4(a)) = allocate_tunnel(ipam, name, &h, "ipipTunnelAddress")? {
            tracing::info!(addr = %a, "allocated the IPIP tunnel address");
            bgp.ipv4_ipip_tunnel_addr = Some(a);
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(write_node(ipam, node)?))
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs the syncer until `tx` closes (the agent stops). Opens the store,
/// retrying while it is unavailable.
pub fn run(cfg: SyncConfig, tx: Sender<Snapshot>) {
    let (ipam, stats) = loop {
        match open(&cfg) {
            Ok(opened) => break opened,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the datastore; retrying");
                std::thread::park_timeout(Duration::from_secs(1));
                if tx.is_closed() {
                    return;
                }
            }
        }
    };
    let metrics = Arc::new(SyncMetrics::new(stats));
    crate::sync_metrics::register(Arc::clone(&metrics));
    let one_watch = cfg.datastore.starts_with("sqlite:");
    Syncer::new(cfg, ipam, metrics, one_watch).run(&tx);
}

/// Opens the store through a [`CountingStore`] (the metrics' counters), on
/// the runtime this thread belongs to (one runtime per agent), or on a
/// runtime of its own outside one.
fn open(cfg: &SyncConfig) -> Result<(Ipam<DatastoreIpamStore>, Arc<StoreStats>), SyncError> {
    let mut stats = None;
    let wrap = |s| {
        let counting = CountingStore::new(s);
        stats = Some(counting.stats());
        Arc::new(counting) as Arc<dyn tortie_datastore::Store>
    };
    let store = match tokio::runtime::Handle::try_current() {
        Ok(h) => BlockingStore::open_on_wrapped(&cfg.datastore, &cfg.options, h, wrap),
        Err(_) => BlockingStore::open_wrapped(&cfg.datastore, &cfg.options, wrap),
    }
    .map_err(TypedError::Store)?;
    let stats = stats.unwrap_or_default();
    Ok((Ipam::new(DatastoreIpamStore::new(store)), stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ip6: Option<&str>) -> SyncConfig {
        SyncConfig {
            datastore: "sqlite:///unused".into(),
            options: OpenOptions::default(),
            node_name: "n1".into(),
            node_ip: "10.0.1.5/24".parse().unwrap(),
            node_ip6: ip6.map(|s| s.parse().unwrap()),
            policy: false,
        }
    }

    fn with(node: Option<Node>) -> Snapshot {
        Snapshot {
            nodes: node.into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_node_gets_both_addresses() {
        let n = desired_node(&with(None), &cfg(Some("fd00:1::5/64"))).unwrap();
        let bgp = n.spec.bgp.unwrap();
        assert_eq!(bgp.ipv4_address, Some("10.0.1.5/24".parse().unwrap()));
        assert_eq!(bgp.ipv6_address, Some("fd00:1::5/64".parse().unwrap()));
    }

    #[test]
    fn the_ipv6_address_is_kept_current_and_a_current_node_is_not_rewritten() {
        let old = desired_node(&with(None), &cfg(None)).unwrap();
        assert_eq!(old.spec.bgp.as_ref().unwrap().ipv6_address, None);
        assert!(desired_node(&with(Some(old.clone())), &cfg(None)).is_none());
        let new = desired_node(&with(Some(old)), &cfg(Some("fd00:1::5/64"))).unwrap();
        assert_eq!(
            new.spec.bgp.as_ref().unwrap().ipv6_address,
            Some("fd00:1::5/64".parse().unwrap())
        );
        assert!(desired_node(&with(Some(new.clone())), &cfg(Some("fd00:1::5/64"))).is_none());
        // Without an IPv6 address of ours, one set by hand stays.
        assert!(desired_node(&with(Some(new)), &cfg(None)).is_none());
    }
}
