//! CNI 1.1.0 STATUS and GC of `tortie` (with `tortie-ipam` in-process over
//! SQLite), driven as a runtime drives them: STATUS answers 0 only while an
//! ADD can succeed, GC removes the addresses, endpoints, veths and state of
//! the attachments `cni.dev/valid-attachments` no longer lists.

mod common;

use common::store::{apply, conf, handle_exists, sqlite_url, weps, POOL_V4};
use common::{pod_ip, run_plugin, tortie_ipam_bin, Call, Node, Outcome};
use serde_json::{json, Value};
use tortie_testkit::free_port;

const TINY_POOL: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: tiny
spec:
  cidr: 10.79.0.0/30
  blockSize: 30
";

fn status(node: &Node, conf: &Value) -> Outcome {
    node.run(&Call::network("STATUS"), conf)
}

/// An IPAM-only ADD/DEL through the `tortie-ipam` binary (it never enters
/// CNI_NETNS, so the node's own namespace stands in for a pod's).
fn ipam(node: &Node, command: &str, cid: &str, conf: &Value) -> Outcome {
    let netns = node.host.path();
    let call = Call::new(command, cid, Some(&netns), cid);
    run_plugin(&tortie_ipam_bin(), Some(node.host.name()), &call, conf)
}

fn assert_unavailable(o: &Outcome, words: &[&str]) {
    assert!(!o.ok, "STATUS should fail: {}", o.stdout);
    assert_eq!(o.json["code"], 50, "{}", o.stdout);
    let msg = o.json["msg"].as_str().unwrap_or_default();
    for w in words {
        assert!(msg.contains(w), "{w:?} in {msg:?}");
    }
}

#[test]
#[ignore = "root: creates network namespaces"]
fn status_is_ok_only_while_the_datastore_answers_and_a_pool_has_room() {
    let node = Node::new("st");
    let url = sqlite_url(&node);
    let mut conf = conf(&node, &url, "1.1.0");

    assert_unavailable(&status(&node, &conf), &["IPv4 IPPool", "node1"]);

    apply(&node, &url, TINY_POOL);
    conf["ipam"]["ipv4_pools"] = json!(["10.79.0.0/30"]);
    let ok = status(&node, &conf);
    assert!(ok.ok && ok.stdout.trim().is_empty(), "{}", ok.stdout);

    for i in 0..4 {
        let o = ipam(&node, "ADD", &format!("full{i}"), &conf);
        assert!(o.ok, "{}", o.stdout);
    }
    assert!(!ipam(&node, "ADD", "full4", &conf).ok, "the pool is full");
    assert_unavailable(&status(&node, &conf), &["full", "10.79.0.0/30"]);

    assert!(ipam(&node, "DEL", "full0", &conf).ok);
    assert!(status(&node, &conf).ok, "room again after a DEL");

    let mut v6 = conf.clone();
    v6["ipam"]["assign_ipv6"] = json!("true");
    assert_unavailable(&status(&node, &v6), &["IPv6"]);

    let mut named = conf.clone();
    named["ipam"]["ipv4_pools"] = json!(["10.200.0.0/16"]);
    assert_unavailable(
        &status(&node, &named),
        &["ipam.ipv4_pools", "10.200.0.0/16"],
    );

    // Nothing listens there: the datastore does not answer.
    let mut down = conf.clone();
    let unreachable = format!("etcd://127.0.0.1:{}", free_port());
    down["datastore"] = json!(unreachable);
    assert_unavailable(&status(&node, &down), &[&unreachable]);
}

fn gc(node: &Node, conf: &Value, valid: Option<Value>) -> Outcome {
    let mut c = conf.clone();
    if let Some(v) = valid {
        c["cni.dev/valid-attachments"] = v;
    }
    node.run(&Call::network("GC"), &c)
}

fn state_files(node: &Node) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(node.dir.path().join("state/attachments"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn gc_removes_attachments_missing_from_the_list_and_keeps_the_listed_ones() {
    let node = Node::new("gc");
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let conf = conf(&node, &url, "1.1.0");
    let pods: Vec<_> = ["a", "b", "c", "d1", "d2"]
        .iter()
        .map(|n| node.pod(n))
        .collect();
    let paths: Vec<String> = pods.iter().map(|p| p.path()).collect();
    let add = |cid: &str, i: usize, pod: &str| {
        let o = node.run(&Call::new("ADD", cid, Some(&paths[i]), pod), &conf);
        assert!(o.ok, "ADD {cid}: {}", o.stdout);
        o.json
    };
    let ra = add("gca", 0, "web-0");
    add("gcb", 1, "web-1");
    add("gcc", 2, "web-2");
    // Pod web-3's sandbox recreated: a new container ID, the same veth name.
    add("gcd1", 3, "web-3");
    let rd = add("gcd2", 4, "web-3");
    // An address of a pod on another node: this node's GC must not touch it.
    let mut other = conf.clone();
    other["nodename"] = json!("node2");
    assert!(ipam(&node, "ADD", "gco", &other).ok);
    // gcc's state record is lost: GC finds it through its endpoint.
    std::fs::remove_file(node.dir.path().join("state/attachments/gcc+eth0.json")).unwrap();

    let refused = gc(&node, &conf, None);
    assert_eq!(refused.json["code"], 7, "{}", refused.stdout);
    assert!(refused.stdout.contains("cni.dev/valid-attachments"));
    assert_eq!(node.cali_links().len(), 4, "nothing removed");
    assert!(handle_exists(&node, &url, "gcb"));

    let valid = json!([{"containerID": "gca", "ifname": "eth0"},
                       {"containerID": "gcd2", "ifname": "eth0"}]);
    let o = gc(&node, &conf, Some(valid));
    assert!(o.ok, "GC: {}", o.stdout);

    for gone in ["gcb", "gcc", "gcd1"] {
        assert!(!handle_exists(&node, &url, gone), "{gone} released");
    }
    for kept in ["gca", "gcd2", "gco"] {
        assert!(handle_exists(&node, &url, kept), "{kept} kept");
    }
    let mut names = weps(&node, &url);
    names.sort();
    assert_eq!(
        names,
        vec!["node1-k8s-web--0-eth0", "node1-k8s-web--3-eth0"],
        "endpoints"
    );
    let mut links = node.cali_links();
    links.sort();
    let mut want = vec![
        ra["interfaces"][0]["name"].as_str().unwrap().to_string(),
        rd["interfaces"][0]["name"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(links, want, "host veths");
    assert_eq!(state_files(&node), vec!["gca+eth0.json", "gcd2+eth0.json"]);
    for (i, r) in [(0, &ra), (4, &rd)] {
        let ip = pod_ip(r);
        assert!(
            node.host.exec(&["ping", "-c1", "-W2", &ip]).is_ok(),
            "host -> {ip}"
        );
        assert!(pods[i]
            .ip_out(&["addr", "show", "eth0"])
            .unwrap()
            .contains(&ip));
    }
}
