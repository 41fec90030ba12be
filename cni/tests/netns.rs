//! The `tortie` plugin driven as a runtime drives it, against namespaces the
//! test creates (a node's host namespace, its pods), with host-local as IPAM.

mod common;

use std::time::Duration;

use common::{pod_ip, with_prev, Call, Node};
use serde_json::json;
use tortie_testkit::wait_until;

fn ping(from: &tortie_testkit::Netns, to: &str) -> bool {
    from.exec(&["ping", "-c1", "-W2", to]).is_ok()
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn add_check_del_round_trip_wires_and_unwires_the_pod() {
    let node = Node::new("rt");
    let pod = node.pod("p1");
    let conf = node.conf("1.0.0", "10.77.0.0/24");
    let ns = pod.path();
    let add = node.run(&Call::new("ADD", "rt1", Some(&ns), "web-0"), &conf);
    assert!(add.ok, "ADD: {}", add.stdout);
    let r = &add.json;
    assert_eq!(r["cniVersion"], "1.0.0");
    let host_if = r["interfaces"][0]["name"].as_str().unwrap();
    assert!(
        host_if.starts_with("cali") && host_if.len() == 15,
        "{host_if}"
    );
    assert_eq!(r["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(r["interfaces"][1]["sandbox"], json!(ns));
    assert!(r["ips"][0]["address"].as_str().unwrap().ends_with("/32"));
    assert_eq!(r["ips"][0]["interface"], 1);
    assert!(
        r["ips"][0].get("version").is_none(),
        "1.0.0 has no ips[].version"
    );
    let ip = pod_ip(r);

    let host_routes = node.host.ip_out(&["route", "show", &ip]).unwrap();
    assert!(
        host_routes.contains(&format!("dev {host_if} proto 80 scope link")),
        "{host_routes}"
    );
    let proxy_arp = node
        .host
        .exec(&[
            "cat",
            &format!("/proc/sys/net/ipv4/conf/{host_if}/proxy_arp"),
        ])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&proxy_arp.stdout).trim(), "1");
    let pod_routes = pod.ip_out(&["route"]).unwrap();
    assert!(
        pod_routes.contains("default via 169.254.1.1 dev eth0"),
        "{pod_routes}"
    );
    assert!(
        pod_routes.contains("169.254.1.1 dev eth0 scope link"),
        "{pod_routes}"
    );
    assert!(pod
        .ip_out(&["addr", "show", "eth0"])
        .unwrap()
        .contains(&format!("inet {ip}/32")));

    let check = node.run(
        &Call::new("CHECK", "rt1", Some(&ns), "web-0"),
        &with_prev(&conf, r),
    );
    assert!(check.ok, "CHECK: {}", check.stdout);

    let del = node.run(
        &Call::new("DEL", "rt1", Some(&ns), "web-0"),
        &with_prev(&conf, r),
    );
    assert!(del.ok, "DEL: {}", del.stdout);
    assert!(node.cali_links().is_empty(), "{:?}", node.cali_links());
    assert!(node.host_local_allocations().is_empty());
    assert!(!pod.ip_out(&["link"]).unwrap().contains("eth0"));
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn check_notices_a_missing_address_or_route() {
    let node = Node::new("ck");
    let pod = node.pod("p1");
    let conf = node.conf("0.4.0", "10.77.1.0/24");
    let ns = pod.path();
    let add = node.run(&Call::new("ADD", "ck1", Some(&ns), "web-0"), &conf);
    assert!(add.ok, "{}", add.stdout);
    assert_eq!(
        add.json["ips"][0]["version"], "4",
        "0.4.0 results carry ips[].version"
    );
    let ip = pod_ip(&add.json);
    pod.ip(&["route", "del", "default"]).unwrap();
    let check = node.run(
        &Call::new("CHECK", "ck1", Some(&ns), "web-0"),
        &with_prev(&conf, &add.json),
    );
    assert!(!check.ok);
    assert!(check.stdout.contains("default route"), "{}", check.stdout);
    pod.ip(&["addr", "del", &format!("{ip}/32"), "dev", "eth0"])
        .unwrap();
    let check = node.run(
        &Call::new("CHECK", "ck1", Some(&ns), "web-0"),
        &with_prev(&conf, &add.json),
    );
    assert!(check.stdout.contains("address"), "{}", check.stdout);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn pods_on_one_node_ping_each_other_and_the_host() {
    let node = Node::new("pg");
    let (a, b) = (node.pod("a"), node.pod("b"));
    let conf = node.conf("0.3.1", "10.77.2.0/24");
    let ra = node.run(&Call::new("ADD", "pga", Some(&a.path()), "a"), &conf);
    let rb = node.run(&Call::new("ADD", "pgb", Some(&b.path()), "b"), &conf);
    assert!(ra.ok && rb.ok, "{} {}", ra.stdout, rb.stdout);
    assert!(ping(&a, &pod_ip(&rb.json)), "a -> b");
    assert!(ping(&b, &pod_ip(&ra.json)), "b -> a");
    assert!(ping(&a, "10.98.0.1"), "a -> host");
    assert!(
        node.host
            .exec(&["ping", "-c1", "-W2", &pod_ip(&ra.json)])
            .is_ok(),
        "host -> a"
    );
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn repeated_add_returns_the_same_result() {
    let node = Node::new("rp");
    let pod = node.pod("p1");
    let conf = node.conf("1.0.0", "10.77.3.0/24");
    let ns = pod.path();
    let call = Call::new("ADD", "rp1", Some(&ns), "web-0");
    let first = node.run(&call, &conf);
    let second = node.run(&call, &conf);
    assert!(first.ok && second.ok, "{} {}", first.stdout, second.stdout);
    assert_eq!(first.json, second.json);
    assert_eq!(node.host_local_allocations().len(), 1);
    assert_eq!(node.cali_links().len(), 1);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn del_after_the_netns_vanished_succeeds_and_releases_the_address() {
    let node = Node::new("gn");
    let pod = node.pod("p1");
    let ns = pod.path();
    let conf = node.conf("1.0.0", "10.77.4.0/24");
    assert!(
        node.run(&Call::new("ADD", "gn1", Some(&ns), "web-0"), &conf)
            .ok
    );
    drop(pod);
    wait_until(
        "veth gone with its namespace",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || node.cali_links().is_empty(),
    )
    .unwrap();
    let del = node.run(&Call::new("DEL", "gn1", Some(&ns), "web-0"), &conf);
    assert!(del.ok, "{}", del.stdout);
    assert!(node.host_local_allocations().is_empty());
    let del = node.run(&Call::new("DEL", "gn1", None, "web-0"), &conf);
    assert!(del.ok, "a second DEL without CNI_NETNS: {}", del.stdout);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn del_of_a_container_never_added_succeeds() {
    let node = Node::new("dn");
    let conf = node.conf("1.0.0", "10.77.5.0/24");
    let del = node.run(&Call::new("DEL", "never", None, "ghost"), &conf);
    assert!(del.ok, "{}", del.stdout);
}

/// A failure or a panic after any step: error JSON on stdout, non-zero
/// exit, nothing left. (The fault switch exists in debug builds only.)
#[test]
#[ignore = "root: creates network namespaces and veths"]
#[cfg(debug_assertions)]
fn a_failure_or_panic_mid_add_leaves_nothing_behind() {
    let node = Node::new("fl");
    let pod = node.pod("p1");
    let ns = pod.path();
    let conf = node.conf("1.0.0", "10.77.6.0/24");
    for step in [
        "ipam",
        "veth",
        "pod",
        "ipam:panic",
        "veth:panic",
        "pod:panic",
    ] {
        let env = [("TORTIE_CNI_FAIL_AFTER", step)];
        let mut call = Call::new("ADD", "fl1", Some(&ns), "web-0");
        call.extra_env = &env;
        let o = node.run(&call, &conf);
        assert!(!o.ok, "{step}: ADD should fail");
        let code = if step.ends_with(":panic") { 110 } else { 199 };
        assert_eq!(o.json["code"], code, "{step}: {}", o.stdout);
        assert_eq!(o.json["cniVersion"], "1.0.0", "{step}: {}", o.stdout);
        assert!(
            node.cali_links().is_empty(),
            "{step}: veth left: {:?}",
            node.cali_links()
        );
        assert!(
            node.host_local_allocations().is_empty(),
            "{step}: address left"
        );
        assert!(
            !pod.ip_out(&["link"]).unwrap().contains("eth0"),
            "{step}: pod end left"
        );
        assert!(!node
            .dir
            .path()
            .join("state/attachments/fl1+eth0.json")
            .exists());
    }
    let ok = node.run(&Call::new("ADD", "fl1", Some(&ns), "web-0"), &conf);
    assert!(ok.ok, "a clean ADD after the failures: {}", ok.stdout);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn chained_portmap_gets_our_result_and_both_delete_cleanly() {
    let node = Node::new("pm");
    let pod = node.pod("p1");
    let ns = pod.path();
    let conf = node.conf("1.0.0", "10.77.7.0/24");
    let call = Call::new("ADD", "pm1", Some(&ns), "web-0");
    let add = node.run(&call, &conf);
    assert!(add.ok, "{}", add.stdout);
    // What a runtime does for a conflist [tortie, portmap]: name and version
    // from the list, prevResult = tortie's result, runtimeConfig for portmap.
    let portmap_conf = json!({
        "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": add.json,
    });
    let portmap = std::path::Path::new("/usr/lib/cni/portmap");
    let pm = common::run_plugin(portmap, Some(node.host.name()), &call, &portmap_conf);
    assert!(pm.ok, "portmap ADD: {}", pm.stdout);
    assert_eq!(
        pm.json["ips"], add.json["ips"],
        "portmap passes our result on"
    );
    let nat = node.host.exec(&["iptables-save", "-t", "nat"]).unwrap();
    let nat = String::from_utf8_lossy(&nat.stdout);
    assert!(
        nat.contains(&format!("{}:80", pod_ip(&add.json))),
        "DNAT to the pod: {nat}"
    );
    let del_call = Call::new("DEL", "pm1", Some(&ns), "web-0");
    assert!(common::run_plugin(portmap, Some(node.host.name()), &del_call, &portmap_conf).ok);
    assert!(node.run(&del_call, &with_prev(&conf, &add.json)).ok);
    assert!(node.cali_links().is_empty());
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn twenty_concurrent_adds_get_distinct_working_addresses() {
    let node = Node::new("cc");
    let conf = node.conf("1.0.0", "10.77.8.0/24");
    let pods: Vec<_> = (0..20).map(|i| node.pod(&format!("c{i}"))).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (node, conf) = (&node, &conf);
                s.spawn(move || {
                    let id = format!("cc{i}");
                    let ns = p.path();
                    let name = format!("pod-{i}");
                    node.run(&Call::new("ADD", &id, Some(&ns), &name), conf)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = results
        .iter()
        .map(|r| {
            assert!(r.ok, "{}", r.stdout);
            pod_ip(&r.json)
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "distinct addresses");
    assert_eq!(node.cali_links().len(), 20);
    assert!(ping(&pods[0], &ips[19]) && ping(&pods[19], &ips[0]));
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn dual_stack_pods_get_v4_and_v6_and_reach_each_other() {
    let node = Node::new("ds");
    // What felix does on a real node: IPv6 forwarding is global.
    node.host
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        .unwrap();
    let mut conf = node.conf("1.0.0", "10.77.9.0/24");
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.77.9.0/24"}], [{"subnet": "fd00:77::/64"}]]);
    let (a, b) = (node.pod("a"), node.pod("b"));
    let ra = node.run(&Call::new("ADD", "dsa", Some(&a.path()), "a"), &conf);
    let rb = node.run(&Call::new("ADD", "dsb", Some(&b.path()), "b"), &conf);
    assert!(ra.ok && rb.ok, "{} {}", ra.stdout, rb.stdout);
    let v6_of = |r: &serde_json::Value| {
        r["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ip| ip["address"].as_str().unwrap().to_string())
            .find(|a| a.contains(':'))
            .expect("an IPv6 address")
    };
    let b6 = v6_of(&rb.json);
    assert!(b6.ends_with("/128"), "{b6}");
    let routes = a.ip_out(&["-6", "route"]).unwrap();
    assert!(
        routes.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{routes}"
    );
    let b6 = b6.trim_end_matches("/128");
    let ok = wait_until(
        "a reaches b over IPv6",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || a.exec(&["ping", "-6", "-c1", "-W1", b6]).is_ok(),
    );
    assert!(ok.is_ok(), "{ok:?}");
    let check = node.run(
        &Call::new("CHECK", "dsa", Some(&a.path()), "a"),
        &with_prev(&conf, &ra.json),
    );
    assert!(check.ok, "{}", check.stdout);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn a_late_del_of_a_replaced_sandbox_leaves_the_new_one_alone() {
    let node = Node::new("ls");
    let conf = node.conf("1.0.0", "10.77.11.0/24");
    let (old, new) = (node.pod("old"), node.pod("new"));
    let (old_ns, new_ns) = (old.path(), new.path());
    // The pod's sandbox is recreated: a new container ID, the same pod name
    // (so the same host veth name), and the old DEL arrives late.
    let r1 = node.run(&Call::new("ADD", "ls1", Some(&old_ns), "web-0"), &conf);
    let r2 = node.run(&Call::new("ADD", "ls2", Some(&new_ns), "web-0"), &conf);
    assert!(r1.ok && r2.ok, "{} {}", r1.stdout, r2.stdout);
    assert_eq!(
        r1.json["interfaces"][0]["name"],
        r2.json["interfaces"][0]["name"]
    );
    let del = node.run(&Call::new("DEL", "ls1", Some(&old_ns), "web-0"), &conf);
    assert!(del.ok, "{}", del.stdout);
    assert_eq!(node.cali_links().len(), 1, "the new sandbox keeps its veth");
    assert_eq!(
        node.host_local_allocations().len(),
        1,
        "only ls1's address released"
    );
    let check = node.run(
        &Call::new("CHECK", "ls2", Some(&new_ns), "web-0"),
        &with_prev(&conf, &r2.json),
    );
    assert!(check.ok, "{}", check.stdout);
    assert!(node
        .host
        .exec(&["ping", "-c1", "-W2", &pod_ip(&r2.json)])
        .is_ok());
}
