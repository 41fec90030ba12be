//! Calico's route filters as plain functions: the export filter of confd's
//! BIRD templates (`calico_export_to_bgp_peers`, `calico_aggr`,
//! `reject_disabled_pools`, `apply_communities`) and the import rules.
//!
//! IPAM borrowing: a node that takes an address from a block affine to
//! another node (that block is full, or it has none) announces it as a host
//! route (/32, /128). The block's owner must install that route, more
//! specific than its own block, or it would black-hole the traffic; so the
//! import rules accept exactly the host routes lent out of our blocks
//! ([`PolicyConfig::lent`]) and nothing else inside them. Export keeps
//! Calico's `calico_aggr`: nothing more specific than our own block leaves
//! us, a lent address included (its holder announces it).

use tortie_bgp_wire::{Community, LargeCommunity, Prefix};

/// One IP pool as BGP cares about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pool CIDR.
    pub cidr: Prefix,
    /// IPPool `disableBGPExport`: nothing inside is ever advertised.
    pub disable_bgp_export: bool,
}

/// Communities attached to routes inside a CIDR (BGPConfiguration
/// `prefixAdvertisements`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixAdvertisement {
    /// Routes inside this CIDR get the communities.
    pub cidr: Prefix,
    /// RFC 1997 communities.
    pub communities: Vec<Community>,
    /// RFC 8092 large communities.
    pub large_communities: Vec<LargeCommunity>,
}

/// Export and import rules shared by all peers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// IP pools.
    pub pools: Vec<PoolConfig>,
    /// BGPConfiguration `serviceClusterIPs` (and external IPs) CIDRs.
    pub service_cidrs: Vec<Prefix>,
    /// This node's confirmed affine blocks: exported as a whole, nothing
    /// more specific inside them is (`calico_aggr`).
    pub local_blocks: Vec<Prefix>,
    /// Host routes (/32, /128) inside our local blocks whose addresses IPAM
    /// allocated to another node (borrowed from us): the only prefixes
    /// inside our blocks another node may announce to us.
    pub lent: Vec<Prefix>,
    /// Communities per CIDR.
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
}

/// True when `inner` lies inside `outer` (BIRD's `net ~ outer`).
pub fn contains(outer: &Prefix, inner: &Prefix) -> bool {
    if outer.is_ipv4() != inner.is_ipv4() || inner.len() < outer.len() {
        return false;
    }
    Prefix::new(inner.addr(), outer.len()).is_ok_and(|p| p == *outer)
}

impl PolicyConfig {
    /// Calico's export filter for `prefix`: `reject_disabled_pools`, then
    /// `calico_aggr` (a local block exactly: accept; inside it: reject), then
    /// service CIDRs and enabled pools accept; everything else is rejected.
    pub fn exportable(&self, prefix: &Prefix) -> bool {
        if self
            .pools
            .iter()
            .any(|p| p.disable_bgp_export && contains(&p.cidr, prefix))
        {
            return false;
        }
        for block in &self.local_blocks {
            if block == prefix {
                return true;
            }
            if contains(block, prefix) {
                return false;
            }
        }
        self.service_cidrs.iter().any(|c| contains(c, prefix))
            || self.pools.iter().any(|p| contains(&p.cidr, prefix))
    }

    /// Import from another tortie node: only prefixes inside a pool or a
    /// service CIDR (blocks and borrowed /32s are inside pools); inside one
    /// of our own blocks only the host routes we lent ([`Self::lent`]),
    /// never the block itself or any other part of it, which only we
    /// originate.
    pub fn acceptable_from_node(&self, prefix: &Prefix) -> bool {
        if self.local_blocks.iter().any(|b| contains(b, prefix)) {
            return self.lent.contains(prefix);
        }
        self.pools.iter().any(|p| contains(&p.cidr, prefix))
            || self.service_cidrs.iter().any(|c| contains(c, prefix))
    }

    /// Index of the prefix advertisements that apply to `prefix`, as a bit
    /// set (at most 32 advertisements are distinguished; more share the last bit).
    pub fn advertisement_mask(&self, prefix: &Prefix) -> u32 {
        self.prefix_advertisements
            .iter()
            .enumerate()
            .filter(|(_, a)| contains(&a.cidr, prefix))
            .fold(0, |m, (i, _)| m | (1u32 << i.min(31)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn policy() -> PolicyConfig {
        PolicyConfig {
            pools: vec![
                PoolConfig {
                    cidr: p("10.244.0.0/16"),
                    disable_bgp_export: false,
                },
                PoolConfig {
                    cidr: p("10.99.0.0/16"),
                    disable_bgp_export: true,
                },
            ],
            service_cidrs: vec![p("10.96.0.0/12")],
            local_blocks: vec![p("10.244.1.0/26")],
            lent: vec![p("10.244.1.7/32")],
            prefix_advertisements: vec![],
        }
    }

    #[test]
    fn own_block_is_exported_whole_and_nothing_inside_it() {
        let pol = policy();
        assert!(pol.exportable(&p("10.244.1.0/26")));
        assert!(!pol.exportable(&p("10.244.1.5/32")));
        // A borrowed /32 outside our blocks, inside the pool.
        assert!(pol.exportable(&p("10.244.7.9/32")));
    }

    #[test]
    fn disabled_pools_and_foreign_prefixes_are_never_exported() {
        let pol = policy();
        assert!(!pol.exportable(&p("10.99.3.0/26")));
        assert!(!pol.exportable(&p("0.0.0.0/0")));
        assert!(pol.exportable(&p("10.96.0.0/12")));
    }

    #[test]
    fn nodes_may_only_announce_pool_and_service_prefixes_not_ours() {
        let pol = policy();
        assert!(pol.acceptable_from_node(&p("10.244.2.0/26")));
        assert!(pol.acceptable_from_node(&p("10.96.0.10/32")));
        assert!(!pol.acceptable_from_node(&p("8.8.8.0/24")));
        assert!(!pol.acceptable_from_node(&p("10.244.1.0/26")));
        assert!(!pol.acceptable_from_node(&p("10.244.1.9/32")));
    }

    #[test]
    fn only_the_host_routes_we_lent_come_in_from_inside_our_blocks() {
        let mut pol = policy();
        // 10.244.1.7 is held by another node: its /32 is accepted.
        assert!(pol.acceptable_from_node(&p("10.244.1.7/32")));
        // Not a neighbour of it, nor anything wider that covers it.
        assert!(!pol.acceptable_from_node(&p("10.244.1.6/32")));
        assert!(!pol.acceptable_from_node(&p("10.244.1.0/29")));
        assert!(!pol.acceptable_from_node(&p("10.244.1.0/26")));
        // Calico's calico_aggr: we never pass it on ourselves.
        assert!(!pol.exportable(&p("10.244.1.7/32")));
        // Once released (no longer lent) it is refused again.
        pol.lent.clear();
        assert!(!pol.acceptable_from_node(&p("10.244.1.7/32")));
    }

    #[test]
    fn a_lent_entry_outside_our_blocks_changes_nothing() {
        let mut pol = policy();
        // Not inside a local block: the pool rule decides, as for any
        // other node's prefix; outside every pool it stays refused.
        pol.lent = vec![p("10.244.9.1/32"), p("8.8.8.8/32")];
        assert!(pol.acceptable_from_node(&p("10.244.9.1/32")));
        assert!(!pol.acceptable_from_node(&p("8.8.8.8/32")));
    }

    #[test]
    fn containment_respects_family_and_length() {
        assert!(contains(&p("10.0.0.0/8"), &p("10.1.2.3/32")));
        assert!(!contains(&p("10.0.0.0/8"), &p("11.0.0.0/8")));
        assert!(!contains(&p("10.0.0.0/8"), &p("10.0.0.0/7")));
        assert!(!contains(&p("::/0"), &p("10.0.0.0/8")));
    }
}
