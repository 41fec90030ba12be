//! tortie-node takes its BGP peers back the way BIRD and FRR do (issue 13),
//! end to end through the binary: a BIRD that restarts while the node's
//! session is Established, Active (BIRD down, the node's connects refused)
//! or Connect (the node's SYNs dropped in BIRD's namespace) is taken back
//! as soon as it connects, and a client that only connects (never
//! listens; `tests/tools/bgp-connect-only-client.py` in its own namespace)
//! gets a session although the node's own connects to it are refused.
//!
//! Layout: namespace `<p>n` runs tortie-node (BGP only) on bridge `br0`
//! (10.81.0.1/24); `<p>b` runs BIRD 2 (10.81.0.2, AS 65002), `<p>c` the
//! client (10.81.0.3, AS 65003), each plugged into the bridge. Both are
//! global BGPPeers. The node's session states are read from its
//! `/metrics` (`tortie_bgp_peer_state`, INTERFACES.md), the daemons' from
//! their own side.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_testkit::daemons::{BgpDaemon, BgpDaemonSpec, Bird};
use tortie_testkit::{unique_prefix, wait_until, ChildGuard, Netns};

const NODE: &str = "10.81.0.1";
const BIRD: &str = "10.81.0.2";
const CLIENT: &str = "10.81.0.3";
const PORT: u16 = 17981;
const WAIT: Duration = Duration::from_secs(30);

/// The namespaces, the store and tortie-node; fields drop in order.
struct Setup {
    _node: ChildGuard,
    _dir: tempfile::TempDir,
    n: Netns,
    b: Netns,
    c: Netns,
}

fn apply(store: &BlockingStore, yaml: &str) {
    let r = tortie_model::parse_manifest(yaml).unwrap();
    store
        .block_on(typed::apply(store.store().as_ref(), r))
        .unwrap();
}

fn bgp_peer(name: &str, ip: &str, asn: u32) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n  peerIP: {ip}:{PORT}\n  asNumber: {asn}\n"
    )
}

impl Setup {
    fn start(tag: &str) -> Self {
        let p = unique_prefix(tag);
        let n = Netns::create(&format!("{p}n")).unwrap();
        n.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
        n.ip(&["addr", "add", &format!("{NODE}/24"), "dev", "br0"])
            .unwrap();
        n.ip(&["link", "set", "br0", "up"]).unwrap();
        let b = Netns::create(&format!("{p}b")).unwrap();
        b.plug_into_bridge("eth0", &format!("{BIRD}/24"), n.name(), "br0", "vb")
            .unwrap();
        let c = Netns::create(&format!("{p}c")).unwrap();
        c.plug_into_bridge("eth0", &format!("{CLIENT}/24"), n.name(), "br0", "vc")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = BlockingStore::open(&db, &OpenOptions::default()).unwrap();
        apply(&store, &bgp_peer("bird", BIRD, 65002));
        apply(&store, &bgp_peer("client", CLIENT, 65003));
        let mut cmd = n.command(env!("CARGO_BIN_EXE_tortie-node"));
        cmd.args([
            "--datastore",
            &db,
            "--node-name",
            "n1",
            "--dataplane",
            "none",
        ])
        .args(["--ip-autodetect", "interface=br0"])
        .args(["--bgp-port", &PORT.to_string()])
        .arg("--control-socket")
        .arg(dir.path().join("n1.sock"))
        .env_remove("TORTIE_NODE_IP")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let node = ChildGuard::spawn("tortie-node", &mut cmd).unwrap();
        Self {
            _node: node,
            _dir: dir,
            n,
            b,
            c,
        }
    }

    /// The node's `tortie_bgp_peer_state` for `peer` (RFC 4271 number),
    /// read from its `/metrics` inside its namespace.
    fn state(&self, peer: &str) -> Option<u8> {
        let script = "exec 3<>/dev/tcp/127.0.0.1/9099; \
                      printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3";
        let out = self.n.exec(&["bash", "-c", script]).ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let key = format!("tortie_bgp_peer_state{{peer=\"{peer}\"");
        let line = text.lines().find(|l| l.starts_with(&key))?;
        line.rsplit(' ').next()?.parse().ok()
    }

    fn wait_state(&self, peer: &str, want: u8, what: &str) {
        wait_until(what, WAIT, Duration::from_millis(20), || {
            self.state(peer) == Some(want)
        })
        .unwrap_or_else(|e| panic!("{e}: state {:?}", self.state(peer)));
    }
}

fn bird_spec() -> BgpDaemonSpec {
    let me: Ipv4Addr = BIRD.parse().unwrap();
    BgpDaemonSpec {
        router_id: me,
        local_as: 65002,
        local_addr: me.into(),
        local_v4: me,
        local_v6: None,
        listen_port: PORT,
        peer_addr: NODE.parse().unwrap(),
        peer_port: PORT,
        peer_as: 64512,
        password: None,
        hold_time: 9,
        ttl_security: false,
        originate: vec!["10.2.0.0/24".into()],
    }
}

fn both_up(setup: &Setup, bird: &Bird, what: &str) {
    wait_until(what, WAIT, Duration::from_millis(20), || {
        bird.established() && setup.state(BIRD) == Some(6)
    })
    .unwrap_or_else(|e| panic!("{e}: node {:?}\n{}", setup.state(BIRD), bird.log()));
}

#[test]
#[ignore = "root: network namespaces, BIRD, nftables and a tortie-node process"]
fn a_restarted_bird_is_taken_back_in_established_active_and_connect() {
    let setup = Setup::start("psb");
    let mut bird = Bird::start(&setup.b, bird_spec()).unwrap();
    both_up(&setup, &bird, "first session");

    // Established: BIRD restarts at once.
    bird.stop();
    bird.start().unwrap();
    both_up(&setup, &bird, "back after a restart while Established");

    // Active: BIRD is down long enough for the node's connect to be refused.
    bird.stop();
    setup.wait_state(BIRD, 3, "node Active while BIRD is down");
    bird.start().unwrap();
    both_up(&setup, &bird, "back after a restart while Active");

    // Connect: the node's SYNs to BIRD vanish, its connect hangs; BIRD's
    // own connection must be taken.
    for cmd in [
        "add table inet tt",
        "add chain inet tt in { type filter hook input priority 0 ; }",
        &format!("add rule inet tt in tcp dport {PORT} tcp flags & (syn | ack) == syn drop"),
    ] {
        setup.b.nft(cmd).unwrap();
    }
    bird.stop();
    setup.wait_state(BIRD, 2, "node in Connect while its SYNs are dropped");
    bird.start().unwrap();
    both_up(&setup, &bird, "back after a restart while Connect");
}

#[test]
#[ignore = "root: network namespaces, python3 and a tortie-node process"]
fn a_client_that_only_connects_gets_a_session_with_the_node() {
    let setup = Setup::start("psc");
    // Nothing listens in the client's namespace: the node's connects are
    // refused and it waits in Active.
    setup.wait_state(CLIENT, 3, "node Active toward the client");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/tools/bgp-connect-only-client.py"
    );
    let mut cmd = setup.c.command("python3");
    cmd.args([script, CLIENT, &format!("{NODE}:{PORT}"), "65003", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let _client = ChildGuard::adopt("connect-only client", child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(WAIT).expect("a line from the client");
    assert_eq!(first, "ESTABLISHED");
    setup.wait_state(CLIENT, 6, "node Established with the client");
    // The session stays up over several keepalive rounds (hold time 9 s):
    // the client reports nothing but route counts meanwhile.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => assert!(l.starts_with("PREFIXES"), "client: {l}"),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(e) => panic!("client gone: {e}"),
        }
    }
    assert_eq!(setup.state(CLIENT), Some(6));
}
