//! `ipam check`: a pure consistency report over a snapshot of the IPAM
//! objects and of what uses addresses (workload endpoints, tunnel
//! addresses), as Calico's `calicoctl ipam check` does.
//!
//! An address is *in use* when a WorkloadEndpoint lists it in
//! `ipNetworks` or a Node names it as its IPIP/VXLAN tunnel address. An
//! allocated address that is not in use is *leaked*.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tortie_model::ipam::{AffinityState, AllocationBlock, BlockAffinity, IpamHandle};

/// Everything `check` looks at, read by the caller.
#[derive(Debug, Clone, Default)]
pub struct CheckInput {
    /// Every allocation block.
    pub blocks: Vec<AllocationBlock>,
    /// Every handle.
    pub handles: Vec<IpamHandle>,
    /// Every block affinity: node, block, record.
    pub affinities: Vec<(String, IpNet, BlockAffinity)>,
    /// Names of the Node resources that exist.
    pub nodes: BTreeSet<String>,
    /// Addresses in use → what uses them (e.g. `workloadendpoint ns/name`).
    pub in_use: BTreeMap<IpAddr, String>,
}

/// An allocated address nothing uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakedAddress {
    /// The address.
    pub ip: IpAddr,
    /// Its handle.
    pub handle: Option<String>,
    /// Its block.
    pub block: IpNet,
    /// The node the block is affine to.
    pub node: Option<String>,
    /// The allocation's secondary attributes.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
}

/// An address in use that IPAM has not allocated (or not to anyone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnallocatedInUse {
    /// The address.
    pub ip: IpAddr,
    /// What uses it.
    pub used_by: String,
}

/// A problem with a block's affinity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityProblem {
    /// The block.
    pub block: IpNet,
    /// The node(s) involved.
    pub nodes: Vec<String>,
}

/// A block affine to a node that no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedNodeBlock {
    /// The block.
    pub block: IpNet,
    /// The missing node.
    pub node: String,
    /// Addresses still allocated in it.
    pub in_use: usize,
}

/// A handle whose counts disagree with the blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleMismatch {
    /// The handle.
    pub handle: String,
    /// Addresses the handle record counts.
    pub recorded: u64,
    /// Addresses the blocks hold for it.
    pub actual: u64,
}

/// Totals of a check.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckSummary {
    /// Blocks examined.
    pub blocks: usize,
    /// Addresses allocated.
    pub allocated: usize,
    /// Allocated addresses that are in use.
    pub in_use: usize,
    /// Allocated addresses that are not (leaked).
    pub leaked: usize,
    /// Problems other than leaks.
    pub problems: usize,
}

/// The report `tortiectl ipam check -o report.json` writes and
/// `ipam release --from-report` reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckReport {
    /// Totals.
    pub summary: CheckSummary,
    /// Allocated, not in use.
    pub leaked: Vec<LeakedAddress>,
    /// In use, not allocated.
    pub in_use_not_allocated: Vec<UnallocatedInUse>,
    /// Blocks with affinity records of several nodes.
    pub duplicate_affinities: Vec<AffinityProblem>,
    /// Blocks affine to a node that has no (confirmed) affinity record.
    pub missing_affinities: Vec<AffinityProblem>,
    /// Affinity records without a matching block (e.g. left pending by a crash).
    pub orphan_affinities: Vec<AffinityProblem>,
    /// Blocks of nodes that no longer exist.
    pub deleted_node_blocks: Vec<DeletedNodeBlock>,
    /// Handles whose counts disagree with the blocks.
    pub handle_mismatches: Vec<HandleMismatch>,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.summary.leaked == 0 && self.summary.problems == 0
    }
}

/// Builds the report.
pub fn check(input: &CheckInput) -> CheckReport {
    let mut r = CheckReport::default();
    let mut allocated: BTreeSet<IpAddr> = BTreeSet::new();
    let mut per_handle: BTreeMap<String, u64> = BTreeMap::new();
    for b in &input.blocks {
        for o in 0..b.size() {
            let Some(attr) = b.allocations[o].and_then(|i| b.attributes.get(i)) else {
                continue;
            };
            let Some(ip) = b.ordinal_to_ip(o) else {
                continue;
            };
            allocated.insert(ip);
            if let Some(h) = &attr.handle_id {
                *per_handle.entry(h.clone()).or_default() += 1;
            }
            if !input.in_use.contains_key(&ip) {
                r.leaked.push(LeakedAddress {
                    ip,
                    handle: attr.handle_id.clone(),
                    block: b.cidr,
                    node: b.host().map(str::to_string),
                    attrs: attr.secondary.clone(),
                });
            }
        }
    }
    for (ip, used_by) in &input.in_use {
        if !allocated.contains(ip) {
            r.in_use_not_allocated.push(UnallocatedInUse {
                ip: *ip,
                used_by: used_by.clone(),
            });
        }
    }
    check_affinities(input, &mut r);
    check_handles(input, &per_handle, &mut r);
    r.summary = CheckSummary {
        blocks: input.blocks.len(),
        allocated: allocated.len(),
        in_use: allocated.len() - r.leaked.len(),
        leaked: r.leaked.len(),
        problems: r.in_use_not_allocated.len()
            + r.duplicate_affinities.len()
            + r.missing_affinities.len()
            + r.orphan_affinities.len()
            + r.deleted_node_blocks.len()
            + r.handle_mismatches.len(),
    };
    r
}

fn check_affinities(input: &CheckInput, r: &mut CheckReport) {
    let mut by_block: BTreeMap<IpNet, Vec<(&str, &BlockAffinity)>> = BTreeMap::new();
    for (node, cidr, a) in &input.affinities {
        by_block.entry(*cidr).or_default().push((node, a));
    }
    let blocks: BTreeMap<IpNet, &AllocationBlock> =
        input.blocks.iter().map(|b| (b.cidr, b)).collect();
    for (cidr, affs) in &by_block {
        if affs.len() > 1 {
            r.duplicate_affinities.push(AffinityProblem {
                block: *cidr,
                nodes: affs.iter().map(|(n, _)| n.to_string()).collect(),
            });
        }
        for (node, _) in affs {
            let owner = blocks.get(cidr).and_then(|b| b.host());
            if owner != Some(*node) {
                r.orphan_affinities.push(AffinityProblem {
                    block: *cidr,
                    nodes: vec![node.to_string()],
                });
            }
        }
    }
    for b in &input.blocks {
        let Some(host) = b.host() else { continue };
        let confirmed = by_block.get(&b.cidr).is_some_and(|affs| {
            affs.iter()
                .any(|(n, a)| *n == host && a.state == AffinityState::Confirmed)
        });
        if !confirmed {
            r.missing_affinities.push(AffinityProblem {
                block: b.cidr,
                nodes: vec![host.to_string()],
            });
        }
        if !input.nodes.contains(host) {
            r.deleted_node_blocks.push(DeletedNodeBlock {
                block: b.cidr,
                node: host.to_string(),
                in_use: b.in_use(),
            });
        }
    }
}

fn check_handles(input: &CheckInput, actual: &BTreeMap<String, u64>, r: &mut CheckReport) {
    let mut recorded: BTreeMap<&str, u64> = BTreeMap::new();
    for h in &input.handles {
        recorded.insert(&h.handle_id, h.total());
    }
    let names: BTreeSet<&str> = recorded
        .keys()
        .copied()
        .chain(actual.keys().map(String::as_str))
        .collect();
    for h in names {
        let rec = recorded.get(h).copied().unwrap_or(0);
        let act = actual.get(h).copied().unwrap_or(0);
        if rec != act {
            r.handle_mismatches.push(HandleMismatch {
                handle: h.to_string(),
                recorded: rec,
                actual: act,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_ops::{assign, Owner};

    fn owner(h: &str) -> Owner {
        Owner {
            handle_id: h.into(),
            attrs: BTreeMap::new(),
        }
    }

    fn confirmed() -> BlockAffinity {
        BlockAffinity {
            state: AffinityState::Confirmed,
            deleted: false,
        }
    }

    fn handle(id: &str, cidr: &str, n: u64) -> IpamHandle {
        IpamHandle {
            handle_id: id.into(),
            block: [(cidr.to_string(), n)].into(),
            deleted: false,
        }
    }

    #[test]
    fn an_allocation_without_a_workload_is_leaked_and_a_workload_without_one_is_reported() {
        let cidr: IpNet = "10.0.0.0/30".parse().unwrap();
        let mut b = AllocationBlock::new(cidr, Some("host:n1".into()), false);
        let used = assign(&mut b, 1, &owner("a"))[0];
        let leaked = assign(&mut b, 1, &owner("b"))[0];
        let input = CheckInput {
            blocks: vec![b],
            handles: vec![handle("a", "10.0.0.0/30", 1), handle("b", "10.0.0.0/30", 1)],
            affinities: vec![("n1".into(), cidr, confirmed())],
            nodes: ["n1".to_string()].into(),
            in_use: [
                (used, "workloadendpoint ns/a".to_string()),
                (
                    "10.0.0.9".parse().unwrap(),
                    "workloadendpoint ns/c".to_string(),
                ),
            ]
            .into(),
        };
        let r = check(&input);
        assert_eq!(r.leaked.len(), 1);
        assert_eq!(r.leaked[0].ip, leaked);
        assert_eq!(r.leaked[0].handle.as_deref(), Some("b"));
        assert_eq!(r.in_use_not_allocated.len(), 1);
        assert_eq!(r.summary.problems, 1);
        assert!(!r.is_clean());
    }

    #[test]
    fn affinity_problems_and_blocks_of_deleted_nodes_are_reported() {
        let c1: IpNet = "10.0.0.0/30".parse().unwrap();
        let c2: IpNet = "10.0.0.4/30".parse().unwrap();
        let c3: IpNet = "10.0.0.8/30".parse().unwrap();
        let input = CheckInput {
            blocks: vec![
                AllocationBlock::new(c1, Some("host:n1".into()), false),
                AllocationBlock::new(c2, Some("host:gone".into()), false),
            ],
            affinities: vec![
                ("n1".into(), c1, confirmed()),
                ("n2".into(), c1, confirmed()),
                ("n3".into(), c3, BlockAffinity::default()),
            ],
            nodes: ["n1".to_string(), "n2".to_string()].into(),
            ..CheckInput::default()
        };
        let r = check(&input);
        assert_eq!(r.duplicate_affinities.len(), 1);
        assert_eq!(r.duplicate_affinities[0].nodes, vec!["n1", "n2"]);
        assert_eq!(r.orphan_affinities.len(), 2, "{:?}", r.orphan_affinities);
        assert_eq!(r.missing_affinities.len(), 1);
        assert_eq!(r.missing_affinities[0].block, c2);
        assert_eq!(r.deleted_node_blocks.len(), 1);
        assert_eq!(r.deleted_node_blocks[0].node, "gone");
    }

    #[test]
    fn handle_counts_that_disagree_with_blocks_are_reported() {
        let cidr: IpNet = "10.0.0.0/30".parse().unwrap();
        let mut b = AllocationBlock::new(cidr, Some("host:n1".into()), false);
        let ip = assign(&mut b, 2, &owner("a"));
        let input = CheckInput {
            blocks: vec![b],
            handles: vec![handle("a", "10.0.0.0/30", 3)],
            affinities: vec![("n1".into(), cidr, confirmed())],
            nodes: ["n1".to_string()].into(),
            in_use: ip.iter().map(|i| (*i, "x".to_string())).collect(),
        };
        let r = check(&input);
        assert_eq!(
            r.handle_mismatches,
            vec![HandleMismatch {
                handle: "a".into(),
                recorded: 3,
                actual: 2
            }]
        );
        let json = serde_json::to_string(&r).unwrap();
        let back: CheckReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
