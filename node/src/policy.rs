//! Calico's BGP import/export policy for this node, computed from the
//! datastore snapshot: the IP pools (with `disableBGPExport`), the service
//! CIDRs of the `default` BGPConfiguration (`serviceClusterIPs`,
//! `serviceExternalIPs`, `serviceLoadBalancerIPs`), this node's confirmed
//! affine blocks, and `prefixAdvertisements` with their communities
//! resolved through `spec.communities`. Also what this node originates:
//! its blocks, the addresses it borrowed from other nodes' blocks (as /32
//! or /128, as Calico), and the service CIDRs — each only when the policy
//! exports it. The reverse of borrowing goes into the import rules: the
//! addresses of our blocks that IPAM allocated to other nodes (`lent`),
//! whose host routes those nodes announce and we must install. Pure: the agent hands the result to the speaker
//! (`SpeakerOptions::policy`, `SpeakerHandle::set_policy`) and logs the
//! problems returned.
//!
//! Must not: decide per-peer import scope (the speaker does, from the
//! peer's type and `PeerConfig::cluster_node`) or read the datastore.

use std::collections::BTreeSet;

use ipnet::IpNet;
use tortie_bgp_rib::{PolicyConfig, PoolConfig, PrefixAdvertisement};
use tortie_bgp_wire::{Community, LargeCommunity, Prefix};
use tortie_model::ipam::AllocationBlock;
use tortie_model::BgpConfigurationSpec;

use crate::snapshot::Snapshot;

/// The policy and what did not make it in (named in words, to be logged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltPolicy {
    /// The rules for the speaker.
    pub policy: PolicyConfig,
    /// Problems: a community name that resolves to nothing, a CIDR that is
    /// not a valid BGP prefix. The rest of the policy still applies.
    pub problems: Vec<String>,
}

fn prefix(n: &IpNet) -> Option<Prefix> {
    let n = n.trunc();
    Prefix::new(n.addr(), n.prefix_len()).ok()
}

/// `aa:nn` (RFC 1997) or `aa:nn:mm` (RFC 8092).
enum CommunityValue {
    Standard(Community),
    Large(LargeCommunity),
}

fn parse_community(v: &str) -> Option<CommunityValue> {
    let parts: Vec<&str> = v.split(':').collect();
    match parts.as_slice() {
        [a, n] => Some(CommunityValue::Standard(Community::new(
            a.parse().ok()?,
            n.parse().ok()?,
        ))),
        [g, l1, l2] => Some(CommunityValue::Large(LargeCommunity {
            global_admin: g.parse().ok()?,
            local_data1: l1.parse().ok()?,
            local_data2: l2.parse().ok()?,
        })),
        _ => None,
    }
}

fn advertisements(
    cfg: &BgpConfigurationSpec,
    problems: &mut Vec<String>,
) -> Vec<PrefixAdvertisement> {
    let mut out = Vec::new();
    for (i, pa) in cfg.prefix_advertisements.iter().enumerate() {
        let Some(cidr) = prefix(&pa.cidr) else {
            problems.push(format!(
                "BGPConfiguration(default) spec.prefixAdvertisements[{i}].cidr {}: not a BGP prefix; ignored",
                pa.cidr
            ));
            continue;
        };
        let mut adv = PrefixAdvertisement {
            cidr,
            communities: Vec::new(),
            large_communities: Vec::new(),
        };
        for (j, name) in pa.communities.iter().enumerate() {
            match cfg.community_value(name).and_then(parse_community) {
                Some(CommunityValue::Standard(c)) => adv.communities.push(c),
                Some(CommunityValue::Large(c)) => adv.large_communities.push(c),
                None => problems.push(format!(
                    "BGPConfiguration(default) spec.prefixAdvertisements[{i}].communities[{j}] {name:?}: \
                     neither a name in spec.communities nor a value aa:nn or aa:nn:mm; ignored"
                )),
            }
        }
        out.push(adv);
    }
    out
}

/// The service CIDRs of the `default` BGPConfiguration: cluster IPs,
/// external IPs and LoadBalancer IPs.
pub fn service_cidrs(snap: &Snapshot) -> Vec<IpNet> {
    let Some(cfg) = &snap.bgp_config else {
        return Vec::new();
    };
    cfg.service_cluster_ips
        .iter()
        .chain(&cfg.service_external_ips)
        .chain(&cfg.service_load_balancer_ips)
        .map(|b| b.cidr.trunc())
        .collect()
}

/// Where node `me`'s `prefixAdvertisements` (and the community names they
/// use) come from: its `node.<name>` BGPConfiguration when that sets some
/// (Calico's override), else `default`'s.
fn advertisement_config<'a>(snap: &'a Snapshot, me: &str) -> Option<&'a BgpConfigurationSpec> {
    snap.bgp_node_configs
        .get(me)
        .filter(|c| !c.prefix_advertisements.is_empty())
        .or(snap.bgp_config.as_ref())
}

/// Calico's policy for node `me`.
pub fn build(snap: &Snapshot, me: &str) -> BuiltPolicy {
    let mut problems = Vec::new();
    let mut pools = Vec::new();
    for p in &snap.pools {
        match prefix(&p.spec.cidr) {
            Some(cidr) => pools.push(PoolConfig {
                cidr,
                disable_bgp_export: p.spec.disable_bgp_export,
            }),
            None => problems.push(format!(
                "IPPool({}) spec.cidr {}: not a BGP prefix; ignored",
                p.metadata.name, p.spec.cidr
            )),
        }
    }
    let policy = PolicyConfig {
        pools,
        service_cidrs: service_cidrs(snap).iter().filter_map(prefix).collect(),
        local_blocks: snap.blocks_of(me).iter().filter_map(prefix).collect(),
        lent: lent(snap, me).iter().filter_map(prefix).collect(),
        prefix_advertisements: advertisement_config(snap, me)
            .map(|c| advertisements(c, &mut problems))
            .unwrap_or_default(),
    };
    BuiltPolicy { policy, problems }
}

/// The allocated addresses of `block` whose `node` attribute satisfies
/// `holder`, as host routes.
fn held_in(block: &AllocationBlock, holder: impl Fn(&str) -> bool) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (ordinal, slot) in block.allocations.iter().enumerate() {
        let Some(idx) = slot else { continue };
        let held = block
            .attributes
            .get(*idx)
            .and_then(|a| a.secondary.get("node"))
            .is_some_and(|n| holder(n));
        if let (true, Some(ip)) = (held, block.ordinal_to_ip(ordinal)) {
            out.push(IpNet::from(ip));
        }
    }
    out
}

/// Addresses this node holds in blocks affine to another node (or to no
/// node): Calico advertises each as a host route (/32, /128).
pub fn borrowed(snap: &Snapshot, me: &str) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = snap
        .blocks
        .iter()
        .filter(|b| b.host() != Some(me))
        .flat_map(|b| held_in(b, |n| n == me))
        .collect();
    out.sort();
    out
}

/// Addresses of blocks affine to this node that IPAM allocated to another
/// node (borrowed from us), as host routes: that node announces each, and
/// we accept exactly these inside our blocks. An allocation without a
/// `node` attribute is not lent.
pub fn lent(snap: &Snapshot, me: &str) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = snap
        .blocks
        .iter()
        .filter(|b| b.host() == Some(me))
        .flat_map(|b| held_in(b, |n| n != me))
        .collect();
    out.sort();
    out
}

/// What node `me` originates: its affine blocks, its borrowed addresses
/// and the service CIDRs, each only when `policy` exports it.
pub fn originations(snap: &Snapshot, me: &str, policy: &PolicyConfig) -> BTreeSet<Prefix> {
    snap.blocks_of(me)
        .iter()
        .chain(&borrowed(snap, me))
        .chain(&service_cidrs(snap))
        .filter_map(prefix)
        .filter(|p| policy.exportable(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_model::ipam::AllocationAttribute;
    use tortie_model::IpPool;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn bgp_config(yaml: &str) -> BgpConfigurationSpec {
        let text = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n{yaml}"
        );
        match tortie_model::parse_manifest(&text).unwrap().remove(0) {
            tortie_model::Resource::BgpConfiguration(c) => c.spec,
            other => panic!("{other:?}"),
        }
    }

    fn block(cidr: &str, host: &str, used: &[(usize, &str)]) -> AllocationBlock {
        let mut b =
            AllocationBlock::new(cidr.parse().unwrap(), Some(format!("host:{host}")), false);
        for (ordinal, node) in used {
            let mut a = AllocationAttribute::default();
            a.secondary.insert("node".into(), node.to_string());
            b.attributes.push(a);
            b.allocations[*ordinal] = Some(b.attributes.len() - 1);
            b.unallocated.retain(|o| o != ordinal);
        }
        b
    }

    fn snap() -> Snapshot {
        let mut quiet = IpPool::new("quiet", "10.99.0.0/16".parse().unwrap());
        quiet.spec.disable_bgp_export = true;
        Snapshot {
            pools: vec![IpPool::new("p", "10.244.0.0/16".parse().unwrap()), quiet],
            affinities: vec![
                ("n1".into(), "10.244.1.0/26".parse().unwrap()),
                ("n1".into(), "10.99.0.0/26".parse().unwrap()),
                ("n2".into(), "10.244.2.0/26".parse().unwrap()),
            ],
            blocks: vec![
                block("10.244.1.0/26", "n1", &[(1, "n1"), (9, "n2")]),
                block("10.244.2.0/26", "n2", &[(1, "n2"), (5, "n1")]),
                block("10.99.1.0/26", "n2", &[(3, "n1")]),
            ],
            bgp_config: Some(bgp_config(
                "  serviceClusterIPs:\n  - cidr: 10.96.0.0/12\n  serviceExternalIPs:\n  - cidr: 192.0.2.0/24\n",
            )),
            ..Default::default()
        }
    }

    #[test]
    fn pools_services_and_our_blocks_make_the_policy() {
        let b = build(&snap(), "n1");
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        let pol = b.policy;
        assert_eq!(pol.pools.len(), 2);
        assert!(pol
            .pools
            .iter()
            .any(|x| x.cidr == p("10.99.0.0/16") && x.disable_bgp_export));
        assert_eq!(
            pol.service_cidrs,
            vec![p("10.96.0.0/12"), p("192.0.2.0/24")]
        );
        assert_eq!(
            pol.local_blocks,
            vec![p("10.99.0.0/26"), p("10.244.1.0/26")]
        );
        // Imports: another node's block yes, ours or a foreign prefix no.
        assert!(pol.acceptable_from_node(&p("10.244.2.0/26")));
        assert!(!pol.acceptable_from_node(&p("10.244.1.0/26")));
        assert!(!pol.acceptable_from_node(&p("8.8.8.0/24")));
    }

    #[test]
    fn another_node_gets_its_own_local_blocks() {
        let pol = build(&snap(), "n2").policy;
        assert_eq!(pol.local_blocks, vec![p("10.244.2.0/26")]);
        assert!(pol.acceptable_from_node(&p("10.244.1.0/26")));
    }

    #[test]
    fn we_originate_exportable_blocks_borrowed_addresses_and_services() {
        let s = snap();
        let pol = build(&s, "n1").policy;
        let o: Vec<String> = originations(&s, "n1", &pol)
            .iter()
            .map(ToString::to_string)
            .collect();
        // Not 10.99.0.0/26 (disableBGPExport) nor the borrowed 10.99.1.3.
        assert_eq!(
            o,
            [
                "10.96.0.0/12",
                "10.244.1.0/26",
                "10.244.2.5/32",
                "192.0.2.0/24"
            ]
        );
    }

    #[test]
    fn borrowed_addresses_are_ours_in_blocks_of_other_nodes() {
        let b: Vec<String> = borrowed(&snap(), "n1")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(b, ["10.99.1.3/32", "10.244.2.5/32"]);
        let b2: Vec<String> = borrowed(&snap(), "n2")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(b2, ["10.244.1.9/32"]);
    }

    #[test]
    fn addresses_other_nodes_hold_in_our_blocks_are_lent() {
        let s = snap();
        let l: Vec<String> = lent(&s, "n1").iter().map(ToString::to_string).collect();
        assert_eq!(l, ["10.244.1.9/32"]);
        // n2 lent 10.244.2.5 and 10.99.1.3 to n1.
        let l: Vec<String> = lent(&s, "n2").iter().map(ToString::to_string).collect();
        assert_eq!(l, ["10.99.1.3/32", "10.244.2.5/32"]);
        // Lending and borrowing mirror each other.
        assert_eq!(lent(&s, "n2"), borrowed(&s, "n1"));
        assert_eq!(lent(&s, "n1"), borrowed(&s, "n2"));
    }

    #[test]
    fn the_lent_host_routes_and_nothing_else_come_in_from_inside_our_blocks() {
        let s = snap();
        let pol = build(&s, "n1").policy;
        assert_eq!(pol.lent, vec![p("10.244.1.9/32")]);
        // n2 announces the address it borrowed from our block: we install it.
        assert!(pol.acceptable_from_node(&p("10.244.1.9/32")));
        // Another address of our block (ours, or free) is refused.
        assert!(!pol.acceptable_from_node(&p("10.244.1.1/32")));
        assert!(!pol.acceptable_from_node(&p("10.244.1.10/32")));
        // We do not pass it on (calico_aggr) nor originate it.
        assert!(!pol.exportable(&p("10.244.1.9/32")));
        assert!(!originations(&s, "n1", &pol).contains(&p("10.244.1.9/32")));
        // n2 originates it (a borrowed address outside its own blocks).
        let pol2 = build(&s, "n2").policy;
        assert!(originations(&s, "n2", &pol2).contains(&p("10.244.1.9/32")));
    }

    #[test]
    fn communities_resolve_by_name_or_value_and_bad_ones_are_reported() {
        let mut s = snap();
        s.bgp_config = Some(bgp_config(
            "  communities:\n  - name: gold\n    value: 65001:100\n  - name: big\n    value: 4200000000:1:2\n  prefixAdvertisements:\n  - cidr: 10.244.0.0/16\n    communities:\n    - gold\n    - big\n    - 65002:7\n",
        ));
        let mut b = build(&s, "n1");
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        let adv = b.policy.prefix_advertisements.remove(0);
        assert_eq!(adv.cidr, p("10.244.0.0/16"));
        assert_eq!(
            adv.communities,
            vec![Community::new(65001, 100), Community::new(65002, 7)]
        );
        assert_eq!(adv.large_communities[0].to_string(), "4200000000:1:2");

        // A name that is not defined (the model's validation would normally
        // refuse it) is reported, and the rest applies.
        let cfg = s.bgp_config.as_mut().unwrap();
        cfg.prefix_advertisements[0]
            .communities
            .push("silver".into());
        let b = build(&s, "n1");
        assert_eq!(b.problems.len(), 1);
        assert!(
            b.problems[0].contains("communities[3]"),
            "{}",
            b.problems[0]
        );
        assert_eq!(b.policy.prefix_advertisements[0].communities.len(), 2);
    }

    #[test]
    fn a_node_configuration_overrides_the_prefix_advertisements_of_its_node() {
        let mut s = snap();
        s.bgp_config = Some(bgp_config(
            "  communities:\n  - name: gold\n    value: 65001:100\n  prefixAdvertisements:\n  - cidr: 10.244.0.0/16\n    communities:\n    - gold\n",
        ));
        s.bgp_node_configs.insert(
            "n1".into(),
            bgp_config("  communities:\n  - name: gold\n    value: 65001:100\n  prefixAdvertisements:\n  - cidr: 10.244.1.0/26\n    communities:\n    - gold\n    - 65009:9\n"),
        );
        let b = build(&s, "n1");
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        let advs = &b.policy.prefix_advertisements;
        assert_eq!(advs.len(), 1);
        assert_eq!(advs[0].cidr, p("10.244.1.0/26"));
        assert_eq!(
            advs[0].communities,
            vec![Community::new(65001, 100), Community::new(65009, 9)]
        );
        // Other nodes keep the default's.
        let other = build(&s, "n2").policy.prefix_advertisements;
        assert_eq!(other[0].cidr, p("10.244.0.0/16"));
    }

    #[test]
    fn without_pools_only_our_blocks_go_out_and_nothing_comes_in() {
        // Calico's `calico_aggr` accepts our own block before any pool
        // rule: a block whose pool was deleted is still announced.
        let s = Snapshot {
            affinities: vec![("n1".into(), "10.244.1.0/26".parse().unwrap())],
            ..Default::default()
        };
        let pol = build(&s, "n1").policy;
        let o: Vec<String> = originations(&s, "n1", &pol)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(o, ["10.244.1.0/26"]);
        assert!(!pol.acceptable_from_node(&p("10.244.2.0/26")));
        assert!(!pol.exportable(&p("10.244.2.0/26")));
    }
}
