//! The agent's servers through the binary (no root needed): a tortie-node
//! with `--dataplane none` on a SQLite file in a temp folder, its HTTP
//! server and control socket on loopback and in the temp folder, started
//! with at most 256 file descriptors. 600 idle connections to each server
//! (more than its descriptors, far more than the cap, all well within the
//! read deadline) do not stop `/livez`, `/metrics` or `node status`;
//! SIGTERM stops the agent with exit status 0 and removes the control
//! socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tortie_node::api::{query, Request, Response};
use tortie_testkit::{free_port, wait_until, ChildGuard};

fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Idle connections per server.
const IDLE: usize = 600;

fn start(dir: &Path, http: SocketAddr) -> ChildGuard {
    start_with(dir, http, &["--node-ip", "127.0.0.1/8"])
}

fn start_with(dir: &Path, http: SocketAddr, extra: &[&str]) -> ChildGuard {
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=256:256", "--"])
        .arg(env!("CARGO_BIN_EXE_tortie-node"))
        .args(["--dataplane", "none", "--node-name", "srv"])
        .args(extra)
        .arg("--datastore")
        .arg(format!("sqlite://{}", dir.join("t.db").display()))
        .args(["--bgp-port", &free_port().to_string()])
        .args(["--http-addr", &http.to_string()])
        .arg("--control-socket")
        .arg(dir.join("node.sock"))
        .env_remove("TORTIE_DATASTORE")
        .stdout(std::fs::File::create(dir.join("log")).unwrap())
        .stderr(std::fs::File::create(dir.join("err")).unwrap());
    ChildGuard::spawn("tortie-node", &mut cmd).unwrap()
}

#[test]
fn idle_connections_stop_neither_health_checks_nor_the_status_socket_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let sock = dir.path().join("node.sock");
    let mut agent = start(dir.path(), http);
    let log = || std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
    let up = wait_until(
        "/livez",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || get(http, "/livez").is_ok_and(|r| r.starts_with("HTTP/1.1 200")),
    );
    assert!(up.is_ok(), "{up:?}: {}", log());

    // Idle connections to each server: more than the agent's descriptors,
    // and they stay silent well within the read deadline (5 s).
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard).unwrap();
    let idle_http: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(http).unwrap())
        .collect();
    let idle_ctl: Vec<UnixStream> = (0..IDLE)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    for i in 0..20 {
        let r = get(http, "/livez").unwrap_or_else(|e| panic!("/livez #{i}: {e}"));
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok\n"), "{r}");
        match query(&sock, &Request::Status) {
            Ok(Response::Status(s)) => assert_eq!(s.node, "srv"),
            other => panic!("node status #{i}: {other:?}"),
        }
    }
    let m = get(http, "/metrics").unwrap();
    assert!(
        m.contains("tortie_bgp_peer_state") || m.contains("# HELP"),
        "{m}"
    );
    // A request that never ends is cut off, not served forever.
    let mut slow = TcpStream::connect(http).unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
    drop((idle_http, idle_ctl));

    agent.signal(15);
    let stopped = wait_until(
        "exit after SIGTERM",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || agent.try_exit().is_some(),
    );
    assert!(stopped.is_ok(), "{stopped:?}: {}", log());
    let status = agent.try_exit().unwrap();
    assert!(status.success(), "exit {status:?}: {}", log());
    assert!(!sock.exists(), "the control socket was left behind");
    assert!(log().contains("stopped"), "{}", log());
    assert!(
        !log().contains('\x1b'),
        "colour escapes in a log file: {}",
        log()
    );
}

#[test]
fn json_logs_on_request_and_a_bare_node_ip_gets_its_interface_prefix_length() {
    let dir = tempfile::tempdir().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut agent = start_with(
        dir.path(),
        http,
        &["--node-ip", "127.0.0.1", "--log-format", "json"],
    );
    let log = || std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
    let registered = wait_until(
        "the Node registered",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || log().contains("registering Node resource"),
    );
    assert!(registered.is_ok(), "{}", log());
    agent.signal(15);
    wait_until(
        "exit",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || agent.try_exit().is_some(),
    )
    .unwrap();
    let lines: Vec<serde_json::Value> = log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let reg = lines
        .iter()
        .find(|v| v["fields"]["message"] == "registering Node resource")
        .expect("the registration line");
    assert_eq!(reg["fields"]["ip"], "127.0.0.1/8", "{reg}");

    let out = Command::new(env!("CARGO_BIN_EXE_tortie-node"))
        .args(["--node-ip", "192.0.2.77", "--dataplane", "none"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no interface") && err.contains("192.0.2.77/24"),
        "{err}"
    );
}
