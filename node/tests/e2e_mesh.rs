//! End to end, node-to-node mesh in `bgp` mode: a 4-node lab (`tortiectl
//! lab up`, two nodes per subnet, the router namespace running tortie-node
//! too) where every pod pings every pod and every node has every other
//! node's block in its Loc-RIB and, when the owner is on a connected subnet,
//! in its kernel FIB through the owner. Then what deletions do:
//!
//! - deleting a pod (CNI DEL, `lab pod delete`) removes its /32 on its node;
//!   its block stays routed everywhere while it holds other pods, and also
//!   once it is empty — the IPAM keeps an empty block affine to its node,
//!   as Calico's `releaseIPsFromBlock` does, so the node keeps originating it;
//! - a killed agent's blocks stay routed (its peers keep them as stale for
//!   graceful restart); deleting its node (`tortiectl delete node`) then
//!   removes them from every other node's Loc-RIB and FIB and its sessions
//!   from their peer lists; its empty block is released, a block still
//!   holding pods stays allocated (docs/ipam.md).
//!
//! Needs root and tortiectl, tortie and tortie-ipam next to tortie-node.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use common::{
    block_of, blocks_by_node, check_blocks, ipam_blocks, kernel_route, ping, settled, wait_for,
    Expect, Lab,
};

const SETTLE: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(20);

fn four_node_lab(tag: &str) -> Lab {
    let lab = Lab::new(tag);
    lab.up(&["--nodes", "4", "--pods-per-node", "2", "--mode", "bgp"]);
    lab.wait_all_settled(SETTLE);
    lab
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn every_pod_reaches_every_pod_and_a_deleted_pods_empty_block_stays_routed_as_in_calico() {
    let lab = four_node_lab("msh");
    lab.assert_full_ping_matrix(8);
    let nodes = lab.nodes();
    let pods = lab.pods();
    let blocks = blocks_by_node(&pods);
    assert_eq!(blocks.len(), 4, "one block per node: {blocks:?}");
    wait_for("every block routed on every other node", CONVERGE, || {
        check_blocks(&lab, &nodes, &nodes, &blocks, Expect::Routed)
    });
    let node1 = lab.node("node1");
    let b1 = *blocks["node1"].iter().next().unwrap();
    assert_eq!(
        kernel_route(&node1.netns, &b1.to_string()).map(|r| r.kind),
        Some("blackhole".to_string()),
        "node1 blackholes its own block"
    );

    // One pod of two goes: its /32 leaves node1, the block stays routed.
    let gone = pods
        .iter()
        .find(|p| p.name == "node1-pod1")
        .unwrap()
        .clone();
    let probe = pods
        .iter()
        .find(|p| p.name == "node3-pod1")
        .unwrap()
        .clone();
    assert!(kernel_route(&node1.netns, &gone.ip.to_string()).is_some());
    lab.ctl_ok(&["lab", "pod", "delete", "node1-pod1"]);
    wait_for(
        "node1's /32 of the deleted pod removed",
        CONVERGE,
        || match kernel_route(&node1.netns, &gone.ip.to_string()) {
            None => Ok(()),
            Some(r) => Err(r),
        },
    );
    assert!(
        !ping(&probe.netns, gone.ip),
        "{} still answers after its pod was deleted",
        gone.ip
    );
    assert_eq!(ipam_blocks(&lab)[&b1].in_use, 1);
    lab.assert_full_ping_matrix(7);

    // The last pod goes: the empty block stays affine to node1 (Calico
    // keeps empty affine blocks), so node1 still originates it and every
    // node still routes it to node1.
    lab.ctl_ok(&["lab", "pod", "delete", "node1-pod2"]);
    wait_for("node1's block empty in IPAM", CONVERGE, || {
        let b = ipam_blocks(&lab)[&b1].clone();
        if b.in_use == 0 {
            Ok(())
        } else {
            Err(b)
        }
    });
    let ipam = ipam_blocks(&lab);
    assert_eq!(
        ipam[&b1].affinity.as_deref(),
        Some("host:node1"),
        "{ipam:?}"
    );
    common::holds_for(
        "node1's empty block routed everywhere",
        Duration::from_secs(3),
        || check_blocks(&lab, &nodes, &nodes, &blocks, Expect::Routed),
    );
    lab.assert_full_ping_matrix(6);
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn deleting_nodes_removes_their_routes_everywhere_and_releases_their_empty_blocks() {
    let lab = four_node_lab("mshd");
    let nodes = lab.nodes();
    let pods = lab.pods();
    let blocks = blocks_by_node(&pods);
    wait_for("every block routed on every other node", CONVERGE, || {
        check_blocks(&lab, &nodes, &nodes, &blocks, Expect::Routed)
    });
    let b1 = *blocks["node1"].iter().next().unwrap();
    let b2 = *blocks["node2"].iter().next().unwrap();

    // node1 loses its pods first (its block empties), node2 keeps its pods;
    // then both agents die. Their peers keep their routes as stale (graceful
    // restart, RFC 4724: restart time 120 s) until both Nodes are deleted.
    lab.ctl_ok(&["lab", "pod", "delete", "node1-pod1"]);
    lab.ctl_ok(&["lab", "pod", "delete", "node1-pod2"]);
    for n in ["node1", "node2"] {
        lab.ctl_ok(&["lab", "node", "stop", n, "--signal", "kill"]);
    }
    let others: Vec<_> = nodes
        .iter()
        .filter(|n| n.name != "node1" && n.name != "node2")
        .cloned()
        .collect();
    common::holds_for(
        "the killed nodes' blocks kept (graceful restart)",
        Duration::from_secs(2),
        || check_blocks(&lab, &others, &nodes, &blocks, Expect::Routed),
    );
    for n in ["node1", "node2"] {
        lab.tortiectl(&["delete", "node", n], "");
    }

    let gone: BTreeMap<_, _> = blocks
        .iter()
        .filter(|(n, _)| *n == "node1" || *n == "node2")
        .map(|(n, b)| (n.clone(), b.clone()))
        .collect();
    let kept: BTreeMap<_, _> = blocks
        .iter()
        .filter(|(n, _)| *n == "node3" || *n == "node4")
        .map(|(n, b)| (n.clone(), b.clone()))
        .collect();
    let left = others;
    let dead_ips = [lab.node("node1").ip, lab.node("node2").ip];
    wait_for(
        "the deleted nodes' blocks gone everywhere",
        CONVERGE,
        || check_blocks(&lab, &left, &nodes, &gone, Expect::Gone),
    );
    wait_for(
        "the other nodes settled without the deleted ones",
        CONVERGE,
        || {
            let now: Vec<_> = lab
                .nodes()
                .into_iter()
                .filter(|n| left.iter().any(|l| l.name == n.name))
                .collect();
            for n in &now {
                let s = n.status.as_ref().ok_or(format!("{} down", n.name))?;
                let dead = |a: &IpAddr| dead_ips.iter().any(|d| *a == IpAddr::V4(*d));
                if let Some(p) = s.peers.iter().find(|p| dead(&p.address)) {
                    return Err(format!("{} still peers with {}", n.name, p.address));
                }
                if !settled(s) {
                    return Err(format!("{} not settled: {s:?}", n.name));
                }
            }
            Ok(())
        },
    );
    check_blocks(&lab, &left, &nodes, &kept, Expect::Routed).unwrap();

    // IPAM: the empty block is released, the one with pods stays (affine
    // to the deleted node until its addresses are released).
    let ipam = ipam_blocks(&lab);
    assert!(!ipam.contains_key(&b1), "{b1} not released: {ipam:?}");
    assert_eq!(ipam[&b2].in_use, 2, "{ipam:?}");
    assert_eq!(
        ipam[&b2].affinity.as_deref(),
        Some("host:node2"),
        "{ipam:?}"
    );

    // Pods of the remaining nodes still reach each other; node2's do not.
    let pods = lab.pods();
    let live: Vec<_> = pods
        .iter()
        .filter(|p| p.node == "node3" || p.node == "node4")
        .collect();
    for a in &live {
        for b in live.iter().filter(|b| b.name != a.name) {
            assert!(ping(&a.netns, b.ip), "{} -> {}", a.name, b.name);
        }
    }
    let orphan = pods.iter().find(|p| p.node == "node2").unwrap();
    assert_eq!(block_of(orphan.ip), b2);
    assert!(
        !ping(&live[0].netns, orphan.ip),
        "{} reaches {} of a deleted node",
        live[0].name,
        orphan.name
    );
}
