//! The datastore side of tortie-node, on its own thread: registers this
//! node's Node resource, allocates tunnel addresses when a pool needs them,
//! and sends a fresh [`Snapshot`] whenever the store changes (a watch on the
//! whole keyspace wakes it; a periodic re-read covers a broken watch).

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use tokio::sync::mpsc::UnboundedSender;
use tortie_datastore::typed::TypedError;
use tortie_datastore::{typed, OpenOptions};
use tortie_ipam_core::{AllowedUse, AssignRequest, DatastoreIpamStore, Ipam, IpamError};
use tortie_model::ipam::{ipip_tunnel_handle, vxlan_tunnel_handle, AffinityState};
use tortie_model::{Kind, Node, NodeBgpSpec, Resource};

use crate::snapshot::Snapshot;

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
    /// Periodic full re-read.
    pub resync: Duration,
}

fn list(ipam: &Ipam<DatastoreIpamStore>, kind: Kind) -> Result<Vec<Resource>, SyncError> {
    let b = ipam.store().blocking();
    Ok(b.block_on(typed::list(b.store().as_ref(), kind, None))?)
}

/// Reads everything tortie-node acts on.
pub fn read_snapshot(ipam: &Ipam<DatastoreIpamStore>) -> Result<Snapshot, SyncError> {
    let mut s = Snapshot::default();
    for r in list(ipam, Kind::Node)? {
        if let Resource::Node(n) = r {
            s.nodes.push(n);
        }
    }
    for r in list(ipam, Kind::BgpConfiguration)? {
        if let Resource::BgpConfiguration(c) = r {
            if c.metadata.name == "default" {
                s.bgp_config = Some(c.spec);
            }
        }
    }
    for r in list(ipam, Kind::BgpPeer)? {
        if let Resource::BgpPeer(p) = r {
            s.bgp_peers.push(p);
        }
    }
    for r in list(ipam, Kind::IpPool)? {
        if let Resource::IpPool(p) = r {
            s.pools.push(p);
        }
    }
    for r in list(ipam, Kind::WorkloadEndpoint)? {
        if let Resource::WorkloadEndpoint(w) = r {
            s.workloads.push(w);
        }
    }
    s.affinities = ipam
        .affinities()?
        .into_iter()
        .filter(|(_, _, a)| a.state == AffinityState::Confirmed && !a.deleted)
        .map(|(n, c, _)| (n, c))
        .collect();
    s.blocks = ipam.blocks()?;
    Ok(s)
}

fn write_node(ipam: &Ipam<DatastoreIpamStore>, node: Node) -> Result<(), SyncError> {
    let b = ipam.store().blocking();
    b.block_on(typed::apply(b.store().as_ref(), vec![Resource::Node(node)]))?;
    Ok(())
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
pub fn register_node(
    ipam: &Ipam<DatastoreIpamStore>,
    snap: &Snapshot,
    cfg: &SyncConfig,
) -> Result<bool, SyncError> {
    let Some(node) = desired_node(snap, cfg) else {
        return Ok(false);
    };
    tracing::info!(
        node = %cfg.node_name,
        ip = %cfg.node_ip,
        ip6 = ?cfg.node_ip6,
        "registering Node resource"
    );
    write_node(ipam, node)?;
    Ok(true)
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
/// encapsulation and our Node has none. Returns true if it wrote.
pub fn ensure_tunnel_addrs(
    ipam: &Ipam<DatastoreIpamStore>,
    snap: &Snapshot,
    name: &str,
) -> Result<bool, SyncError> {
    let Some(mut node) = snap.node(name).cloned() else {
        return Ok(false);
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
    if changed {
        write_node(ipam, node)?;
    }
    Ok(changed)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pass(ipam: &Ipam<DatastoreIpamStore>, cfg: &SyncConfig) -> Result<Snapshot, SyncError> {
    let mut snap = read_snapshot(ipam)?;
    let wrote = register_node(ipam, &snap, cfg)?;
    if wrote {
        snap = read_snapshot(ipam)?;
    }
    if ensure_tunnel_addrs(ipam, &snap, &cfg.node_name)? {
        snap = read_snapshot(ipam)?;
    }
    Ok(snap)
}

/// A burst of datastore changes ends after this long without another one.
const COALESCE_GAP: Duration = Duration::from_millis(10);
/// The longest a change waits for the rest of its burst.
const COALESCE_MAX: Duration = Duration::from_millis(50);

/// Waits until the store changes (or `resync` passes).
fn wait_for_change(
    ipam: &Ipam<DatastoreIpamStore>,
    watch: &mut Option<tortie_datastore::WatchStream>,
    resync: Duration,
) {
    let b = ipam.store().blocking();
    if watch.is_none() {
        match b.block_on(b.store().watch("/", 0)) {
            Ok(w) => *watch = Some(w),
            Err(e) => tracing::warn!(error = %e, "cannot watch the datastore; polling"),
        }
    }
    let Some(w) = watch.as_mut() else {
        std::thread::park_timeout(Duration::from_secs(1));
        return;
    };
    let got = b.block_on(async {
        let first = tokio::time::timeout(resync, w.next()).await;
        // Coalesce a burst of changes into one re-read: wait for a quiet
        // gap, but never longer than COALESCE_MAX after the first change
        // (back-to-back pod ADDs would otherwise hold every route back).
        let cap = tokio::time::Instant::now() + COALESCE_MAX;
        loop {
            let left = cap.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left.min(COALESCE_GAP), w.next()).await {
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        first
    });
    match got {
        Ok(Some(Ok(_))) | Err(_) => {}
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "datastore watch failed; re-watching");
            *watch = None;
        }
        Ok(None) => *watch = None,
    }
}

/// Runs the syncer until `tx` closes. Opens the store, retrying while it is
/// unavailable.
pub fn run(cfg: SyncConfig, tx: UnboundedSender<Snapshot>) {
    let ipam = loop {
        match DatastoreIpamStore::open(&cfg.datastore, &cfg.options) {
            Ok(s) => break Ipam::new(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the datastore; retrying");
                std::thread::park_timeout(Duration::from_secs(1));
            }
        }
    };
    let mut last: Option<Snapshot> = None;
    let mut watch = None;
    loop {
        match pass(&ipam, &cfg) {
            Ok(snap) if last.as_ref() != Some(&snap) => {
                if tx.send(snap.clone()).is_err() {
                    return;
                }
                last = Some(snap);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "datastore sync failed; retrying"),
        }
        if tx.is_closed() {
            return;
        }
        wait_for_change(&ipam, &mut watch, cfg.resync);
    }
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
            resync: Duration::from_secs(10),
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
