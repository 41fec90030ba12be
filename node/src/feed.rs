//! Converts the datastore snapshot and the BGP-learned routes into felix's
//! own input: local workloads, affine blocks (blackholes), remote blocks with
//! next hops (from BGP, or from the datastore for VXLAN pools), pools with
//! their modes, and the other nodes' VTEPs. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_felix::input::{
    EncapMode, FelixInput, LocalWorkload, PathSource, Pool, RemoteBlock, RemoteVtep,
};
use tortie_model::ippool::EncapMode as ModelEncap;

use crate::snapshot::{node_addr, Snapshot};
use crate::sync::format_mac;

fn encap(m: ModelEncap) -> EncapMode {
    match m {
        ModelEncap::Never => EncapMode::Never,
        ModelEncap::Always => EncapMode::Always,
        ModelEncap::CrossSubnet => EncapMode::CrossSubnet,
    }
}

/// Every pool, `disabled` ones included: `disabled` only stops new
/// allocations (Calico IPAM); pods already in such a pool keep their
/// encapsulation and NAT outgoing, and traffic to them is not masqueraded.
fn pools(snap: &Snapshot) -> Vec<Pool> {
    snap.pools
        .iter()
        .map(|p| Pool {
            cidr: p.spec.cidr,
            ipip_mode: encap(p.spec.ipip_mode()),
            vxlan_mode: encap(p.spec.vxlan_mode()),
            nat_outgoing: p.spec.nat_outgoing,
        })
        .collect()
}

fn workloads(snap: &Snapshot, me: &str) -> Vec<LocalWorkload> {
    snap.workloads
        .iter()
        .filter(|w| w.spec.node == me && !w.spec.interface_name.is_empty())
        .map(|w| LocalWorkload {
            interface: w.spec.interface_name.clone(),
            addresses: w.spec.ip_networks.iter().map(|n| n.addr()).collect(),
        })
        .collect()
}

fn vteps(snap: &Snapshot, me: &str) -> Vec<RemoteVtep> {
    snap.nodes
        .iter()
        .filter(|n| n.metadata.name != me)
        .filter_map(|n| {
            let vtep = n.spec.ipv4_vxlan_tunnel_addr?;
            Some(RemoteVtep {
                node: n.metadata.name.clone(),
                node_ip: node_addr(n)?,
                vtep_ip: IpAddr::V4(vtep),
                vtep_mac: n.spec.vxlan_tunnel_mac_addr.clone().unwrap_or_else(|| {
                    format_mac(tortie_felix::desired::mac_for_node(&n.metadata.name))
                }),
            })
        })
        .collect()
}

/// True if felix can route towards `hop` for a block of `pool`: it
/// encapsulates, or `hop` is on link (felix's one definition,
/// [`tortie_felix::hop_path`]); off-link blocks follow the default route.
fn usable_hop(input: &FelixInput, pool: Option<&Pool>, hop: IpAddr) -> bool {
    tortie_felix::hop_path(input, pool, hop).is_some()
}

fn vxlan_pool(input: &FelixInput, net: &IpNet) -> bool {
    input
        .pool_of(net)
        .is_some_and(|p| p.vxlan_mode != EncapMode::Never)
}

fn bgp_blocks(input: &FelixInput, learned: &BTreeMap<IpNet, BTreeSet<IpAddr>>) -> Vec<RemoteBlock> {
    learned
        .iter()
        .filter(|(net, _)| !input.local_blocks.contains(net) && !vxlan_pool(input, net))
        .filter_map(|(net, hops)| {
            let pool = input.pool_of(net);
            let next_hops: Vec<IpAddr> = hops
                .iter()
                .copied()
                .filter(|h| usable_hop(input, pool, *h))
                .collect();
            (!next_hops.is_empty()).then_some(RemoteBlock {
                cidr: *net,
                next_hops,
                source: PathSource::Bgp,
            })
        })
        .collect()
}

fn datastore_blocks(input: &FelixInput, snap: &Snapshot, me: &str) -> Vec<RemoteBlock> {
    snap.affinities
        .iter()
        .filter(|(n, b)| n != me && vxlan_pool(input, b))
        .filter_map(|(n, b)| {
            let hop = snap.node(n).and_then(node_addr)?;
            Some(RemoteBlock {
                cidr: *b,
                next_hops: vec![hop],
                source: PathSource::Datastore,
            })
        })
        .collect()
}

/// What [`felix_input`] needs besides the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct FeedContext<'a> {
    /// Our node name.
    pub me: &'a str,
    /// Our node IP with prefix length.
    pub node_ip: IpNet,
    /// Subnets connected to this namespace (next hops there are on-link).
    pub connected: &'a [IpNet],
}

/// Felix's input for node `ctx.me`.
pub fn felix_input(
    snap: &Snapshot,
    ctx: FeedContext<'_>,
    learned: &BTreeMap<IpNet, BTreeSet<IpAddr>>,
) -> FelixInput {
    let (me, node_ip) = (ctx.me, ctx.node_ip);
    let node = snap.node(me);
    let mut input = FelixInput {
        node_name: me.to_string(),
        node_ip: Some(node_ip),
        connected: ctx.connected.to_vec(),
        ipip_tunnel_addr: node
            .and_then(|n| n.spec.bgp.as_ref())
            .and_then(|b| b.ipv4_ipip_tunnel_addr)
            .map(IpAddr::V4),
        vxlan_tunnel_addr: node
            .and_then(|n| n.spec.ipv4_vxlan_tunnel_addr)
            .map(IpAddr::V4),
        vxlan_tunnel_mac: node.and_then(|n| n.spec.vxlan_tunnel_mac_addr.clone()),
        pools: pools(snap),
        workloads: workloads(snap, me),
        local_blocks: snap.blocks_of(me),
        remote_vteps: vteps(snap, me),
        knobs: crate::felixcfg::knobs(&crate::felixcfg::effective(&snap.felix_configs, me)),
        ..FelixInput::default()
    };
    let mut remote = bgp_blocks(&input, learned);
    remote.extend(datastore_blocks(&input, snap, me));
    input.remote_blocks = remote;
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_model::{IpPool, Node, NodeBgpSpec};

    fn node(name: &str, ip: &str) -> Node {
        let mut n = Node::new(name);
        n.spec.bgp = Some(NodeBgpSpec {
            ipv4_address: Some(ip.parse().unwrap()),
            ..Default::default()
        });
        n
    }

    fn snap(vxlan: ModelEncap) -> Snapshot {
        let mut pool = IpPool::new("p", "10.244.0.0/16".parse().unwrap());
        pool.spec.vxlan_mode = Some(vxlan);
        Snapshot {
            nodes: vec![
                node("n1", "10.0.1.11/24"),
                node("n2", "10.0.1.12/24"),
                node("n3", "10.0.2.13/24"),
            ],
            pools: vec![pool],
            affinities: vec![
                ("n1".into(), "10.244.0.0/26".parse().unwrap()),
                ("n2".into(), "10.244.0.64/26".parse().unwrap()),
                ("n3".into(), "10.244.0.128/26".parse().unwrap()),
            ],
            ..Default::default()
        }
    }

    fn learned() -> BTreeMap<IpNet, BTreeSet<IpAddr>> {
        let mut m = BTreeMap::new();
        m.insert(
            "10.244.0.64/26".parse().unwrap(),
            ["10.0.1.12".parse().unwrap()].into(),
        );
        m.insert(
            "10.244.0.128/26".parse().unwrap(),
            ["10.0.2.13".parse().unwrap()].into(),
        );
        m
    }

    fn ctx(connected: &[IpNet]) -> FeedContext<'_> {
        FeedContext {
            me: "n1",
            node_ip: "10.0.1.11/24".parse().unwrap(),
            connected,
        }
    }

    #[test]
    fn pools_carry_nat_outgoing_and_disabled_pools_stay() {
        let mut s = snap(ModelEncap::Never);
        s.pools[0].spec.nat_outgoing = true;
        let mut off = IpPool::new("off", "10.250.0.0/16".parse().unwrap());
        off.spec.disabled = true;
        s.pools.push(off);
        let i = felix_input(&s, ctx(&[]), &learned());
        let nat: Vec<(String, bool)> = i
            .pools
            .iter()
            .map(|p| (p.cidr.to_string(), p.nat_outgoing))
            .collect();
        assert_eq!(
            nat,
            [
                ("10.244.0.0/16".to_string(), true),
                ("10.250.0.0/16".to_string(), false)
            ]
        );
    }

    #[test]
    fn a_router_connected_to_both_subnets_installs_both() {
        let nets: Vec<IpNet> = vec!["10.0.2.1/24".parse().unwrap()];
        let i = felix_input(&snap(ModelEncap::Never), ctx(&nets), &learned());
        assert_eq!(i.remote_blocks.len(), 2);
    }

    #[test]
    fn bgp_mode_installs_on_subnet_next_hops_only() {
        let i = felix_input(&snap(ModelEncap::Never), ctx(&[]), &learned());
        assert_eq!(
            i.local_blocks,
            vec!["10.244.0.0/26".parse::<IpNet>().unwrap()]
        );
        assert_eq!(i.remote_blocks.len(), 1);
        assert_eq!(i.remote_blocks[0].cidr.to_string(), "10.244.0.64/26");
        assert_eq!(i.remote_blocks[0].source, PathSource::Bgp);
    }

    #[test]
    fn vxlan_pools_take_remote_blocks_from_the_datastore() {
        let i = felix_input(&snap(ModelEncap::CrossSubnet), ctx(&[]), &learned());
        let cidrs: Vec<String> = i.remote_blocks.iter().map(|b| b.cidr.to_string()).collect();
        assert_eq!(cidrs, ["10.244.0.64/26", "10.244.0.128/26"]);
        assert!(i
            .remote_blocks
            .iter()
            .all(|b| b.source == PathSource::Datastore));
        assert_eq!(i.pools[0].vxlan_mode, EncapMode::CrossSubnet);
    }
}

/// Feed and felix on the same next hops: the feed keeps a hop only when
/// felix can route towards it, and felix must then install a route.
#[cfg(test)]
mod one_idea_of_same_subnet {
    use super::*;
    use tortie_felix::{compute, FelixConfig, RouteKey};

    struct Case {
        what: &'static str,
        ipip: EncapMode,
        connected: &'static [&'static str],
        hop: &'static str,
    }

    /// (feed keeps the hop, felix installs a route for it)
    fn both(c: &Case) -> (bool, bool) {
        let connected: Vec<IpNet> = c.connected.iter().map(|n| n.parse().unwrap()).collect();
        let block: IpNet = "10.244.0.64/26".parse().unwrap();
        let hop: IpAddr = c.hop.parse().unwrap();
        let mut input = FelixInput {
            node_name: "n1".into(),
            node_ip: Some("10.0.1.11/24".parse().unwrap()),
            pools: vec![Pool {
                cidr: "10.244.0.0/16".parse().unwrap(),
                ipip_mode: c.ipip,
                vxlan_mode: EncapMode::Never,
                nat_outgoing: false,
            }],
            ..FelixInput::default()
        };
        input.connected = connected;
        let feed = usable_hop(&input, input.pool_of(&block), hop);
        input.remote_blocks = vec![RemoteBlock {
            cidr: block,
            next_hops: vec![hop],
            source: PathSource::Bgp,
        }];
        let cfg = FelixConfig::default();
        let key = RouteKey {
            table: cfg.table,
            dst: block,
        };
        (feed, compute(&input, &cfg).routes.contains_key(&key))
    }

    #[test]
    fn feed_and_felix_agree_on_every_next_hop() {
        let cases = [
            Case {
                what: "same subnet, Never",
                ipip: EncapMode::Never,
                connected: &[],
                hop: "10.0.1.12",
            },
            Case {
                what: "other subnet, Never",
                ipip: EncapMode::Never,
                connected: &[],
                hop: "10.0.2.13",
            },
            Case {
                what: "connected subnet, Never",
                ipip: EncapMode::Never,
                connected: &["10.0.2.0/24"],
                hop: "10.0.2.13",
            },
            Case {
                what: "other subnet, CrossSubnet",
                ipip: EncapMode::CrossSubnet,
                connected: &[],
                hop: "10.0.2.13",
            },
            Case {
                what: "connected subnet, CrossSubnet",
                ipip: EncapMode::CrossSubnet,
                connected: &["10.0.2.0/24"],
                hop: "10.0.2.13",
            },
            Case {
                what: "other subnet, Always",
                ipip: EncapMode::Always,
                connected: &[],
                hop: "10.0.2.13",
            },
        ];
        let disagree: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                let (feed, felix) = both(c);
                (feed != felix)
                    .then(|| format!("{}: feed keeps {feed}, felix routes {felix}", c.what))
            })
            .collect();
        assert!(disagree.is_empty(), "{disagree:#?}");
    }
}
