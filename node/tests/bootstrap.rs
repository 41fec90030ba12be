//! First-start settings through the `tortie-node` binary, as the
//! DaemonSets pass them (environment), on a real SQLite datastore:
//! - two agents started together with `TORTIE_IPV4POOL_*` create exactly
//!   one pool; an existing pool is left alone;
//! - `TORTIE_ROUTE_REFLECTOR_CLUSTER_ID` sets the Node's cluster id on the
//!   first start and does not overwrite one set later by an operator;
//! - invalid pool settings stop the agent naming the variable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_model::{Kind, Resource};
use tortie_node::api::{query, Request, Response};
use tortie_testkit::{unique_prefix, wait_until, ChildGuard, Netns};

/// Namespaces `a` (10.NET.0.1) and `b` (10.NET.0.2) joined by a veth, and
/// a temporary folder for the SQLite file and the control sockets.
struct Setup {
    dir: tempfile::TempDir,
    db: String,
    a: Netns,
    b: Netns,
}

impl Setup {
    fn new(tag: &str, net: u8) -> Self {
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
        Self { dir, db, a, b }
    }

    fn store(&self) -> BlockingStore {
        BlockingStore::open(&self.db, &OpenOptions::default()).unwrap()
    }

    fn sock(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.sock"))
    }

    /// `tortie-node` for `node` in `ns` (BGP only), with `env` as a
    /// DaemonSet sets it.
    fn start(&self, ns: &Netns, node: &str, env: &[(&str, &str)]) -> ChildGuard {
        let mut cmd = ns.command(env!("CARGO_BIN_EXE_tortie-node"));
        cmd.args(["--datastore", &self.db, "--node-name", node])
            .args(["--dataplane", "none", "--bgp-port", "17981"])
            .args(["--ip-autodetect", "interface=eth0"])
            .arg("--control-socket")
            .arg(self.sock(node))
            .env_remove("TORTIE_NODE_IP");
        for (k, v) in env {
            cmd.env(k, v);
        }
        ChildGuard::spawn(node, &mut cmd).unwrap()
    }
}

fn answers(sock: &Path) -> bool {
    matches!(query(sock, &Request::Status), Ok(Response::Status(_)))
}

/// Waits until the agent's control socket answers (the bootstrap runs before it opens).
fn wait_started(agent: &mut ChildGuard, sock: &Path) {
    wait_until(
        &format!("{} to answer on its control socket", agent.name()),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            assert!(agent.try_exit().is_none(), "{} exited", agent.name());
            answers(sock)
        },
    )
    .unwrap();
}

fn pools(store: &BlockingStore) -> Vec<tortie_model::IpPool> {
    store
        .block_on(typed::list(store.store().as_ref(), Kind::IpPool, None))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Resource::IpPool(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn node(store: &BlockingStore, name: &str) -> tortie_model::Node {
    match store
        .block_on(typed::get(store.store().as_ref(), Kind::Node, None, name))
        .unwrap()
    {
        Resource::Node(n) => n,
        other => panic!("not a Node: {other:?}"),
    }
}

const POOL_ENV: [(&str, &str); 4] = [
    ("TORTIE_IPV4POOL_CIDR", "10.250.0.0/16"),
    ("TORTIE_IPV4POOL_BLOCK_SIZE", "28"),
    ("TORTIE_IPV4POOL_VXLAN", "CrossSubnet"),
    ("TORTIE_IPV4POOL_NAT_OUTGOING", "false"),
];

#[test]
#[ignore = "root: network namespaces and tortie-node processes"]
fn two_agents_starting_together_create_exactly_one_pool() {
    let s = Setup::new("boot", 81);
    let mut na = s.start(&s.a, "na", &POOL_ENV);
    let mut nb = s.start(&s.b, "nb", &POOL_ENV);
    wait_started(&mut na, &s.sock("na"));
    wait_started(&mut nb, &s.sock("nb"));

    let got = pools(&s.store());
    assert_eq!(got.len(), 1, "{got:?}");
    let p = &got[0];
    assert_eq!(p.metadata.name, "default-ipv4-ippool");
    assert_eq!(p.spec.cidr.to_string(), "10.250.0.0/16");
    assert_eq!(p.spec.block_size, Some(28));
    assert_eq!(
        p.spec.vxlan_mode,
        Some(tortie_model::EncapMode::CrossSubnet)
    );
    assert!(!p.spec.nat_outgoing);

    // The agents act on it: with vxlanMode each gets a VXLAN tunnel
    // address from the new pool.
    let store = s.store();
    wait_until(
        "both nodes to get a VXLAN tunnel address in 10.250.0.0/16",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            ["na", "nb"].iter().all(|n| {
                node(&store, n)
                    .spec
                    .ipv4_vxlan_tunnel_addr
                    .is_some_and(|a| p.spec.cidr.contains(&std::net::IpAddr::V4(a)))
            })
        },
    )
    .unwrap();

    // A restart finds the pool and creates nothing more.
    drop(na);
    let mut na = s.start(&s.a, "na", &POOL_ENV);
    wait_started(&mut na, &s.sock("na"));
    assert_eq!(pools(&s.store()), got);
}

#[test]
#[ignore = "root: network namespaces and tortie-node processes"]
fn an_existing_pool_is_left_alone() {
    let s = Setup::new("boot", 82);
    let store = s.store();
    let mine = tortie_model::parse_manifest(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: mine\nspec:\n  cidr: 10.240.0.0/16\n",
    )
    .unwrap();
    store
        .block_on(typed::create(store.store().as_ref(), mine))
        .unwrap();
    let before = pools(&store);

    let mut na = s.start(&s.a, "na", &POOL_ENV);
    wait_started(&mut na, &s.sock("na"));
    assert_eq!(
        pools(&store),
        before,
        "the existing pool changed or another was added"
    );
}

#[test]
#[ignore = "root: network namespaces and tortie-node processes"]
fn the_cluster_id_is_set_on_first_start_and_never_overwritten() {
    let s = Setup::new("bootrr", 83);
    let env = [("TORTIE_ROUTE_REFLECTOR_CLUSTER_ID", "244.0.0.1")];
    let mut rr = s.start(&s.a, "rr1", &env);
    wait_started(&mut rr, &s.sock("rr1"));
    let store = s.store();
    let bgp = node(&store, "rr1").spec.bgp.unwrap();
    assert_eq!(
        bgp.route_reflector_cluster_id,
        Some("244.0.0.1".parse().unwrap())
    );
    assert_eq!(bgp.ipv4_address.unwrap().to_string(), "10.83.0.1/24");
    drop(rr);

    // An operator moves the node to another cluster id; a restart with the
    // same DaemonSet environment keeps the operator's value.
    let mut n = node(&store, "rr1");
    n.spec.bgp.as_mut().unwrap().route_reflector_cluster_id = Some("244.0.0.9".parse().unwrap());
    store
        .block_on(typed::replace(
            store.store().as_ref(),
            vec![Resource::Node(n)],
        ))
        .unwrap();
    let mut rr = s.start(&s.a, "rr1", &env);
    wait_started(&mut rr, &s.sock("rr1"));
    let bgp = node(&store, "rr1").spec.bgp.unwrap();
    assert_eq!(
        bgp.route_reflector_cluster_id,
        Some("244.0.0.9".parse().unwrap())
    );

    // A node registered earlier without one (a former worker) gets it.
    let mut nb = s.start(&s.b, "nb", &[]);
    wait_started(&mut nb, &s.sock("nb"));
    assert_eq!(
        node(&store, "nb")
            .spec
            .bgp
            .unwrap()
            .route_reflector_cluster_id,
        None
    );
    drop(nb);
    let mut nb = s.start(
        &s.b,
        "nb",
        &[("TORTIE_ROUTE_REFLECTOR_CLUSTER_ID", "244.0.0.2")],
    );
    wait_started(&mut nb, &s.sock("nb"));
    let bgp = node(&store, "nb").spec.bgp.unwrap();
    assert_eq!(
        bgp.route_reflector_cluster_id,
        Some("244.0.0.2".parse().unwrap())
    );
    assert_eq!(bgp.ipv4_address.unwrap().to_string(), "10.83.0.2/24");
}

#[test]
fn invalid_pool_settings_stop_the_agent_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let out = Command::new(env!("CARGO_BIN_EXE_tortie-node"))
        .args(["--node-ip", "10.0.0.1/24", "--dataplane", "none"])
        .arg("--datastore")
        .arg(format!("sqlite://{}", db.display()))
        .arg("--control-socket")
        .arg(dir.path().join("n.sock"))
        .env("TORTIE_IPV4POOL_CIDR", "10.244.0.0/16")
        .env("TORTIE_IPV4POOL_IPIP", "Always")
        .env("TORTIE_IPV4POOL_VXLAN", "Always")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TORTIE_IPV4POOL_IPIP") && err.contains("vxlanMode"),
        "{err}"
    );
    assert!(
        !db.exists(),
        "the datastore was opened before the settings were checked"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_tortie-node"))
        .args(["--node-ip", "10.0.0.1/24"])
        .env("TORTIE_IPV4POOL_CIDR", "10.244.0.1/16")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad value is a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ipv4pool-cidr") && err.contains("10.244.0.0/16"),
        "{err}"
    );
}
