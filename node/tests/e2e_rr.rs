//! End to end, route reflectors instead of the mesh: a 6-node lab in `bgp`
//! mode with two dedicated tortie route reflectors (`lab up
//! --route-reflectors 2`: namespaces rr1, rr2 running tortie-node
//! `--dataplane none`, one cluster id, the mesh off). Every node and the
//! router peer with both reflectors only, learn every other node's block
//! from both (next hop unchanged, RFC 4456), and every pod pings every pod.
//! Then rr1's agent is killed: the clients' sessions to it go down, every
//! block is still learned through rr2, the FIBs stay in sync and every pod
//! still pings every pod.
//!
//! Needs root and tortiectl, tortie and tortie-ipam next to tortie-node.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{blocks_by_node, check_blocks, rib, wait_for, Expect, Lab, LabNode};

const SETTLE: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(20);

/// Every block of another node is in `client`'s Loc-RIB with a path from
/// each of `reflectors`.
fn learned_from_each(
    lab: &Lab,
    client: &LabNode,
    blocks: &[(String, String)],
    reflectors: &[IpAddr],
) -> Result<(), String> {
    let rib = rib(lab, client)?;
    for (owner, block) in blocks.iter().filter(|(o, _)| *o != client.name) {
        let e = rib
            .get(block)
            .ok_or_else(|| format!("{}: no {block} of {owner}", client.name))?;
        for rr in reflectors {
            if !e.paths.iter().any(|p| p.peer == Some(*rr)) {
                return Err(format!(
                    "{}: {block} of {owner} not from {rr}: {e:?}",
                    client.name
                ));
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "root: network namespaces, tortie-node and the CNI plugin in a lab"]
fn six_nodes_with_two_route_reflectors_keep_routing_when_one_reflector_dies() {
    let lab = Lab::new("rr");
    lab.up(&[
        "--nodes",
        "6",
        "--pods-per-node",
        "1",
        "--mode",
        "bgp",
        "--route-reflectors",
        "2",
    ]);
    lab.wait_all_settled(SETTLE);
    let nodes = lab.nodes();
    let (rr1, rr2) = (lab.node("rr1"), lab.node("rr2"));
    let rr_ips = [IpAddr::V4(rr1.ip), IpAddr::V4(rr2.ip)];
    let clients: Vec<LabNode> = nodes
        .iter()
        .filter(|n| !n.name.starts_with("rr"))
        .cloned()
        .collect();
    assert_eq!(clients.len(), 7, "6 nodes and the router: {nodes:#?}");

    // Clients peer with the two reflectors and nothing else (no mesh);
    // each reflector has every client.
    for c in &clients {
        let s = c.status.as_ref().unwrap();
        let mut peers: Vec<IpAddr> = s.peers.iter().map(|p| p.address).collect();
        peers.sort();
        assert_eq!(peers, rr_ips, "{}: {s:?}", c.name);
    }
    for rr in [&rr1, &rr2] {
        let s = rr.status.as_ref().unwrap();
        for c in &clients {
            assert!(
                s.peers.iter().any(|p| p.address == IpAddr::V4(c.ip)),
                "{} does not peer with {}: {s:?}",
                rr.name,
                c.name
            );
        }
    }

    let pods = lab.pods();
    let blocks = blocks_by_node(&pods);
    let flat: Vec<(String, String)> = blocks
        .iter()
        .flat_map(|(n, bs)| bs.iter().map(move |b| (n.clone(), b.to_string())))
        .collect();
    assert_eq!(flat.len(), 6, "one block per node: {blocks:?}");
    wait_for("every block learned from both reflectors", CONVERGE, || {
        clients
            .iter()
            .try_for_each(|c| learned_from_each(&lab, c, &flat, &rr_ips))
    });
    wait_for("every block routed on every client", CONVERGE, || {
        check_blocks(&lab, &clients, &nodes, &blocks, Expect::Routed)
    });
    lab.assert_full_ping_matrix(6);

    // rr1 dies.
    lab.ctl_ok(&["lab", "node", "stop", "rr1", "--signal", "kill"]);
    wait_for("every client sees rr1 down", CONVERGE, || {
        for c in lab.nodes().iter().filter(|n| !n.name.starts_with("rr")) {
            let s = c.status.as_ref().ok_or(format!("{} down", c.name))?;
            let p = s.peers.iter().find(|p| p.address == rr_ips[0]);
            if p.is_some_and(|p| p.state == "Established") {
                return Err(format!("{}: rr1 still Established", c.name));
            }
        }
        Ok(())
    });
    wait_for(
        "every block still learned from rr2, FIBs in sync",
        CONVERGE,
        || {
            for c in lab.nodes().iter().filter(|n| !n.name.starts_with("rr")) {
                let s = c.status.as_ref().ok_or(format!("{} down", c.name))?;
                if !s.fib.in_sync {
                    return Err(format!("{}: FIB not in sync", c.name));
                }
                learned_from_each(&lab, c, &flat, &rr_ips[1..])?;
            }
            check_blocks(&lab, &clients, &nodes, &blocks, Expect::Routed)
        },
    );
    lab.assert_full_ping_matrix(6);
}
