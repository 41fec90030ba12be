//! The kernel state Calico's felix would hold for one node's view of the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::FelixConfig;
use crate::input::{EncapMode, FelixInput, PathSource, RemoteBlock};
use crate::mtu::{detect_mtus, Mtus};
use crate::nexthop::{hop_path, HopPath};
use crate::route::{NextHop, RouteKey, RouteScope, RouteSpec};

/// The tunl0 device's desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpipDevice {
    /// True when some pool uses IPIP: the device must be up.
    pub enabled: bool,
    /// Its MTU.
    pub mtu: u32,
    /// The one address it holds (none when IPIP is off: others are removed).
    pub address: Option<IpAddr>,
}

/// The VXLAN device's desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanDevice {
    /// VNI.
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// VTEP MAC.
    pub mac: [u8; 6],
    /// Underlay source address (this node's IP).
    pub local: IpAddr,
    /// MTU.
    pub mtu: u32,
    /// Tunnel address.
    pub address: Option<IpAddr>,
}

/// One remote VTEP: an FDB entry (MAC → node IP) and a neighbour (VTEP IP → MAC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VtepEntry {
    /// The remote VTEP's tunnel address.
    pub vtep_ip: IpAddr,
    /// The remote VTEP's MAC.
    pub mac: [u8; 6],
    /// The remote node's underlay IP.
    pub node_ip: IpAddr,
}

/// NAT outgoing: masquerade traffic from `masquerade_from` to anything outside `all_pools`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NatOutgoing {
    /// Pools with natOutgoing.
    pub masquerade_from: Vec<IpNet>,
    /// Every pool.
    pub all_pools: Vec<IpNet>,
}

/// Everything felix holds in the kernel for this node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredState {
    /// Routes felix owns, by key.
    pub routes: BTreeMap<RouteKey, RouteSpec>,
    /// tunl0, when this kernel may have it.
    pub ipip: Option<IpipDevice>,
    /// The VXLAN device, when some pool uses VXLAN.
    pub vxlan: Option<VxlanDevice>,
    /// FDB and neighbour entries on the VXLAN device.
    pub vteps: BTreeSet<VtepEntry>,
    /// sysctls, path under /proc/sys → value.
    pub sysctls: BTreeMap<String, String>,
    /// MTUs (host, ipip, vxlan, pod).
    pub mtus: Mtus,
    /// NAT outgoing.
    pub nat: NatOutgoing,
    /// Prefixes tortie owns here (pools, node and tunnel addresses): a
    /// route of felix's protocols is felix's only inside one of them.
    pub owned_prefixes: Vec<IpNet>,
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A stable, locally administered unicast MAC derived from the node name
/// (FNV-1a; Calico stores a random one in the Node resource instead).
pub fn mac_for_node(node: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

fn any_pool(input: &FelixInput, f: impl Fn(&crate::input::Pool) -> EncapMode) -> bool {
    input.pools.iter().any(|p| f(p) != EncapMode::Never)
}

/// Next hop towards the node `node_ip` for a block, by the pool's mode
/// ([`hop_path`]); `None` when there is no way (an off-link hop without
/// encapsulation, or a VXLAN hop without a known VTEP).
fn next_hop_for(
    input: &FelixInput,
    cfg: &FelixConfig,
    block: &RemoteBlock,
    node_ip: IpAddr,
) -> Option<NextHop> {
    match hop_path(input, input.pool_of(&block.cidr), node_ip)? {
        HopPath::Vxlan => {
            let vtep = input.vteps_by_node_ip().get(&node_ip).map(|v| v.vtep_ip)?;
            Some(NextHop::via_onlink(vtep, &cfg.vxlan_device))
        }
        HopPath::Ipip => Some(NextHop::via_onlink(node_ip, &cfg.ipip_device)),
        HopPath::Direct => Some(NextHop::via(node_ip)),
    }
}

fn remote_routes(input: &FelixInput, cfg: &FelixConfig, out: &mut BTreeMap<RouteKey, RouteSpec>) {
    for block in &input.remote_blocks {
        let hops: Vec<NextHop> = block
            .next_hops
            .iter()
            .filter(|ip| Some(**ip) != input.node_ip.map(|n| n.addr()))
            .filter_map(|ip| next_hop_for(input, cfg, block, *ip))
            .collect();
        if hops.is_empty() {
            continue;
        }
        let proto = match block.source {
            PathSource::Bgp => cfg.proto_bgp,
            PathSource::Datastore => cfg.proto_felix,
        };
        let key = RouteKey {
            table: cfg.table,
            dst: block.cidr.trunc(),
        };
        out.entry(key)
            .or_insert_with(|| RouteSpec::unicast(proto, RouteScope::Universe, hops));
    }
}

fn workload_sysctls(input: &FelixInput, out: &mut BTreeMap<String, String>) {
    let mut v4 = false;
    let mut v6 = false;
    for w in &input.workloads {
        let i = &w.interface;
        if w.addresses.iter().any(IpAddr::is_ipv4) {
            v4 = true;
            for (k, v) in [
                (format!("net/ipv4/conf/{i}/proxy_arp"), "1"),
                (format!("net/ipv4/conf/{i}/forwarding"), "1"),
                (format!("net/ipv4/conf/{i}/route_localnet"), "1"),
                (format!("net/ipv4/neigh/{i}/proxy_delay"), "0"),
            ] {
                out.insert(k, v.into());
            }
        }
        if w.addresses.iter().any(IpAddr::is_ipv6) {
            v6 = true;
            for (k, v) in [
                (format!("net/ipv6/conf/{i}/proxy_ndp"), "1"),
                (format!("net/ipv6/conf/{i}/forwarding"), "1"),
                (format!("net/ipv6/conf/{i}/accept_ra"), "0"),
            ] {
                out.insert(k, v.into());
            }
        }
    }
    if v4 || !input.pools.is_empty() {
        out.insert("net/ipv4/ip_forward".into(), "1".into());
    }
    if v6 {
        out.insert("net/ipv6/conf/all/forwarding".into(), "1".into());
    }
}

fn vxlan_device(
    input: &FelixInput,
    cfg: &FelixConfig,
    enabled: bool,
    mtu: u32,
) -> Option<VxlanDevice> {
    let node_ip = input.node_ip.filter(|_| enabled)?;
    Some(VxlanDevice {
        vni: input.knobs.vxlan_vni.unwrap_or(cfg.vxlan_vni),
        port: input.knobs.vxlan_port.unwrap_or(cfg.vxlan_port),
        mac: input
            .vxlan_tunnel_mac
            .as_deref()
            .and_then(parse_mac)
            .unwrap_or_else(|| mac_for_node(&input.node_name)),
        local: node_ip.addr(),
        mtu,
        address: input.vxlan_tunnel_addr,
    })
}

fn remote_vteps(input: &FelixInput) -> BTreeSet<VtepEntry> {
    input
        .remote_vteps
        .iter()
        .filter(|v| v.node != input.node_name)
        .filter_map(|v| {
            Some(VtepEntry {
                vtep_ip: v.vtep_ip,
                mac: parse_mac(&v.vtep_mac)?,
                node_ip: v.node_ip,
            })
        })
        .collect()
}

/// Computes the kernel state for `input` under `cfg`. Pure.
pub fn compute(input: &FelixInput, cfg: &FelixConfig) -> DesiredState {
    let mut routes = BTreeMap::new();
    for w in &input.workloads {
        for a in &w.addresses {
            let key = RouteKey {
                table: cfg.table,
                dst: IpNet::from(*a),
            };
            let spec = RouteSpec::unicast(
                cfg.proto_felix,
                RouteScope::Link,
                vec![NextHop::dev(&w.interface)],
            );
            routes.insert(key, spec);
        }
    }
    for b in &input.local_blocks {
        let key = RouteKey {
            table: cfg.table,
            dst: b.trunc(),
        };
        routes
            .entry(key)
            .or_insert_with(|| RouteSpec::blackhole(cfg.proto_felix));
    }
    remote_routes(input, cfg, &mut routes);

    let use_ipip = any_pool(input, |p| p.ipip_mode);
    let use_vxlan = any_pool(input, |p| p.vxlan_mode);
    let mtus = detect_mtus(input, cfg, use_ipip, use_vxlan);
    let ipip = Some(IpipDevice {
        enabled: use_ipip,
        mtu: mtus.ipip,
        address: input.ipip_tunnel_addr.filter(|_| use_ipip),
    });
    let vxlan = vxlan_device(input, cfg, use_vxlan, mtus.vxlan);
    let vteps = if vxlan.is_some() {
        remote_vteps(input)
    } else {
        BTreeSet::new()
    };
    let mut sysctls = BTreeMap::new();
    workload_sysctls(input, &mut sysctls);
    let nat = NatOutgoing {
        masquerade_from: input
            .pools
            .iter()
            .filter(|p| p.nat_outgoing)
            .map(|p| p.cidr.trunc())
            .collect(),
        all_pools: input.pools.iter().map(|p| p.cidr.trunc()).collect(),
    };
    DesiredState {
        routes,
        ipip,
        vxlan,
        vteps,
        sysctls,
        mtus,
        nat,
        owned_prefixes: crate::owned::owned_prefixes(input),
    }
}
