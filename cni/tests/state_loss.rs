//! A repeated ADD after the plugin's state directory was wiped while the
//! pod kept its interface (a reboot that cleared the state but not the
//! netns, an operator's `rm`): the WorkloadEndpoint and the IPAM handle are
//! the source of truth, the existing veth is verified and reused, and a
//! failure undoes only what that ADD itself created — never the address
//! the pod is using.

mod common;

use common::store::{allocations, apply, conf, handle_exists, sqlite_url, weps, POOL_V4};
use common::{pod_ip, with_prev, Call, Node};
use tortie_testkit::Netns;

fn ping(from: &Netns, to: &str) -> bool {
    from.exec(&["ping", "-c1", "-W2", to]).is_ok()
}

fn wipe_state(node: &Node) {
    std::fs::remove_dir_all(node.dir.path().join("state")).unwrap();
}

fn pod_has(pod: &Netns, ip: &str) -> bool {
    pod.ip_out(&["-o", "addr", "show", "dev", "eth0"])
        .map(|o| o.contains(&format!("inet {ip}/32")))
        .unwrap_or(false)
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn repeated_add_after_the_state_dir_was_wiped_rebuilds_the_same_result() {
    let node = Node::new("sl");
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let conf = conf(&node, &url, "1.0.0");
    let (a, b) = (node.pod("a"), node.pod("b"));
    let a_path = a.path();
    let call_a = Call::new("ADD", "sla", Some(&a_path), "web-0");
    let first = node.run(&call_a, &conf);
    assert!(first.ok, "ADD: {}", first.stdout);
    let rb = node.run(
        &Call::new("ADD", "slb", Some(b.path().as_str()), "web-1"),
        &conf,
    );
    assert!(rb.ok, "ADD: {}", rb.stdout);
    let ip = pod_ip(&first.json);
    let before = allocations(&node, &url);

    wipe_state(&node);
    let again = node.run(&call_a, &conf);
    assert!(again.ok, "repeated ADD after state loss: {}", again.stdout);
    assert_eq!(again.json, first.json, "the same result, MACs included");
    assert_eq!(allocations(&node, &url), before, "no address moved");
    assert!(handle_exists(&node, &url, "sla"));
    assert!(pod_has(&a, &ip), "the pod kept {ip}");
    assert_eq!(node.cali_links().len(), 2);
    assert_eq!(weps(&node, &url).len(), 2);
    assert!(ping(&b, &ip), "b -> a still works");
    assert!(
        node.dir
            .path()
            .join("state/attachments/sla+eth0.json")
            .exists(),
        "the state is recorded again"
    );
    let check = node.run(
        &Call::new("CHECK", "sla", Some(a.path().as_str()), "web-0"),
        &with_prev(&conf, &again.json),
    );
    assert!(check.ok, "CHECK: {}", check.stdout);
    let del = node.run(
        &Call::new("DEL", "sla", Some(a.path().as_str()), "web-0"),
        &conf,
    );
    assert!(del.ok, "DEL: {}", del.stdout);
    assert!(!handle_exists(&node, &url, "sla"));
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
#[cfg(debug_assertions)] // the fault switch exists in debug builds only
fn a_failing_repeated_add_after_state_loss_releases_nothing_the_pod_uses() {
    let node = Node::new("sf");
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let conf = conf(&node, &url, "1.0.0");
    let (a, b) = (node.pod("a"), node.pod("b"));
    let a_path = a.path();
    let first = node.run(&Call::new("ADD", "sfa", Some(&a_path), "web-0"), &conf);
    assert!(first.ok, "ADD: {}", first.stdout);
    let rb = node.run(
        &Call::new("ADD", "sfb", Some(b.path().as_str()), "web-1"),
        &conf,
    );
    assert!(rb.ok, "ADD: {}", rb.stdout);
    let ip = pod_ip(&first.json);
    let before = allocations(&node, &url);

    for step in ["ipam", "veth", "pod", "endpoint"] {
        wipe_state(&node);
        let env = [("TORTIE_CNI_FAIL_AFTER", step)];
        let mut call = Call::new("ADD", "sfa", Some(&a_path), "web-0");
        call.extra_env = &env;
        let o = node.run(&call, &conf);
        assert_eq!(o.json["code"], 199, "{step}: {}", o.stdout);
        assert!(
            handle_exists(&node, &url, "sfa"),
            "{step}: the rollback released the address the pod uses"
        );
        assert_eq!(allocations(&node, &url), before, "{step}");
        assert_eq!(
            node.cali_links().len(),
            2,
            "{step}: {:?}",
            node.cali_links()
        );
        assert!(pod_has(&a, &ip), "{step}: the pod lost {ip}");
        assert_eq!(
            weps(&node, &url).len(),
            2,
            "{step}: the endpoint of the pod is gone"
        );
        assert!(ping(&b, &ip), "{step}: b -> a");
    }
    let again = node.run(&Call::new("ADD", "sfa", Some(&a_path), "web-0"), &conf);
    assert!(again.ok, "{}", again.stdout);
    assert_eq!(again.json, first.json);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn repeated_add_after_state_loss_with_host_local_fails_clearly_and_keeps_the_pod() {
    let node = Node::new("sh");
    let conf = node.conf("1.0.0", "10.77.10.0/24");
    let a = node.pod("a");
    let a_path = a.path();
    let call = Call::new("ADD", "sha", Some(&a_path), "web-0");
    let first = node.run(&call, &conf);
    assert!(first.ok, "ADD: {}", first.stdout);
    let ip = pod_ip(&first.json);
    wipe_state(&node);
    let again = node.run(&call, &conf);
    // host-local refuses a second allocation for the container and cannot
    // say which address it holds: the ADD fails, saying why, and undoes nothing.
    assert!(!again.ok, "{}", again.stdout);
    let text = again.json.to_string();
    assert!(
        text.contains("already attached")
            && text.contains("record in")
            && text.contains("DEL the container"),
        "the error says why: {text}"
    );
    assert_eq!(node.host_local_allocations().len(), 1, "address kept");
    assert_eq!(node.cali_links().len(), 1);
    assert!(pod_has(&a, &ip), "the pod kept {ip}");
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn a_late_del_of_a_replaced_sandbox_keeps_the_new_sandboxs_endpoint_and_veth() {
    let node = Node::new("sr");
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let conf = conf(&node, &url, "1.0.0");
    let (old, new) = (node.pod("old"), node.pod("new"));
    let (old_ns, new_ns) = (old.path(), new.path());
    let r1 = node.run(&Call::new("ADD", "sr1", Some(&old_ns), "web-0"), &conf);
    let r2 = node.run(&Call::new("ADD", "sr2", Some(&new_ns), "web-0"), &conf);
    assert!(r1.ok && r2.ok, "{} {}", r1.stdout, r2.stdout);
    // With the state gone only the endpoint tells who owns the pod now.
    wipe_state(&node);
    let del = node.run(&Call::new("DEL", "sr1", Some(&old_ns), "web-0"), &conf);
    assert!(del.ok, "{}", del.stdout);
    assert!(
        !handle_exists(&node, &url, "sr1"),
        "the old sandbox's address released"
    );
    assert!(handle_exists(&node, &url, "sr2"));
    let endpoints = common::store::wep_list(&node, &url);
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].spec.container_id, "sr2");
    assert_eq!(node.cali_links().len(), 1, "the new sandbox keeps its veth");
    let ip = pod_ip(&r2.json);
    assert!(pod_has(&new, &ip));
    assert!(node.host.exec(&["ping", "-c1", "-W2", &ip]).is_ok());
}
