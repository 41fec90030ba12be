//! How this node reaches another node's address (the next hop of a remote
//! block): the one definition of "same subnet" and of cross-subnet
//! encapsulation, used by felix's route computation and by tortie-node's
//! feed when it picks which BGP next hops to hand to felix. Pure.
//!
//! Two questions, two words:
//! - **same subnet** ([`same_subnet`]): the hop is inside this node's own
//!   subnet (its node IP with prefix length). This is Calico's rule for
//!   `CrossSubnet` pools (felix's `SameSubnet`, the BIRD template's
//!   `bgp_next_hop ~ <node subnet>`): encapsulate exactly when the hop is
//!   not in the same subnet.
//! - **on link** ([`on_link`]): the kernel accepts the hop as a plain
//!   gateway: it is in the same subnet or in another subnet of an interface
//!   of this node ([`FelixInput::connected`], e.g. a router between two
//!   underlay subnets). A plain (unencapsulated) route needs an on-link
//!   hop; an encapsulated one goes `onlink` through the tunnel device and
//!   needs nothing.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::input::{EncapMode, FelixInput, Pool};

/// How a route towards a node address is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopPath {
    /// Through the VXLAN device, to the node's VTEP.
    Vxlan,
    /// Through tunl0 (IPIP), `onlink` to the node address.
    Ipip,
    /// A plain route via the node address (it is on link).
    Direct,
}

/// True when `hop` is inside this node's own subnet (Calico's cross-subnet rule).
pub fn same_subnet(node_ip: Option<IpNet>, hop: IpAddr) -> bool {
    node_ip.is_some_and(|n| n.trunc().contains(&hop))
}

/// True when the kernel takes `hop` as a plain gateway: in this node's
/// subnet or in a subnet of one of its interfaces.
pub fn on_link(node_ip: Option<IpNet>, connected: &[IpNet], hop: IpAddr) -> bool {
    same_subnet(node_ip, hop) || connected.iter().any(|n| n.trunc().contains(&hop))
}

/// How this node reaches `hop` for a block of `pool` (`None`: outside
/// every pool, never encapsulated); `None` when it cannot (no
/// encapsulation and `hop` is not on link). VXLAN wins over IPIP when a
/// pool asks for both, as in Calico.
pub fn hop_path(input: &FelixInput, pool: Option<&Pool>, hop: IpAddr) -> Option<HopPath> {
    let (ipip, vxlan) = pool.map_or((EncapMode::Never, EncapMode::Never), |p| {
        (p.ipip_mode, p.vxlan_mode)
    });
    let encaps = |m: EncapMode| match m {
        EncapMode::Never => false,
        EncapMode::Always => true,
        EncapMode::CrossSubnet => !same_subnet(input.node_ip, hop),
    };
    if encaps(vxlan) {
        Some(HopPath::Vxlan)
    } else if encaps(ipip) {
        Some(HopPath::Ipip)
    } else if on_link(input.node_ip, &input.connected, hop) {
        Some(HopPath::Direct)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(ipip: EncapMode, vxlan: EncapMode, connected: &[&str]) -> FelixInput {
        FelixInput {
            node_ip: Some("10.0.1.11/24".parse().unwrap()),
            connected: connected.iter().map(|n| n.parse().unwrap()).collect(),
            pools: vec![Pool {
                cidr: "10.244.0.0/16".parse().unwrap(),
                ipip_mode: ipip,
                vxlan_mode: vxlan,
                nat_outgoing: false,
            }],
            ..FelixInput::default()
        }
    }

    fn path(i: &FelixInput, hop: &str) -> Option<HopPath> {
        hop_path(i, i.pools.first(), hop.parse().unwrap())
    }

    #[test]
    fn never_mode_routes_only_to_on_link_hops() {
        let i = input(EncapMode::Never, EncapMode::Never, &[]);
        assert_eq!(path(&i, "10.0.1.12"), Some(HopPath::Direct));
        // The case where tortie-node's feed dropped the hop but felix
        // still built a plain route to an off-link gateway.
        assert_eq!(path(&i, "10.0.2.13"), None);
        let i = input(EncapMode::Never, EncapMode::Never, &["10.0.2.1/24"]);
        assert_eq!(path(&i, "10.0.2.13"), Some(HopPath::Direct));
    }

    #[test]
    fn cross_subnet_encapsulates_outside_the_node_subnet_even_when_connected() {
        for (mode, tunnel) in [
            (
                input(EncapMode::CrossSubnet, EncapMode::Never, &[]),
                HopPath::Ipip,
            ),
            (
                input(EncapMode::Never, EncapMode::CrossSubnet, &[]),
                HopPath::Vxlan,
            ),
        ] {
            assert_eq!(path(&mode, "10.0.1.12"), Some(HopPath::Direct));
            assert_eq!(path(&mode, "10.0.2.13"), Some(tunnel));
            // Where the feed took a connected subnet for "same subnet" (no
            // tunnel) and felix did not: Calico's rule, the node subnet.
            let mut connected = mode.clone();
            connected.connected = vec!["10.0.2.0/24".parse().unwrap()];
            assert_eq!(path(&connected, "10.0.2.13"), Some(tunnel));
        }
    }

    #[test]
    fn always_encapsulates_and_vxlan_wins_over_ipip() {
        let i = input(EncapMode::Always, EncapMode::Never, &[]);
        assert_eq!(path(&i, "10.0.1.12"), Some(HopPath::Ipip));
        assert_eq!(path(&i, "10.0.2.13"), Some(HopPath::Ipip));
        let i = input(EncapMode::Always, EncapMode::Always, &[]);
        assert_eq!(path(&i, "10.0.2.13"), Some(HopPath::Vxlan));
    }

    #[test]
    fn the_node_prefix_length_decides_the_subnet() {
        let mut i = input(EncapMode::CrossSubnet, EncapMode::Never, &[]);
        i.node_ip = Some("10.0.1.11/16".parse().unwrap());
        assert_eq!(path(&i, "10.0.2.13"), Some(HopPath::Direct));
    }

    #[test]
    fn without_a_node_ip_only_connected_hops_are_on_link() {
        let mut i = input(EncapMode::CrossSubnet, EncapMode::Never, &["10.0.1.0/24"]);
        i.node_ip = None;
        assert_eq!(path(&i, "10.0.1.12"), Some(HopPath::Ipip));
        i.pools[0].ipip_mode = EncapMode::Never;
        assert_eq!(path(&i, "10.0.1.12"), Some(HopPath::Direct));
        assert_eq!(path(&i, "10.0.3.1"), None);
    }

    #[test]
    fn a_block_outside_every_pool_is_never_encapsulated() {
        let i = input(EncapMode::Always, EncapMode::Always, &[]);
        assert_eq!(
            hop_path(&i, None, "10.0.1.12".parse().unwrap()),
            Some(HopPath::Direct)
        );
        assert_eq!(hop_path(&i, None, "10.0.2.13".parse().unwrap()), None);
    }
}
