//! `tortie` with `tortie-ipam` over a real datastore (SQLite and etcd):
//! addresses by handle from an IPPool, a WorkloadEndpoint per pod, both
//! gone after DEL or a failed ADD.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::store::{apply, conf, handle_exists, in_ns, sqlite_url, weps, POOL_V4};
use common::{pod_ip, Call, Node};
use tortie_datastore::{BlockingStore, OpenOptions};
use tortie_testkit::{free_port, wait_until, ChildGuard};

fn round_trip(node: &Node, url: &str) {
    apply(node, url, POOL_V4);
    let conf = conf(node, url, "1.0.0");
    let (a, b) = (node.pod("a"), node.pod("b"));
    let ra = node.run(&Call::new("ADD", "dsa", Some(&a.path()), "web-0"), &conf);
    assert!(ra.ok, "ADD: {}", ra.stdout);
    let rb = node.run(&Call::new("ADD", "dsb", Some(&b.path()), "web-1"), &conf);
    assert!(rb.ok, "ADD: {}", rb.stdout);
    assert!(pod_ip(&ra.json).starts_with("10.78."), "{}", ra.stdout);
    assert_ne!(pod_ip(&ra.json), pod_ip(&rb.json));
    assert!(a.exec(&["ping", "-c1", "-W2", &pod_ip(&rb.json)]).is_ok());
    let again = node.run(&Call::new("ADD", "dsa", Some(&a.path()), "web-0"), &conf);
    assert_eq!(again.json, ra.json, "repeated ADD");
    let check = node.run(
        &Call::new("CHECK", "dsa", Some(&a.path()), "web-0"),
        &common::with_prev(&conf, &ra.json),
    );
    assert!(check.ok, "CHECK: {}", check.stdout);
    let names = weps(node, url);
    assert!(
        names.contains(&"node1-k8s-web--0-eth0".to_string()),
        "{names:?}"
    );
    assert!(handle_exists(node, url, "dsa"));

    let del = node.run(&Call::new("DEL", "dsa", Some(&a.path()), "web-0"), &conf);
    assert!(del.ok, "DEL: {}", del.stdout);
    assert!(!handle_exists(node, url, "dsa"), "address released");
    assert_eq!(weps(node, url), vec!["node1-k8s-web--1-eth0".to_string()]);

    let env = [("TORTIE_CNI_FAIL_AFTER", "endpoint")];
    let a_path = a.path();
    let mut call = Call::new("ADD", "dsc", Some(&a_path), "web-2");
    call.extra_env = &env;
    let failed = node.run(&call, &conf);
    if cfg!(debug_assertions) {
        assert_eq!(failed.json["code"], 199, "{}", failed.stdout);
        assert!(
            !handle_exists(node, url, "dsc"),
            "rollback released the address"
        );
        assert_eq!(weps(node, url).len(), 1, "rollback deleted the endpoint");
        assert_eq!(node.cali_links().len(), 1);
    } else {
        // A release build never reads the test switch: the ADD goes through.
        assert!(
            failed.ok,
            "release build honoured the switch: {}",
            failed.stdout
        );
        assert_eq!(weps(node, url).len(), 2);
    }
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn sqlite_datastore_round_trip_with_tortie_ipam_and_endpoints() {
    let node = Node::new("sq");
    let url = sqlite_url(&node);
    round_trip(&node, &url);
}

#[test]
#[ignore = "root: creates network namespaces and runs etcd"]
fn etcd_datastore_round_trip_with_tortie_ipam_and_endpoints() {
    let node = Node::new("et");
    let (port, peer) = (free_port(), free_port());
    let data = node.dir.path().join("etcd");
    let client = format!("http://127.0.0.1:{port}");
    let mut cmd = node.host.command("etcd");
    cmd.args([
        "--data-dir",
        data.to_str().unwrap(),
        "--listen-client-urls",
        &client,
    ])
    .args(["--advertise-client-urls", &client])
    .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _etcd = ChildGuard::spawn("etcd", &mut cmd).unwrap();
    let url = format!("etcd://127.0.0.1:{port}");
    wait_until(
        "etcd answers",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            in_ns(&node.host, || {
                BlockingStore::open(&url, &OpenOptions::default())
                    .and_then(|s| s.get("/probe"))
                    .is_ok()
            })
        },
    )
    .unwrap();
    round_trip(&node, &url);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn twenty_concurrent_adds_over_sqlite_get_distinct_addresses_and_endpoints() {
    let node = Node::new("sc");
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let conf = conf(&node, &url, "1.0.0");
    let pods: Vec<_> = (0..20).map(|i| node.pod(&format!("c{i}"))).collect();
    let mut ips: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (node, conf) = (&node, &conf);
                sc.spawn(move || {
                    let (id, ns, pod) = (format!("sc{i}"), p.path(), format!("pod-{i}"));
                    let r = node.run(&Call::new("ADD", &id, Some(&ns), &pod), conf);
                    assert!(r.ok, "{}", r.stdout);
                    pod_ip(&r.json)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "distinct addresses");
    assert_eq!(weps(&node, &url).len(), 20);
}
