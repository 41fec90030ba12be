//! Dual stack through `tortie-ipam`: an IPv4 and an IPv6 IPPool in the
//! datastore, a config asking for both families (`assign_ipv4`/`assign_ipv6`,
//! `ipv4_pools`/`ipv6_pools` as Calico writes them), pods wired with a /32
//! and a /128 and reachable over both families on one node.

mod common;

use std::time::Duration;

use common::store::{allocations, apply, conf, handle_exists, sqlite_url, wep_list};
use common::{with_prev, Call, Node};
use serde_json::{json, Value};
use tortie_testkit::{wait_until, Netns};

const POOLS: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pods-v4
spec:
  cidr: 10.80.0.0/16
  blockSize: 26
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pods-v6
spec:
  cidr: fd00:80::/48
  blockSize: 122
";

/// The pod's (IPv4, IPv6) addresses of an ADD result, as `addr/len`.
fn addresses(r: &Value) -> (String, String) {
    let ips: Vec<&str> = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 2, "one address per family: {r}");
    let v4 = ips.iter().find(|a| !a.contains(':')).expect("IPv4");
    let v6 = ips.iter().find(|a| a.contains(':')).expect("IPv6");
    (v4.to_string(), v6.to_string())
}

fn bare(a: &str) -> &str {
    a.split('/').next().unwrap()
}

fn reaches(from: &Netns, to: &str, v6: bool) -> bool {
    let what = format!("ping {to}");
    let family = if v6 { "-6" } else { "-4" };
    wait_until(
        &what,
        Duration::from_secs(5),
        Duration::from_millis(50),
        || from.exec(&["ping", family, "-c1", "-W1", to]).is_ok(),
    )
    .is_ok()
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn dual_stack_pods_from_tortie_ipam_get_a_32_and_a_128_and_reach_each_other() {
    let node = Node::new("d6");
    // What felix does on a real node: IPv6 forwarding is global.
    node.host
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        .unwrap();
    let url = sqlite_url(&node);
    apply(&node, &url, POOLS);
    let mut conf = conf(&node, &url, "1.0.0");
    conf["ipam"] = json!({"type": "tortie-ipam", "assign_ipv4": "true", "assign_ipv6": "true",
                          "ipv4_pools": ["10.80.0.0/16"], "ipv6_pools": ["fd00:80::/48"]});
    let (a, b) = (node.pod("a"), node.pod("b"));
    let (a_path, b_path) = (a.path(), b.path());
    let ra = node.run(&Call::new("ADD", "d6a", Some(&a_path), "web-0"), &conf);
    assert!(ra.ok, "ADD: {}", ra.stdout);
    let rb = node.run(&Call::new("ADD", "d6b", Some(&b_path), "web-1"), &conf);
    assert!(rb.ok, "ADD: {}", rb.stdout);

    let (a4, a6) = addresses(&ra.json);
    let (b4, b6) = addresses(&rb.json);
    assert!(a4.starts_with("10.80.") && a4.ends_with("/32"), "{a4}");
    assert!(a6.starts_with("fd00:80:") && a6.ends_with("/128"), "{a6}");
    assert!(ra.json["ips"]
        .as_array()
        .unwrap()
        .iter()
        .all(|ip| ip["interface"] == 1));
    assert_eq!(
        ra.json["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
               {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}])
    );

    // Pod side: both addresses, both default routes.
    let addrs = a.ip_out(&["addr", "show", "eth0"]).unwrap();
    assert!(addrs.contains(&format!("inet {a4}")), "{addrs}");
    assert!(addrs.contains(&format!("inet6 {a6}")), "{addrs}");
    let r4 = a.ip_out(&["-4", "route"]).unwrap();
    assert!(r4.contains("default via 169.254.1.1 dev eth0"), "{r4}");
    let r6 = a.ip_out(&["-6", "route"]).unwrap();
    assert!(
        r6.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{r6}"
    );

    // Host side: the gateway link-local on the veth, a /32 and a /128 to it.
    let veth = ra.json["interfaces"][0]["name"].as_str().unwrap();
    let ll = node
        .host
        .ip_out(&["-6", "addr", "show", "dev", veth])
        .unwrap();
    assert!(ll.contains("fe80::ecee:eeff:feee:eeee/64"), "{ll}");
    let h4 = node
        .host
        .ip_out(&["-4", "route", "show", bare(&a4)])
        .unwrap();
    assert!(
        h4.contains(&format!("dev {veth} proto 80 scope link")),
        "{h4}"
    );
    let h6 = node.host.ip_out(&["-6", "route", "show", &a6]).unwrap();
    assert!(h6.contains(&format!("dev {veth} proto 80")), "{h6}");

    assert!(reaches(&a, bare(&b4), false), "a -> b over IPv4");
    assert!(reaches(&a, bare(&b6), true), "a -> b over IPv6");
    assert!(reaches(&b, bare(&a6), true), "b -> a over IPv6");

    let wep = wep_list(&node, &url)
        .into_iter()
        .find(|w| w.spec.container_id == "d6a")
        .expect("endpoint of d6a");
    let nets: Vec<String> = wep.spec.ip_networks.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, vec![a4.clone(), a6.clone()]);

    let check = node.run(
        &Call::new("CHECK", "d6a", Some(&a_path), "web-0"),
        &with_prev(&conf, &ra.json),
    );
    assert!(check.ok, "CHECK: {}", check.stdout);

    let del = node.run(&Call::new("DEL", "d6a", Some(&a_path), "web-0"), &conf);
    assert!(del.ok, "DEL: {}", del.stdout);
    assert!(!handle_exists(&node, &url, "d6a"));
    let left: Vec<String> = allocations(&node, &url)
        .into_iter()
        .map(|(ip, _)| ip)
        .collect();
    assert!(
        !left.contains(&bare(&a4).to_string()) && !left.contains(&bare(&a6).to_string()),
        "both of a's addresses released: {left:?}"
    );
    assert_eq!(left.len(), 2, "b keeps its two: {left:?}");
    assert!(handle_exists(&node, &url, "d6b"));
}
