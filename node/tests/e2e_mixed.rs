//! End to end with BIRD 2 next to tortie: a 4-node lab in `bgp` mode
//! (two nodes per subnet, the router namespace running tortie-node) and a
//! BIRD namespace `<lab>-bird` (10.0.1.250) plugged into the router's
//! subnet-1 bridge.
//!
//! - BIRD as the route reflector: the mesh is turned off and one global
//!   BGPPeer points every node (and the router) at BIRD, which has each of
//!   them as `rr client`; every node learns every other block from BIRD
//!   with the owner as next hop, and every pod pings every pod.
//! - BIRD as an eBGP top-of-rack peer (AS 65000, a global BGPPeer with
//!   peerIP and asNumber, mesh on): BIRD learns every node's block from
//!   that node with the node as next hop and AS path 64512, and nothing
//!   but the pool's blocks (each node also passes on the blocks it learned
//!   over the mesh, next hop self, as BGP does towards an external peer).
//!
//! Needs root, BIRD 2 (`bird`, `birdc`) and tortiectl, tortie and
//! tortie-ipam next to tortie-node.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{blocks_by_node, check_blocks, rib, settled, wait_for, Expect, Lab, LabNode, POOL};
use ipnet::Ipv4Net;
use tortie_testkit::daemons::{BirdExport, BirdPeer, BirdRouter, BirdRouterSpec};
use tortie_testkit::Netns;

const SETTLE: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(30);
const BIRD_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 250);
const LAB_AS: u32 = 64512;
const TOR_AS: u32 = 65000;

/// A lab of 4 nodes with one pod each, settled.
fn lab(tag: &str) -> Lab {
    let lab = Lab::new(tag);
    lab.up(&["--nodes", "4", "--pods-per-node", "1", "--mode", "bgp"]);
    lab.wait_all_settled(SETTLE);
    lab
}

/// The namespace `<lab>-bird` on subnet 1 (10.0.1.250, default route via
/// the lab's router).
fn bird_netns(lab: &Lab) -> Netns {
    let ns = Netns::create(&format!("{}-bird", lab.name)).unwrap();
    let router = format!("{}-router", lab.name);
    ns.plug_into_bridge("eth0", &format!("{BIRD_IP}/24"), &router, "br1", "r-bird")
        .unwrap();
    ns.ip(&["route", "add", "default", "via", "10.0.1.1"])
        .unwrap();
    ns
}

/// BIRD's protocol name for a node (`router` is a BIRD keyword).
fn protocol(n: &LabNode) -> String {
    format!("peer_{}", n.name)
}

/// BIRD peering with every node of the lab (the router included).
fn start_bird(ns: &Netns, nodes: &[LabNode], local_as: u32, export: BirdExport) -> BirdRouter {
    let spec = BirdRouterSpec {
        router_id: BIRD_IP,
        local_as,
        local_addr: BIRD_IP,
        peers: nodes
            .iter()
            .map(|n| BirdPeer {
                name: protocol(n),
                addr: n.ip,
                asn: LAB_AS,
            })
            .collect(),
        static_routes: vec![("10.0.2.0/24".into(), Ipv4Addr::new(10, 0, 1, 1))],
        export,
        hold_time: 9,
    };
    BirdRouter::start(ns, spec).unwrap()
}

fn wait_bird_established(bird: &BirdRouter) {
    wait_for("every BIRD session Established", CONVERGE, || {
        let down = bird.down_peers();
        if down.is_empty() {
            Ok(())
        } else {
            Err((down, bird.log()))
        }
    });
}

/// Every node (router included) answers with `peer` among its peers and is settled.
fn wait_nodes_settled_with(lab: &Lab, peer: Ipv4Addr, only_peer: bool) {
    wait_for("every node settled with its BIRD session", CONVERGE, || {
        for n in lab.nodes() {
            let s = n.status.ok_or(format!("{} down", n.name))?;
            let has = s.peers.iter().any(|p| p.address == IpAddr::V4(peer));
            if !has || (only_peer && s.peers.len() != 1) || !settled(&s) {
                return Err(format!("{}: {s:?}", n.name));
            }
        }
        Ok(())
    });
}

#[test]
#[ignore = "root: network namespaces, BIRD 2, tortie-node and the CNI plugin in a lab"]
fn bird_as_route_reflector_for_tortie_nodes_carries_every_block() {
    let lab = lab("mxr");
    let nodes = lab.nodes();
    let ns = bird_netns(&lab);
    let bird = start_bird(&ns, &nodes, LAB_AS, BirdExport::LearnedRoutes);
    lab.apply(&format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: {LAB_AS}\n  nodeToNodeMeshEnabled: false\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: bird-rr\nspec:\n  peerIP: {BIRD_IP}\n  asNumber: {LAB_AS}\n"
    ));
    wait_bird_established(&bird);
    wait_nodes_settled_with(&lab, BIRD_IP, true);

    let blocks = blocks_by_node(&lab.pods());
    assert_eq!(blocks.len(), 4, "{blocks:?}");
    wait_for(
        "every block reflected by BIRD to every node",
        CONVERGE,
        || {
            for n in &nodes {
                let rib = rib(&lab, n)?;
                for (owner, bs) in blocks.iter().filter(|(o, _)| **o != n.name) {
                    for b in bs {
                        let e = rib
                            .get(&b.to_string())
                            .ok_or(format!("{}: no {b} of {owner}", n.name))?;
                        if !e.paths.iter().all(|p| p.peer == Some(IpAddr::V4(BIRD_IP))) {
                            return Err(format!("{}: {b} not only from BIRD: {e:?}", n.name));
                        }
                    }
                }
            }
            check_blocks(&lab, &nodes, &nodes, &blocks, Expect::Routed)
        },
    );
    lab.assert_full_ping_matrix(4);
}

#[test]
#[ignore = "root: network namespaces, BIRD 2, tortie-node and the CNI plugin in a lab"]
fn bird_as_ebgp_top_of_rack_learns_the_pod_blocks_and_nothing_else() {
    let lab = lab("mxt");
    let nodes = lab.nodes();
    let ns = bird_netns(&lab);
    let bird = start_bird(&ns, &nodes, TOR_AS, BirdExport::Nothing);
    lab.apply(&format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: {BIRD_IP}\n  asNumber: {TOR_AS}\n"
    ));
    wait_bird_established(&bird);
    wait_nodes_settled_with(&lab, BIRD_IP, false);

    let blocks = blocks_by_node(&lab.pods());
    let all: BTreeSet<Ipv4Net> = blocks.values().flatten().copied().collect();
    assert_eq!(all.len(), 4, "{blocks:?}");
    // Each node's own blocks, from that node, next hop the node, AS path 64512.
    wait_for("BIRD has every block from its node", CONVERGE, || {
        let routes = bird.routes().map_err(|e| e.to_string())?;
        for (owner, bs) in &blocks {
            let o = nodes.iter().find(|n| &n.name == owner).unwrap();
            for b in bs {
                let r = routes
                    .iter()
                    .find(|r| r.prefix == b.to_string() && r.protocol == protocol(o))
                    .ok_or(format!("no {b} from {owner}: {routes:#?}"))?;
                if r.next_hop != Some(o.ip) || r.as_path != [LAB_AS] {
                    return Err(format!("{b} from {owner}: {r:?}"));
                }
            }
        }
        Ok(())
    });
    // Nothing but the pool's blocks, from any peer. With the mesh on, every
    // node also passes on the blocks it learned from the others, as BGP
    // does towards an external peer: next hop self, AS path 64512.
    let pool: Ipv4Net = POOL.parse().unwrap();
    let routes = bird.routes().unwrap();
    let bgp: Vec<_> = routes.iter().filter(|r| r.next_hop.is_some()).collect();
    let prefixes: BTreeSet<Ipv4Net> = bgp.iter().map(|r| r.prefix.parse().unwrap()).collect();
    assert_eq!(
        prefixes, all,
        "BIRD learned more than the blocks: {routes:#?}"
    );
    assert!(prefixes.iter().all(|p| pool.contains(p)));
    for r in &bgp {
        let sender = nodes.iter().find(|n| protocol(n) == r.protocol).unwrap();
        assert_eq!(r.next_hop, Some(sender.ip), "{r:?}");
        assert_eq!(r.as_path, [LAB_AS], "{r:?}");
    }
    lab.assert_full_ping_matrix(4);
}
