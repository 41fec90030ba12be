//! SIGTERM through the binary: two tortie-node processes (BGP only) in
//! namespaces joined by a veth, sharing one SQLite datastore, in a
//! node-to-node mesh; `nb` has learned `na`'s block. SIGTERM to `na` ends
//! it with exit status 0 within 5 s and:
//! - by default its session ends with a Cease / Administrative Shutdown
//!   NOTIFICATION: `nb` shows the Cease and drops `na`'s block at once;
//! - with `--shutdown-mode graceful-restart` (here `TORTIE_SHUTDOWN_MODE`)
//!   no NOTIFICATION is sent: `nb` keeps `na`'s block (RFC 4724 §4.2) while
//!   `na` is away.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::holds_for;
use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_ipam_core::{AssignRequest, DatastoreIpamStore, Ipam};
use tortie_node::api::{query, NodeStatus, Request, Response};
use tortie_testkit::{unique_prefix, wait_until, ChildGuard, Netns};

fn start(ns: &Netns, name: &str, db: &str, sock: &Path, mode: &str, log: &Path) -> ChildGuard {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_tortie-node"));
    cmd.args([
        "--datastore",
        db,
        "--node-name",
        name,
        "--dataplane",
        "none",
    ])
    .args(["--ip-autodetect", "interface=eth0", "--bgp-port", "17981"])
    .arg("--control-socket")
    .arg(sock)
    .env("TORTIE_SHUTDOWN_MODE", mode)
    .env_remove("TORTIE_NODE_IP")
    .stderr(std::fs::File::create(log).unwrap());
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

fn status(sock: &Path) -> Option<NodeStatus> {
    match query(sock, &Request::Status).ok()? {
        Response::Status(s) => Some(s),
        _ => None,
    }
}

/// Two agents, `na` (stopping as `mode` says) and `nb`, meshed, `nb`
/// holding `na`'s block. Fields drop in order: agents, files, namespaces.
struct Pair {
    na: ChildGuard,
    _nb: ChildGuard,
    sb: PathBuf,
    block_ip: std::net::Ipv4Addr,
    dir: tempfile::TempDir,
    _a: Netns,
    _b: Netns,
}

impl Pair {
    fn start(tag: &str, net: u8, mode: &str) -> Self {
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
        let pool = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.241.0.0/16\n";
        store
            .block_on(typed::apply(
                store.store().as_ref(),
                tortie_model::parse_manifest(pool).unwrap(),
            ))
            .unwrap();
        let (sa, sb) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
        let na = start(&a, "na", &db, &sa, mode, &dir.path().join("na.log"));
        let nb = start(&b, "nb", &db, &sb, "cease", &dir.path().join("nb.log"));
        let up = |s: &Path| {
            status(s).is_some_and(|st| st.peers.len() == 1 && st.peers[0].state == "Established")
        };
        wait_until(
            "the mesh session",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || up(&sa) && up(&sb),
        )
        .unwrap();
        let ipam = Ipam::new(DatastoreIpamStore::new(store));
        let pools = ipam.store().pool_views("na").unwrap();
        let std::net::IpAddr::V4(block_ip) = ipam
            .auto_assign(&AssignRequest::v4("h", "na", 1), &pools)
            .unwrap()
            .v4[0]
        else {
            panic!("not IPv4")
        };
        let pair = Self {
            na,
            _nb: nb,
            sb,
            block_ip,
            dir,
            _a: a,
            _b: b,
        };
        wait_until(
            "nb learns na's block",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || pair.b_has_block(),
        )
        .unwrap();
        pair
    }

    fn b_has_block(&self) -> bool {
        match query(&self.sb, &Request::Rib { afi: None }) {
            Ok(Response::Rib(r)) => r.iter().any(|e| {
                ipnet::IpNet::from(e.prefix).contains(&std::net::IpAddr::V4(self.block_ip))
            }),
            _ => false,
        }
    }

    fn na_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("na.log")).unwrap_or_default()
    }

    /// SIGTERM to `na`: it must exit 0 within 5 s.
    fn stop_a(&mut self) {
        self.na.signal(15);
        let r = wait_until(
            "na exits after SIGTERM",
            Duration::from_secs(5),
            Duration::from_millis(20),
            || self.na.try_exit().is_some(),
        );
        assert!(r.is_ok(), "{r:?}: {}", self.na_log());
        let st = self.na.try_exit().unwrap();
        assert!(st.success(), "exit {st:?}: {}", self.na_log());
    }

    fn b_peer(&self) -> Option<tortie_node::api::PeerReport> {
        status(&self.sb)?.peers.into_iter().next()
    }
}

#[test]
#[ignore = "root: network namespaces and tortie-node processes"]
fn sigterm_ends_sessions_with_a_cease_and_exits_zero() {
    let mut pair = Pair::start("stc", 83, "cease");
    pair.stop_a();
    wait_until(
        "nb sees the Cease",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            pair.b_peer().is_some_and(|p| {
                p.state != "Established"
                    && p.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("Administrative Shutdown"))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", pair.b_peer()));
    wait_until(
        "nb drops na's block",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || !pair.b_has_block(),
    )
    .unwrap();
    assert!(
        pair.na_log().contains("Cease (Administrative Shutdown)"),
        "{}",
        pair.na_log()
    );
}

#[test]
#[ignore = "root: network namespaces and tortie-node processes"]
fn sigterm_in_graceful_restart_mode_leaves_the_routes_with_the_peers() {
    let mut pair = Pair::start("stg", 84, "graceful-restart");
    pair.stop_a();
    wait_until(
        "nb sees the session go",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || pair.b_peer().is_some_and(|p| p.state != "Established"),
    )
    .unwrap();
    let p = pair.b_peer().unwrap();
    assert!(
        !p.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("Cease"),
        "a NOTIFICATION was sent: {p:?}"
    );
    holds_for(
        "nb keeps na's block while na restarts",
        Duration::from_secs(3),
        || {
            if pair.b_has_block() {
                Ok(())
            } else {
                Err(format!("{:?}", pair.b_peer()))
            }
        },
    );
}
