//! Two tortie-node processes (BGP only) in namespaces joined by a veth,
//! sharing one SQLite datastore: each registers its Node with the address
//! found by `--ip-autodetect`, they form the node-to-node mesh, and a block
//! IPAM gives one node shows up in the other's RIB with that node as next hop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_ipam_core::{AssignRequest, DatastoreIpamStore, Ipam};
use tortie_model::{Kind, Resource};
use tortie_node::api::{query, NodeStatus, Request, Response};
use tortie_testkit::{unique_prefix, wait_until, ChildGuard, Netns};

fn start(ns: &Netns, name: &str, db: &str, sock: &Path) -> ChildGuard {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_tortie-node"));
    cmd.args([
        "--datastore",
        db,
        "--node-name",
        name,
        "--dataplane",
        "none",
    ])
    .args(["--ip-autodetect", "interface=eth0", "--bgp-port", "17979"])
    .arg("--control-socket")
    .arg(sock)
    .env_remove("TORTIE_NODE_IP");
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

fn status(sock: &Path) -> Option<NodeStatus> {
    match query(sock, &Request::Status).ok()? {
        Response::Status(s) => Some(s),
        _ => None,
    }
}

/// Two agents, `na` in namespace `a` (10.NET.0.1) and `nb` in `b`
/// (10.NET.0.2), joined by a veth, on one SQLite file holding the IPPool
/// 10.240.0.0/16. Fields drop in order: agents, store, files, namespaces.
struct Pair {
    _na: ChildGuard,
    _nb: ChildGuard,
    store: BlockingStore,
    db: String,
    sa: PathBuf,
    sb: PathBuf,
    _dir: tempfile::TempDir,
    _a: Netns,
    b: Netns,
}

impl Pair {
    fn start(tag: &str, net: u8) -> Self {
        let p = unique_prefix(tag);
        let a = Netns::create(&format!("{p}a")).unwrap();
        let b = Netns::create(&format!("{p}b")).unwrap();
        a.veth_to(
            "eth0",
            &format!("10.{net}.0.1/24"),
            &b,
            "eth0",
            &format!("10.{net}.0.2/24"),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = BlockingStore::open(&db, &OpenOptions::default()).unwrap();
        apply(&store, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.240.0.0/16\n");
        let (sa, sb) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
        Self {
            _na: start(&a, "na", &db, &sa),
            _nb: start(&b, "nb", &db, &sb),
            store,
            db,
            sa,
            sb,
            _dir: dir,
            _a: a,
            b,
        }
    }
}

fn apply(store: &BlockingStore, yaml: &str) {
    let r = tortie_model::parse_manifest(yaml).unwrap();
    store
        .block_on(typed::apply(store.store().as_ref(), r))
        .unwrap();
}

#[test]
#[ignore = "root: network namespaces and tortie-node processes"]
fn two_nodes_register_mesh_and_learn_each_others_blocks() {
    let pair = Pair::start("agent", 77);
    let (sa, sb, db, store) = (pair.sa.as_path(), pair.sb.as_path(), &pair.db, &pair.store);

    let established = |s: &Path| {
        status(s).is_some_and(|st| {
            st.peers.len() == 1
                && st.peers[0].state == "Established"
                && st.peers[0].peer_type == "node-to-node mesh"
        })
    };
    wait_until(
        "the mesh session",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || established(sa) && established(sb),
    )
    .unwrap();
    let nodes = store
        .block_on(typed::list(store.store().as_ref(), Kind::Node, None))
        .unwrap();
    let ips: Vec<String> = nodes
        .iter()
        .filter_map(|r| match r {
            Resource::Node(n) => n.spec.bgp.as_ref()?.ipv4_address.map(|i| i.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ips, ["10.77.0.1/24", "10.77.0.2/24"]);

    let ipam = Ipam::new(DatastoreIpamStore::new(
        BlockingStore::open(db, &OpenOptions::default()).unwrap(),
    ));
    let pools = ipam.store().pool_views("na").unwrap();
    let got = ipam
        .auto_assign(&AssignRequest::v4("test-handle", "na", 1), &pools)
        .unwrap();
    let ip = got.v4[0];
    let learned = || match query(sb, &Request::Rib { afi: None }) {
        Ok(Response::Rib(r)) => r.iter().any(|e| {
            let net = ipnet::IpNet::from(e.prefix);
            net.contains(&ip)
                && e.paths
                    .iter()
                    .any(|p| p.next_hop == "10.77.0.1".parse().ok())
        }),
        _ => false,
    };
    wait_until(
        "nb learns na's block",
        Duration::from_secs(30),
        Duration::from_millis(100),
        learned,
    )
    .unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            pair.b.name(),
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "127.0.0.1:9099/livez",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

/// A new cluster AS (BGPConfiguration `asNumber`) at run time: each agent
/// replaces its speaker in-process, the sessions come back with the new AS
/// on both ends and the routes are learned again.
#[test]
#[ignore = "root: network namespaces and tortie-node processes"]
fn a_new_as_number_restarts_the_speakers_and_sessions_come_back_with_it() {
    let pair = Pair::start("asn", 79);
    let (sa, sb, db) = (pair.sa.as_path(), pair.sb.as_path(), pair.db.as_str());
    let apply = |yaml: &str| apply(&pair.store, yaml);
    let up_with = |s: &Path, asn: u32| {
        status(s).is_some_and(|st| {
            st.asn == asn
                && st.peers.len() == 1
                && st.peers[0].state == "Established"
                && st.peers[0].asn == asn
        })
    };
    wait_until(
        "the mesh session with AS 64512",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || up_with(sa, 64512) && up_with(sb, 64512),
    )
    .unwrap();
    let ipam = Ipam::new(DatastoreIpamStore::new(
        BlockingStore::open(db, &OpenOptions::default()).unwrap(),
    ));
    let pools = ipam.store().pool_views("na").unwrap();
    let ip = ipam
        .auto_assign(&AssignRequest::v4("h", "na", 1), &pools)
        .unwrap()
        .v4[0];
    let learned = || match query(sb, &Request::Rib { afi: None }) {
        Ok(Response::Rib(r)) => r.iter().any(|e| {
            let net = ipnet::IpNet::from(e.prefix);
            net.contains(&ip) && e.paths.iter().any(|p| p.as_path.is_empty())
        }),
        _ => false,
    };
    wait_until(
        "nb learns na's block",
        Duration::from_secs(30),
        Duration::from_millis(100),
        learned,
    )
    .unwrap();

    apply("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: 65010\n");
    let r = wait_until(
        "the mesh session again, with AS 65010 on both ends",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || up_with(sa, 65010) && up_with(sb, 65010) && learned(),
    );
    assert!(r.is_ok(), "{r:?}: na {:?}, nb {:?}", status(sa), status(sb));
    // The peer's AS comes from its OPEN: 65010 means a new session.
    let st = status(sa).unwrap();
    assert_eq!(st.peers[0].peer_type, "node-to-node mesh");
}
