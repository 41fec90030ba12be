//! Pod identities from every kind of runtime through ADD, CHECK and DEL
//! with `tortie-ipam` over SQLite: a Kubernetes pod (Calico's exact names),
//! podman (`K8S_POD_NAME` alone, a container name that is no DNS name),
//! Kubernetes-style args carrying names Kubernetes would refuse, and a plain
//! CNI caller (no `CNI_ARGS`). Every WorkloadEndpoint written must pass the
//! model's validation, and everything must be gone after DEL.

mod common;

use common::store::{apply, conf, handle_exists, sqlite_url, wep_list, POOL_V4};
use common::{pod_ip, with_prev, Call, Node};
use sha1::{Digest, Sha1};

/// A podman-style container name with `_`, `.`, upper case, 100 characters.
fn long_name() -> String {
    let n = format!("Happy_McNulty.v2_{}", "Ab_c.".repeat(17));
    n[..100].to_string()
}

/// 64 lower-case hex characters, as runtimes make container IDs.
fn runtime_id(seed: &str) -> String {
    let h = hex::encode(Sha1::digest(seed.as_bytes()));
    format!("{h}{h}")[..64].to_string()
}

fn cali_sha1(s: &str) -> String {
    format!("cali{}", &hex::encode(Sha1::digest(s.as_bytes()))[..11])
}

struct Case<'a> {
    tag: &'a str,
    cid: &'a str,
    cni_args: &'a str,
    want_veth: String,
}

/// ADD, CHECK, repeated ADD, DEL for `case`; returns the endpoint written.
fn round_trip(case: &Case<'_>) -> tortie_model::WorkloadEndpoint {
    let node = Node::new(case.tag);
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let conf = conf(&node, &url, "1.0.0");
    let pod = node.pod("p");
    let ns = pod.path();
    let call = |command| {
        let mut c = Call::new(command, case.cid, Some(&ns), "");
        c.cni_args = Some(case.cni_args);
        c
    };
    let add = node.run(&call("ADD"), &conf);
    assert!(add.ok, "ADD: {}", add.stdout);
    assert_eq!(add.json["interfaces"][0]["name"], case.want_veth.as_str());
    assert_eq!(node.cali_links(), vec![case.want_veth.clone()]);
    let weps = wep_list(&node, &url);
    assert_eq!(weps.len(), 1, "{weps:?}");
    let wep = weps[0].clone();
    assert_eq!(wep.validate(), vec![], "{wep:?}");
    assert_eq!(wep.spec.container_id, case.cid);
    assert_eq!(wep.spec.interface_name, case.want_veth);
    assert_eq!(
        wep.spec.ip_networks[0].addr().to_string(),
        pod_ip(&add.json)
    );
    let check = node.run(&call("CHECK"), &with_prev(&conf, &add.json));
    assert!(check.ok, "CHECK: {}", check.stdout);
    let again = node.run(&call("ADD"), &conf);
    assert_eq!(again.json, add.json, "repeated ADD");
    let del = node.run(&call("DEL"), &conf);
    assert!(del.ok, "DEL: {}", del.stdout);
    assert!(wep_list(&node, &url).is_empty(), "endpoint left");
    assert!(!handle_exists(&node, &url, case.cid), "address left");
    assert!(node.cali_links().is_empty(), "{:?}", node.cali_links());
    wep
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn a_kubernetes_pod_keeps_calicos_names() {
    let cid = runtime_id("k8s");
    let wep = round_trip(&Case {
        tag: "nk",
        cid: &cid,
        cni_args: &format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-abcde;K8S_POD_INFRA_CONTAINER_ID={cid}"
        ),
        want_veth: cali_sha1("kube-system.coredns-5d78c9869d-abcde"),
    });
    assert_eq!(
        wep.metadata.name,
        "node1-k8s-coredns--5d78c9869d--abcde-eth0"
    );
    assert_eq!(wep.metadata.namespace.as_deref(), Some("kube-system"));
    assert_eq!(wep.spec.orchestrator, "k8s");
    assert_eq!(wep.spec.pod, "coredns-5d78c9869d-abcde");
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn a_podman_container_name_with_underscores_dots_capitals_and_100_chars_works() {
    let cid = runtime_id("podman");
    let name = long_name();
    let wep = round_trip(&Case {
        tag: "np",
        cid: &cid,
        // What podman 4.3 passes (checked with a recording plugin).
        cni_args: &format!("IgnoreUnknown=1;K8S_POD_NAME={name}"),
        want_veth: format!("cali{}", &cid[..11]),
    });
    assert_eq!(wep.metadata.name, format!("node1-cni-{cid}-eth0"));
    assert_eq!(wep.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(wep.spec.orchestrator, "cni");
    assert!(
        wep.spec.workload.starts_with("happy-mcnulty.v2")
            || wep.spec.workload.starts_with("happy-mcnulty-v2"),
        "{}",
        wep.spec.workload
    );
    assert_eq!(
        wep.metadata
            .labels
            .get("projectcalico.org/orchestrator")
            .map(String::as_str),
        Some("cni")
    );
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn kubernetes_args_with_names_kubernetes_refuses_are_escaped() {
    let cid = runtime_id("escaped");
    let name = long_name();
    let wep = round_trip(&Case {
        tag: "ne",
        cid: &cid,
        cni_args: &format!("K8S_POD_NAMESPACE=My_Namespace;K8S_POD_NAME={name}"),
        want_veth: cali_sha1(&format!("My_Namespace.{name}")),
    });
    let ns = wep.metadata.namespace.clone().unwrap();
    assert!(ns.starts_with("my-namespace-"), "{ns}");
    assert!(
        wep.metadata
            .name
            .starts_with("node1-k8s-happy--mcnulty.v2--"),
        "{}",
        wep.metadata.name
    );
    assert!(wep.metadata.name.len() <= 253);
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn a_plain_cni_caller_without_args_gets_a_cni_endpoint_and_a_hashed_veth() {
    let cid = "Plain_Box.1";
    let wep = round_trip(&Case {
        tag: "nc",
        cid,
        cni_args: "",
        want_veth: cali_sha1(cid),
    });
    assert!(
        wep.metadata.name.starts_with("node1-cni-plain--box.1--"),
        "{}",
        wep.metadata.name
    );
    assert_eq!(wep.spec.workload, "");
}

#[test]
#[ignore = "root: creates network namespaces and veths"]
fn a_node_name_no_endpoint_can_carry_is_refused_before_anything_is_made() {
    let node = Node::new("nn");
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let mut conf = conf(&node, &url, "1.0.0");
    conf["nodename"] = serde_json::json!("Node_1");
    let pod = node.pod("p");
    let ns = pod.path();
    let add = node.run(&Call::new("ADD", "nn1", Some(&ns), "web-0"), &conf);
    assert!(!add.ok);
    assert_eq!(add.json["code"], 7, "{}", add.stdout);
    assert!(add.stdout.contains("nodename"), "{}", add.stdout);
    assert!(node.cali_links().is_empty());
    assert!(!handle_exists(&node, &url, "nn1"));
    let del = node.run(&Call::new("DEL", "nn1", Some(&ns), "web-0"), &conf);
    assert!(del.ok, "DEL: {}", del.stdout);
}
