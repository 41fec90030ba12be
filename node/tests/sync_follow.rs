//! tortie-node follows the datastore through watches (issue 20), tested
//! through the binary (`--dataplane none`, on the host's loopback: its BGP
//! listener on a free port, its only peer a BGPPeer at 127.0.0.2 on a port
//! nothing listens on) against a real etcd and a SQLite file:
//!
//! - idle for longer than the old 10 s re-read, it makes no request at all
//!   (its own `tortie_datastore_requests_total` counters);
//! - etcd killed and started again: the watch resumes (a reconnect, no
//!   list) and a change made after the restart reaches the agent;
//! - the agent frozen (SIGSTOP) while BGPPeers change and the history is
//!   compacted past its revision (after an etcd restart, so its watch must
//!   be re-created): it lists exactly once more and has every change,
//!   deletions included;
//! - etcd wiped and started empty on the same address: the agent lists the
//!   new keyspace once, registers its Node again and follows new changes.
//!
//! A change "reaches the agent" when its control socket shows the BGPPeer's
//! session (or no longer shows it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_node::api::{query, Request, Response};
use tortie_testkit::etcd::Etcd;
use tortie_testkit::{free_port, wait_until, ChildGuard};

/// Longer than the 10 s full re-read tortie-node used to make.
const IDLE: Duration = Duration::from_secs(12);
const WAIT: Duration = Duration::from_secs(30);

struct Agent {
    child: ChildGuard,
    http: u16,
    sock: PathBuf,
    store: BlockingStore,
    peer_port: u16,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(url: &str, dir: tempfile::TempDir) -> Self {
        let store = BlockingStore::open(url, &OpenOptions::default()).unwrap();
        apply(
            &store,
            "kind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.240.0.0/16\n",
        );
        let http = free_port();
        let sock = dir.path().join("node.sock");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tortie-node"));
        cmd.args([
            "--datastore",
            url,
            "--node-name",
            "n1",
            "--dataplane",
            "none",
        ])
        .args(["--node-ip", "127.0.0.1/8"])
        .args(["--bgp-port", &free_port().to_string()])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .arg("--control-socket")
        .arg(&sock);
        let child = ChildGuard::spawn("tortie-node", &mut cmd).unwrap();
        Self {
            child,
            http,
            sock,
            store,
            peer_port: free_port(),
            _dir: dir,
        }
    }

    fn metrics(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// A metric's value (`name` with its labels, as printed).
    fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    fn requests(&self) -> Vec<(String, f64)> {
        let text = self.metrics().unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("tortie_datastore_requests_total{"))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// The addresses of the agent's BGP peers.
    fn peers(&self) -> Vec<String> {
        match query(&self.sock, &Request::Status) {
            Ok(Response::Status(s)) => s.peers.into_iter().map(|p| p.address.to_string()).collect(),
            _ => vec!["<no status>".into()],
        }
    }

    fn peer(&self, name: &str, last_octet: u8) {
        let m = format!(
            "kind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n  peerIP: 127.0.0.{last_octet}:{}\n  asNumber: 65001\n",
            self.peer_port
        );
        apply(&self.store, &m);
    }

    fn wait_peers(&self, want: &[&str]) {
        wait_until(
            "the agent's peers",
            WAIT,
            Duration::from_millis(100),
            || self.peers() == want,
        )
        .unwrap_or_else(|e| panic!("{e}: peers {:?}, want {want:?}", self.peers()));
    }

    /// Waits until the agent runs with our Node registered and the first list done.
    fn wait_started(&self) {
        wait_until(
            "the agent's first list",
            WAIT,
            Duration::from_millis(100),
            || {
                self.metric("tortie_datastore_lists_total") == Some(1.0)
                    && self
                        .metric("tortie_datastore_snapshots_total")
                        .is_some_and(|n| n >= 1.0)
            },
        )
        .unwrap();
        self.wait_peers(&[]);
    }

    /// No request of any kind for [`IDLE`].
    fn assert_idle_costs_nothing(&self) {
        let before = self.requests();
        assert!(!before.is_empty(), "no request metrics");
        let start = std::time::Instant::now();
        while start.elapsed() < IDLE {
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(self.requests(), before, "requests while idle");
        }
    }
}

/// Applies `yaml`, retrying while the store is unavailable (our own etcd
/// client reconnects after a restart too).
fn apply(store: &BlockingStore, yaml: &str) {
    let r =
        tortie_model::parse_manifest(&format!("apiVersion: projectcalico.org/v3\n{yaml}")).unwrap();
    let mut last = None;
    wait_until("a write", WAIT, Duration::from_millis(100), || {
        let res = store.block_on(typed::apply(store.store().as_ref(), r.clone()));
        let ok = res.is_ok();
        last = res.err();
        ok
    })
    .unwrap_or_else(|e| panic!("{e}: {last:?}"));
}

fn delete_peer(store: &BlockingStore, name: &str) {
    let s = store.store().as_ref();
    let mut last = None;
    wait_until("a delete", WAIT, Duration::from_millis(100), || {
        let res = store.block_on(typed::delete_one(
            s,
            tortie_model::Kind::BgpPeer,
            None,
            name,
        ));
        let ok = res.is_ok();
        last = res.err();
        ok
    })
    .unwrap_or_else(|e| panic!("{e}: {last:?}"));
}

/// SIGSTOP / SIGCONT.
fn freeze(child: &ChildGuard, frozen: bool) {
    child.signal(if frozen { 19 } else { 18 });
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("t.db").display())
}

#[test]
#[ignore = "starts a real etcd and tortie-node (full suite); idles 12 s"]
fn on_etcd_idle_costs_nothing_restarts_resume_and_compaction_relists_once() {
    let mut etcd = Etcd::start().expect("start etcd");
    let a = Agent::start(&etcd.url(), tempfile::tempdir().unwrap());
    a.wait_started();
    a.assert_idle_costs_nothing();

    // etcd restarted: the watch resumes from its next revision, no list.
    let reconnects = a.metric("tortie_datastore_watch_reconnects_total").unwrap();
    etcd.stop();
    etcd.start_again().unwrap();
    a.peer("p1", 2);
    a.wait_peers(&["127.0.0.2"]);
    assert!(a.metric("tortie_datastore_watch_reconnects_total").unwrap() > reconnects);
    assert_eq!(a.metric("tortie_datastore_lists_total"), Some(1.0));
    assert_eq!(a.metric("tortie_datastore_watch_restarts_total"), Some(0.0));

    // Frozen across a restart while p1 goes, p2 comes and the history is
    // compacted: one more list, and both changes are there.
    freeze(&a.child, true);
    etcd.stop();
    etcd.start_again().unwrap();
    delete_peer(&a.store, "p1");
    a.peer("p2", 3);
    let s = a.store.store().as_ref();
    let rev = a.store.block_on(s.revision()).unwrap();
    a.store.block_on(s.compact(rev)).unwrap();
    freeze(&a.child, false);
    a.wait_peers(&["127.0.0.3"]);
    assert_eq!(a.metric("tortie_datastore_lists_total"), Some(2.0));
    assert_eq!(a.metric("tortie_datastore_watch_restarts_total"), Some(1.0));
    a.assert_idle_costs_nothing();
}

#[test]
#[ignore = "starts a real etcd and tortie-node (full suite)"]
fn on_etcd_wiped_and_restarted_the_agent_lists_again_and_registers_again() {
    let mut etcd = Etcd::start().expect("start etcd");
    let a = Agent::start(&etcd.url(), tempfile::tempdir().unwrap());
    a.wait_started();
    a.peer("p1", 2);
    a.wait_peers(&["127.0.0.2"]);

    // An empty etcd on the same address (a wiped disk, an old backup): its
    // revision starts over below what the agent saw, so the watch cannot
    // resume; the agent lists the new keyspace once and writes its Node again.
    etcd.wipe().unwrap();
    etcd.start_again().unwrap();
    a.wait_peers(&[]);
    let nodes = || {
        let s = a.store.store().as_ref();
        a.store
            .block_on(typed::list(s, tortie_model::Kind::Node, None))
            .map(|l| l.len())
            .unwrap_or(0)
    };
    wait_until(
        "the Node registered again",
        WAIT,
        Duration::from_millis(100),
        || nodes() == 1,
    )
    .unwrap();
    a.peer("p3", 3);
    a.wait_peers(&["127.0.0.3"]);
    assert_eq!(a.metric("tortie_datastore_lists_total"), Some(2.0));
    assert_eq!(a.metric("tortie_datastore_watch_restarts_total"), Some(1.0));
}

/// A WorkloadEndpoint of n1 stored as an older tortie (or another writer)
/// stored it: at Calico's key only, without the per-node index entry.
fn legacy_endpoint(url: &str) {
    let store = BlockingStore::open(url, &OpenOptions::default()).unwrap();
    let wep = r#"{"apiVersion":"projectcalico.org/v3","kind":"WorkloadEndpoint","metadata":{"name":"n1-k8s-old-eth0","namespace":"ns1"},"spec":{"node":"n1","orchestrator":"k8s","pod":"old","endpoint":"eth0","interfaceName":"cali0123456789a","ipNetworks":["10.240.0.7/32"]}}"#;
    let key = "/resources/v3/projectcalico.org/workloadendpoints/ns1/n1-k8s-old-eth0";
    store.put(key, wep.as_bytes().to_vec()).unwrap();
}

#[test]
#[ignore = "starts tortie-node (full suite); idles 12 s"]
fn on_sqlite_idle_costs_nothing_and_compaction_relists_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    legacy_endpoint(&url);
    let a = Agent::start(&url, dir);
    a.wait_started();
    // The endpoint stored without an index entry got one, once: the agent
    // has it, and the marker says not to list every endpoint again.
    let index = "/index/v1/workloadendpoints/n1/ns1/n1-k8s-old-eth0";
    assert!(a.store.get(index).unwrap().is_some(), "no index entry");
    assert!(
        a.store.get("/index/v1/built/n1").unwrap().is_some(),
        "no marker"
    );
    wait_until(
        "the endpoint in the cache",
        WAIT,
        Duration::from_millis(100),
        || a.metric("tortie_datastore_cache_entries{kind=\"workloadendpoint\"}") == Some(1.0),
    )
    .unwrap();
    a.assert_idle_costs_nothing();
    a.peer("p1", 2);
    a.wait_peers(&["127.0.0.2"]);
    assert_eq!(a.metric("tortie_datastore_lists_total"), Some(1.0));

    freeze(&a.child, true);
    delete_peer(&a.store, "p1");
    a.peer("p2", 3);
    let s = a.store.store().as_ref();
    let rev = a.store.block_on(s.revision()).unwrap();
    a.store.block_on(s.compact(rev)).unwrap();
    freeze(&a.child, false);
    a.wait_peers(&["127.0.0.3"]);
    assert_eq!(a.metric("tortie_datastore_lists_total"), Some(2.0));
    assert_eq!(a.metric("tortie_datastore_watch_restarts_total"), Some(1.0));
}
