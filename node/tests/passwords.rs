//! BGP passwords (RFC 2385 TCP-MD5) end to end through `tortie-node`.
//! Three namespaces on one bridge, one SQLite datastore, one secrets
//! folder laid out as a Kubernetes secret volume (`<name>/<key>`):
//!
//! - `na` and `nb` run tortie-node (BGP only) and form the node-to-node
//!   mesh under `nodeMeshPassword` (both ends: listener and connect);
//! - `t` is a BIRD 2 with `password` that `na` peers with through a
//!   BGPPeer whose `password.secretKeyRef` names a secret not written yet.
//!
//! The BIRD session must stay down with the missing secret named in
//! `node status` (never started without its password); come up once the
//! file appears; go down when the secret rotates to a value BIRD does not
//! have (a wrong password gives no session, and the status says why),
//! while the mesh session stays up untouched; and come back once BIRD has
//! the new password. No password may appear in the log, the status or
//! the metrics.

mod agent_ns;

use agent_ns::*;
use std::path::Path;

use tortie_datastore::{BlockingStore, OpenOptions};
use tortie_testkit::daemons::{BgpDaemon, BgpDaemonSpec, Bird};
use tortie_testkit::{unique_prefix, ChildGuard, Netns};

const PORT: u16 = 17981;
const BIRD_PORT: u16 = 17982;
const TOR: &str = "10.81.0.4";
const NB: &str = "10.81.0.2";

fn start_node(ns: &Netns, name: &str, db: &str, dir: &Path) -> ChildGuard {
    let mut cmd = node_command(ns, name, db, dir);
    cmd.args(["--dataplane", "none"])
        .args(["--bgp-port", &PORT.to_string()])
        .arg("--secrets-dir")
        .arg(dir.join("secrets"))
        .env("RUST_LOG", "debug");
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

/// Writes a secret file the way the kubelet updates a secret volume: a new
/// file renamed over the old one.
fn write_secret(dir: &Path, name: &str, key: &str, value: &str) {
    let folder = dir.join("secrets").join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let tmp = folder.join(format!(".{key}.tmp"));
    std::fs::write(&tmp, format!("{value}\n")).unwrap();
    std::fs::rename(tmp, folder.join(key)).unwrap();
}

fn bird_spec(password: &str) -> BgpDaemonSpec {
    BgpDaemonSpec {
        router_id: TOR.parse().unwrap(),
        local_as: 65100,
        local_addr: TOR.parse().unwrap(),
        local_v4: TOR.parse().unwrap(),
        local_v6: None,
        listen_port: BIRD_PORT,
        peer_addr: "10.81.0.1".parse().unwrap(),
        peer_port: PORT,
        peer_as: 64512,
        password: Some(password.into()),
        hold_time: 9,
        ttl_security: false,
        originate: vec!["198.51.100.0/24".into()],
    }
}

fn established(sock: &Path, addr: &str) -> bool {
    peer(sock, addr).is_some_and(|p| p.state == "Established")
}

/// `TcpExt: TCPMD5Failure` of the namespace: segments whose MD5 signature
/// did not match the key the kernel has for the sender.
fn md5_failures(ns: &Netns) -> u64 {
    let text = ns
        .exec(&["cat", "/proc/net/netstat"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPMD5Failure")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "root: network namespaces, tortie-node and BIRD processes"]
fn md5_sessions_need_their_secret_and_follow_its_rotation() {
    let p = unique_prefix("md5");
    let sw = Netns::create(&format!("{p}sw")).unwrap();
    sw.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    sw.ip(&["link", "set", "br0", "up"]).unwrap();
    let a = member(&sw, &p, "a", "10.81.0.1/24");
    let b = member(&sw, &p, "b", "10.81.0.2/24");
    let t = member(&sw, &p, "t", "10.81.0.4/24");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = format!("sqlite://{}", d.join("t.db").display());
    let store = BlockingStore::open(&db, &OpenOptions::default()).unwrap();
    write_secret(d, "mesh", "password", "mesh-pw-7f3a");
    apply(
        &store,
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeMeshPassword:\n    secretKeyRef:\n      name: mesh\n      key: password\n",
    );
    apply(
        &store,
        &format!("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  node: na\n  peerIP: {TOR}:{BIRD_PORT}\n  asNumber: 65100\n  password:\n    secretKeyRef:\n      name: bgp-secrets\n      key: tor\n"),
    );
    let mut bird = Bird::start(&t, bird_spec("tor-pw-1a2b")).unwrap();
    let (sa, sb) = (d.join("na.sock"), d.join("nb.sock"));
    let _na = start_node(&a, "na", &db, d);
    let _nb = start_node(&b, "nb", &db, d);

    // The mesh runs with MD5 between two tortie nodes.
    wait("the mesh session with MD5", 60, || established(&sa, NB));
    assert!(established(&sb, "10.81.0.1"));
    // The BIRD session is held back: its secret is missing, and says so.
    wait("the missing secret in node status", 30, || {
        peer(&sa, TOR).is_some_and(|p| {
            p.state == "Idle"
                && p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("bgp-secrets/tor") && e.contains("does not exist"))
        })
    });
    assert!(!bird.established(), "BIRD session without the secret");

    // The secret appears: the session comes up, signed (BIRD requires it).
    write_secret(d, "bgp-secrets", "tor", "tor-pw-1a2b");
    wait("the BIRD session with MD5", 60, || {
        bird.established() && established(&sa, TOR)
    });
    let mesh_since = peer(&sa, NB).unwrap().since;

    // Rotation to a password BIRD does not have: that session goes down
    // and does not come back; tortie tried and says why.
    write_secret(d, "bgp-secrets", "tor", "tor-pw-2c3d");
    wait("the BIRD session down after the rotation", 30, || {
        !bird.established() && !established(&sa, TOR)
    });
    // BIRD's kernel drops our SYNs signed with the new key (its MD5
    // failure counter grows) and node status says why the connect failed.
    let failures = md5_failures(&t);
    wait("BIRD's kernel refusing our signature", 60, || {
        md5_failures(&t) > failures
    });
    wait("the failed attempt in node status", 60, || {
        peer(&sa, TOR).is_some_and(|p| {
            p.state != "Established"
                && p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("TCP-MD5"))
        })
    });
    assert!(!bird.established(), "a session with the wrong password");
    assert_eq!(peer(&sa, NB).unwrap().since, mesh_since, "mesh reset");
    assert!(established(&sa, NB));

    // BIRD gets the new password: the session is back.
    bird.set_password(Some("tor-pw-2c3d")).unwrap();
    wait("the BIRD session with the rotated password", 60, || {
        bird.established() && established(&sa, TOR)
    });
    assert_eq!(peer(&sa, NB).unwrap().since, mesh_since, "mesh reset");

    // No password anywhere it could leak.
    let status_json = serde_json::to_string(&status(&sa).unwrap()).unwrap();
    let metrics = a
        .exec(&["curl", "-s", "127.0.0.1:9099/metrics"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    assert!(metrics.contains("tortie_bgp_peer_state"), "{metrics}");
    let log_a = std::fs::read_to_string(d.join("na.log")).unwrap();
    let log_b = std::fs::read_to_string(d.join("nb.log")).unwrap();
    assert!(log_a.contains("password cannot be read"), "{log_a}");
    for pw in ["mesh-pw-7f3a", "tor-pw-1a2b", "tor-pw-2c3d"] {
        for (what, text) in [
            ("status", &status_json),
            ("metrics", &metrics),
            ("na log", &log_a),
            ("nb log", &log_b),
        ] {
            assert!(!text.contains(pw), "{pw} in the {what}");
        }
    }
}
