//! Calico's import/export policy end to end. Four namespaces on one
//! bridge, one SQLite datastore:
//!
//! - `na` (tortie-node, Linux dataplane) and `nb` (tortie-node, BGP only)
//!   form the node-to-node mesh;
//! - `evil` is a GoBGP registered as a Node (so `na` peers with it as a
//!   mesh peer) that announces 8.8.8.0/24 (outside every pool), a /28
//!   inside `na`'s own block (a hijack of its pods), a /32 inside that
//!   block that IPAM did not give it (a hijack too) and, as the control
//!   that the session works, a /26 inside the pool; it also announces a
//!   /32 of `na`'s block that IPAM allocated to it (Calico's borrowing),
//!   which `na` must install and not pass on;
//! - `tor` is a BIRD 2 that `na` peers with through a node-specific
//!   BGPPeer (an external eBGP peer).
//!
//! `na` must install `nb`'s block, the control prefix and the borrowed /32
//! but no hijack (in its Loc-RIB and in the kernel); BIRD must get the
//! blocks of the exported pool and not those of the `disableBGPExport`
//! pool nor the borrowed /32 (Calico's `calico_aggr`); turning that
//! flag off and adding a pool at run time take effect without resetting
//! any session. Last, a BGPPeer toward `evil` makes that session `node
//! specific` (Calico's type for display) and it must stay under the
//! cluster import rules.

use std::path::Path;
use std::time::Duration;

use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_ipam_core::{AssignRequest, DatastoreIpamStore, Ipam, Owner};
use tortie_node::api::{query, NodeStatus, Request, Response};
use tortie_testkit::daemons::{BgpDaemon, BgpDaemonSpec, Bird, Gobgp};
use tortie_testkit::{unique_prefix, wait_until, ChildGuard, Netns};

const PORT: u16 = 17979;

fn start_node(ns: &Netns, name: &str, db: &str, dir: &Path, linux: bool) -> ChildGuard {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_tortie-node"));
    cmd.args(["--datastore", db, "--node-name", name])
        .args(["--dataplane", if linux { "linux" } else { "none" }])
        .args(["--ip-autodetect", "interface=eth0"])
        .args(["--bgp-port", &PORT.to_string()])
        .arg("--control-socket")
        .arg(dir.join(format!("{name}.sock")))
        .arg("--mtu-file")
        .arg(dir.join(format!("{name}.mtu")))
        .env_remove("TORTIE_NODE_IP");
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

/// A namespace on the bridge of `sw` with `cidr` on its `eth0`.
fn member(sw: &Netns, prefix: &str, tag: &str, cidr: &str) -> Netns {
    let ns = Netns::create(&format!("{prefix}{tag}")).unwrap();
    let port = format!("p{tag}");
    ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        &port,
        "netns",
        sw.name(),
    ])
    .unwrap();
    ns.ip(&["addr", "add", cidr, "dev", "eth0"]).unwrap();
    ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    sw.ip(&["link", "set", &port, "master", "br0"]).unwrap();
    sw.ip(&["link", "set", &port, "up"]).unwrap();
    ns
}

fn status(sock: &Path) -> Option<NodeStatus> {
    match query(sock, &Request::Status).ok()? {
        Response::Status(s) => Some(s),
        _ => None,
    }
}

/// Prefixes of the Loc-RIB (`tortiectl bgp rib`) with their next hops.
fn rib(sock: &Path) -> Vec<(String, Vec<String>)> {
    match query(sock, &Request::Rib { afi: None }) {
        Ok(Response::Rib(r)) => r
            .into_iter()
            .map(|e| {
                let hops = e.paths.iter().filter_map(|p| p.next_hop);
                (e.prefix.to_string(), hops.map(|h| h.to_string()).collect())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// BGP routes felix installed (protocol 84) in the namespace.
fn kernel_bgp_routes(ns: &Netns) -> String {
    ns.ip_out(&["route", "show", "proto", "84"])
        .unwrap_or_default()
}

fn apply(store: &BlockingStore, yaml: &str) {
    let r = tortie_model::parse_manifest(yaml).unwrap();
    store
        .block_on(typed::apply(store.store().as_ref(), r))
        .unwrap();
}

fn pool(name: &str, cidr: &str, disable_export: bool) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n  disableBGPExport: {disable_export}\n"
    )
}

/// A block for `node` from `pool_cidr`, through IPAM as the CNI plugin does.
fn block_for(ipam: &Ipam<DatastoreIpamStore>, node: &str, pool_cidr: &str) -> ipnet::IpNet {
    let pools = ipam.store().pool_views(node).unwrap();
    let mut req = AssignRequest::v4(&format!("h-{node}-{pool_cidr}"), node, 1);
    req.v4_pools = vec![pool_cidr.parse().unwrap()];
    let ip = ipam.auto_assign(&req, &pools).unwrap().v4[0];
    let net = ipnet::IpNet::new(ip, 26).unwrap().trunc();
    assert!(net.contains(&ip));
    net
}

/// The address at `ordinal` of the IPv4 `block`.
fn host(block: ipnet::IpNet, ordinal: u32) -> String {
    let std::net::IpAddr::V4(base) = block.network() else {
        panic!("{block}: not IPv4")
    };
    let ip = std::net::Ipv4Addr::from(u32::from(base) + ordinal);
    assert!(block.contains(&std::net::IpAddr::V4(ip)));
    ip.to_string()
}

/// Allocates `ip` in IPAM to `node` (its `node` attribute), as a node
/// borrowing from another node's block holds it.
fn lend(ipam: &Ipam<DatastoreIpamStore>, ip: &str, node: &str) {
    let owner = Owner {
        handle_id: format!("h-{node}-borrowed"),
        attrs: [("node".to_string(), node.to_string())].into(),
    };
    let pools = ipam.store().pool_views(node).unwrap();
    ipam.assign_ip(ip.parse().unwrap(), &owner, node, &pools)
        .unwrap();
}

/// True when the kernel routes `routes` have one for host `ip`.
fn has_host_route(routes: &str, ip: &str) -> bool {
    routes.lines().any(|l| l.starts_with(&format!("{ip} ")))
}

fn spec(me: u8, asn: u32, port: u16, peer_port: u16, originate: &[&str]) -> BgpDaemonSpec {
    let addr = std::net::Ipv4Addr::new(10, 78, 0, me);
    BgpDaemonSpec {
        router_id: addr,
        local_as: asn,
        local_addr: addr.into(),
        local_v4: addr,
        local_v6: None,
        listen_port: port,
        peer_addr: "10.78.0.1".parse().unwrap(),
        peer_port,
        peer_as: 64512,
        password: None,
        hold_time: 9,
        ttl_security: false,
        originate: originate.iter().map(|s| s.to_string()).collect(),
    }
}

/// `since` of every peer of a node, to prove that no session was reset.
fn sinces(sock: &Path) -> Vec<(String, String)> {
    status(sock)
        .map(|s| {
            s.peers
                .into_iter()
                .filter(|p| p.state == "Established")
                .map(|p| (p.address.to_string(), p.since))
                .collect()
        })
        .unwrap_or_default()
}

/// `tortie_bgp_peer_flaps_total` per peer (times a session left
/// Established) from the node's `/metrics` in its namespace.
fn flaps(ns: &Netns) -> Vec<(String, u64)> {
    let out = ns
        .exec(&["curl", "-s", "127.0.0.1:9099/metrics"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.strip_prefix("tortie_bgp_peer_flaps_total{peer=\""))
        .filter_map(|l| {
            let (peer, n) = l.split_once("\"} ")?;
            Some((peer.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

#[test]
#[ignore = "root: network namespaces, tortie-node, GoBGP and BIRD processes"]
fn nodes_refuse_hijacks_and_external_peers_get_only_exported_pools() {
    let p = unique_prefix("pol");
    let sw = Netns::create(&format!("{p}sw")).unwrap();
    sw.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    sw.ip(&["link", "set", "br0", "up"]).unwrap();
    let a = member(&sw, &p, "a", "10.78.0.1/24");
    let b = member(&sw, &p, "b", "10.78.0.2/24");
    let e = member(&sw, &p, "e", "10.78.0.3/24");
    let t = member(&sw, &p, "t", "10.78.0.4/24");

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = BlockingStore::open(&db, &OpenOptions::default()).unwrap();
    apply(&store, &pool("main", "10.240.0.0/16", false));
    apply(&store, &pool("quiet", "10.241.0.0/16", true));
    // The hijacker is a registered node: `na` holds a mesh session with it.
    apply(
        &store,
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: evil\nspec:\n  bgp:\n    ipv4Address: 10.78.0.3/24\n",
    );
    // BIRD is an external peer of `na` only.
    apply(
        &store,
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  node: na\n  peerIP: 10.78.0.4:17980\n  asNumber: 65100\n",
    );
    let (sa, sb) = (dir.path().join("na.sock"), dir.path().join("nb.sock"));
    let _na = start_node(&a, "na", &db, dir.path(), true);
    let _nb = start_node(&b, "nb", &db, dir.path(), false);
    wait_until(
        "both nodes registered",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || status(&sa).is_some() && status(&sb).is_some(),
    )
    .unwrap();

    let ipam = Ipam::new(DatastoreIpamStore::new(
        BlockingStore::open(&db, &OpenOptions::default()).unwrap(),
    ));
    let a_block = block_for(&ipam, "na", "10.240.0.0/16");
    // Before evil starts, so that na's import rules already know of it;
    // the next address of the block stays free.
    let (lent_ip, stray_ip) = (host(a_block, 40), host(a_block, 41));
    lend(&ipam, &lent_ip, "evil");
    let (lent, stray) = (format!("{lent_ip}/32"), format!("{stray_ip}/32"));
    let b_block = block_for(&ipam, "nb", "10.240.0.0/16");
    let a_quiet = block_for(&ipam, "na", "10.241.0.0/16");
    let hijack_inner = format!("{}/28", a_block.network());
    let control = "10.240.250.0/26";

    let evil = Gobgp::start(
        &e,
        spec(
            3,
            64512,
            PORT,
            PORT,
            &["8.8.8.0/24", &hijack_inner, control, &lent, &stray],
        ),
    )
    .unwrap();
    let tor = Bird::start(&t, spec(4, 65100, 17980, PORT, &[])).unwrap();

    let has = |rows: &[(String, Vec<String>)], prefix: &str, hop: &str| {
        rows.iter()
            .any(|(p, hops)| p == prefix && hops.iter().any(|h| h == hop))
    };
    let routes = || kernel_bgp_routes(&a);
    let r = wait_until(
        "na installs nb's block, the control prefix and the borrowed /32",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let rows = rib(&sa);
            let k = routes();
            has(&rows, &b_block.to_string(), "10.78.0.2")
                && has(&rows, control, "10.78.0.3")
                && has(&rows, &lent, "10.78.0.3")
                && k.contains(&b_block.to_string())
                && k.contains(control)
                && has_host_route(&k, &lent_ip)
        },
    );
    assert!(
        r.is_ok(),
        "{r:?}: rib {:?}, kernel {:?}, evil {:?}",
        rib(&sa),
        routes(),
        evil.log()
    );
    // The control prefix came in the same session as the hijacks, and evil
    // sent all five: they were refused, not missing.
    let st = status(&sa).unwrap();
    let evil_peer = st
        .peers
        .iter()
        .find(|p| p.address.to_string() == "10.78.0.3")
        .unwrap();
    assert_eq!(evil_peer.peer_type, "node-to-node mesh");
    assert_eq!(evil_peer.state, "Established");
    assert!(evil_peer.prefixes_received >= 5, "{evil_peer:?}");
    let rows = rib(&sa);
    let k = routes();
    for bad in ["8.8.8.0/24", hijack_inner.as_str(), stray.as_str()] {
        assert!(
            !rows.iter().any(|(p, _)| p == bad),
            "{bad} in na's RIB: {rows:?}"
        );
        assert!(!k.contains(bad), "{bad} in na's kernel: {k}");
    }
    assert!(
        !has_host_route(&k, &stray_ip),
        "{stray} in na's kernel: {k}"
    );
    // nb never hears of them either.
    let rows_b = rib(&sb);
    assert!(!rows_b
        .iter()
        .any(|(p, _)| p == "8.8.8.0/24" || *p == hijack_inner));

    // The external peer gets the exported pool's blocks, not the quiet one's.
    let r = wait_until(
        "BIRD learns na's and nb's blocks",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let got = tor.received();
            tor.established()
                && got.contains(&a_block.to_string())
                && got.contains(&b_block.to_string())
        },
    );
    assert!(
        r.is_ok(),
        "{r:?}: BIRD got {:?}\n{}",
        tor.received(),
        tor.log()
    );
    let got = tor.received();
    assert!(
        !got.contains(&a_quiet.to_string()),
        "quiet block exported: {got:?}"
    );
    assert!(!got.iter().any(|p| p == "8.8.8.0/24"), "{got:?}");
    // calico_aggr: nothing more specific than na's block leaves na, the
    // /32 it accepted from the borrower included.
    assert!(!got.contains(&lent), "borrowed /32 re-exported: {got:?}");
    let rows_b = rib(&sb);
    assert!(
        !rows_b.iter().any(|(p, _)| *p == a_quiet.to_string()),
        "{rows_b:?}"
    );

    // Run-time changes: export the quiet pool, add a pool with a block of nb.
    let before_a = sinces(&sa);
    let before_b = sinces(&sb);
    assert_eq!(before_a.len(), 3, "{before_a:?}");
    let flaps_a = flaps(&a);
    let flaps_b = flaps(&b);
    assert_eq!(flaps_a.len(), 3, "{flaps_a:?}");
    apply(&store, &pool("quiet", "10.241.0.0/16", false));
    apply(&store, &pool("extra", "10.242.0.0/16", false));
    let b_extra = block_for(&ipam, "nb", "10.242.0.0/16");
    let r = wait_until(
        "the quiet block is exported and nb's block of the new pool installed",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let got = tor.received();
            got.contains(&a_quiet.to_string())
                && got.contains(&b_extra.to_string())
                && has(&rib(&sa), &b_extra.to_string(), "10.78.0.2")
                && has(&rib(&sb), &a_quiet.to_string(), "10.78.0.1")
                && routes().contains(&b_extra.to_string())
        },
    );
    assert!(
        r.is_ok(),
        "{r:?}: BIRD {:?}, na rib {:?}, nb rib {:?}",
        tor.received(),
        rib(&sa),
        rib(&sb)
    );
    assert_eq!(sinces(&sa), before_a, "a session of na was reset");
    assert_eq!(sinces(&sb), before_b, "a session of nb was reset");
    assert_eq!(flaps(&a), flaps_a, "a session of na flapped");
    assert_eq!(flaps(&b), flaps_b, "a session of nb flapped");

    // A BGPPeer that reaches a Node: shown as Calico shows it (`node
    // specific`), still under the cluster import rules (an external peer's
    // filter would accept the hijacks). The session restarts once.
    apply(
        &store,
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: to-evil\nspec:\n  node: na\n  peerIP: 10.78.0.3:17979\n  asNumber: 64512\n",
    );
    let evil_report = || {
        status(&sa).and_then(|s| {
            s.peers
                .into_iter()
                .find(|p| p.address.to_string() == "10.78.0.3")
        })
    };
    let r = wait_until(
        "na's session with evil is node specific, up again, all prefixes in",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let rows = rib(&sa);
            evil_report().is_some_and(|p| {
                p.peer_type == "node specific"
                    && p.state == "Established"
                    && p.prefixes_received >= 5
            }) && has(&rows, control, "10.78.0.3")
                && has(&rows, &lent, "10.78.0.3")
        },
    );
    assert!(r.is_ok(), "{r:?}: {:?}, rib {:?}", evil_report(), rib(&sa));
    let rows = rib(&sa);
    for bad in ["8.8.8.0/24", hijack_inner.as_str(), stray.as_str()] {
        assert!(
            !rows.iter().any(|(p, _)| p == bad),
            "{bad} in na's RIB from a node-specific node peer: {rows:?}"
        );
    }
    drop(evil);
    drop(tor);
}
