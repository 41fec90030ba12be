//! Which kernel routes are felix's: one of its protocol numbers and a
//! destination inside a prefix tortie owns (pools, this node's address,
//! its tunnel addresses). Everything else in the table — static routes,
//! FRR's, BIRD's, and routes that merely reuse one of our numbers outside
//! our prefixes — is never modified or deleted by the reconciler.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::input::FelixInput;
use crate::route::{RouteKey, RouteSpec};

/// The ownership rule the reconciler applies to what it reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    protocols: BTreeSet<u8>,
    prefixes: Vec<IpNet>,
}

impl Ownership {
    /// Routes of `protocols` inside `prefixes` are ours.
    pub fn new(protocols: impl IntoIterator<Item = u8>, prefixes: Vec<IpNet>) -> Self {
        let mut prefixes: Vec<IpNet> = prefixes.into_iter().map(|p| p.trunc()).collect();
        prefixes.sort();
        prefixes.dedup();
        Self {
            protocols: protocols.into_iter().collect(),
            prefixes,
        }
    }

    /// The protocol numbers taken as ours.
    pub fn protocols(&self) -> &BTreeSet<u8> {
        &self.protocols
    }

    /// The prefixes tortie owns.
    pub fn prefixes(&self) -> &[IpNet] {
        &self.prefixes
    }

    /// True when `dst` lies inside one of the owned prefixes.
    pub fn covers(&self, dst: &IpNet) -> bool {
        self.prefixes.iter().any(|p| p.contains(dst))
    }

    /// True when the route carries one of our protocols and lies in an owned prefix.
    pub fn owns(&self, key: &RouteKey, spec: &RouteSpec) -> bool {
        self.protocols.contains(&spec.protocol) && self.covers(&key.dst)
    }
}

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The prefixes tortie owns on this node: every IP pool, this node's
/// address and its tunnel addresses (as host prefixes).
pub fn owned_prefixes(input: &FelixInput) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = input.pools.iter().map(|p| p.cidr.trunc()).collect();
    out.extend(input.node_ip.map(|n| host(n.addr())));
    out.extend(input.ipip_tunnel_addr.map(host));
    out.extend(input.vxlan_tunnel_addr.map(host));
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Pool;
    use crate::route::RouteScope;

    fn key(dst: &str) -> RouteKey {
        RouteKey {
            table: 254,
            dst: dst.parse().unwrap(),
        }
    }

    #[test]
    fn a_route_is_ours_only_with_our_protocol_inside_an_owned_prefix() {
        let o = Ownership::new([80, 84], vec!["10.244.0.0/16".parse().unwrap()]);
        let ours = RouteSpec::unicast(84, RouteScope::Universe, vec![]);
        let frr = RouteSpec::unicast(186, RouteScope::Universe, vec![]);
        assert!(o.owns(&key("10.244.1.0/26"), &ours));
        assert!(!o.owns(&key("10.244.1.0/26"), &frr), "FRR's number");
        assert!(!o.owns(&key("192.0.2.0/24"), &ours), "outside our prefixes");
        assert!(!o.owns(&key("10.0.0.0/8"), &ours), "wider than a pool");
    }

    #[test]
    fn pools_node_and_tunnel_addresses_are_owned() {
        let input = FelixInput {
            node_ip: Some("10.0.1.5/24".parse().unwrap()),
            ipip_tunnel_addr: Some("10.244.1.0".parse().unwrap()),
            vxlan_tunnel_addr: Some("10.245.1.1".parse().unwrap()),
            pools: vec![Pool {
                cidr: "10.244.0.0/16".parse().unwrap(),
                ipip_mode: Default::default(),
                vxlan_mode: Default::default(),
                nat_outgoing: false,
            }],
            ..Default::default()
        };
        let got: Vec<String> = owned_prefixes(&input)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.0.1.5/32",
                "10.244.0.0/16",
                "10.244.1.0/32",
                "10.245.1.1/32"
            ]
        );
    }
}
