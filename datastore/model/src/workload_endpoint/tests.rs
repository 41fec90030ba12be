use super::*;

fn wep() -> WorkloadEndpoint {
    WorkloadEndpoint {
        metadata: ObjectMeta {
            name: "node1-k8s-pod--a-eth0".into(),
            namespace: Some("ns1".into()),
            ..ObjectMeta::default()
        },
        spec: WorkloadEndpointSpec {
            orchestrator: "k8s".into(),
            node: "node1".into(),
            container_id: "abc123".into(),
            pod: "pod-a".into(),
            endpoint: "eth0".into(),
            interface_name: "cali12345678901".into(),
            mac: "ca:fe:1d:52:bb:e9".into(),
            ip_networks: vec!["10.244.1.5/32".parse().unwrap()],
            ..WorkloadEndpointSpec::default()
        },
    }
}

#[test]
fn a_cni_written_endpoint_is_valid_and_round_trips() {
    let w = wep();
    assert_eq!(w.validate(), vec![]);
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(v["metadata"]["namespace"], "ns1");
    assert_eq!(v["spec"]["containerID"], "abc123");
    assert_eq!(v["spec"]["ipNetworks"][0], "10.244.1.5/32");
    assert_eq!(v["spec"]["interfaceName"], "cali12345678901");
    let back: WorkloadEndpoint = serde_json::from_value(v).unwrap();
    assert_eq!(back, w);
}

#[test]
fn defaults_fill_namespace_and_orchestrator() {
    let mut w = wep();
    w.metadata.namespace = None;
    w.spec.orchestrator.clear();
    assert_eq!(w.namespace(), "default");
    w.apply_defaults();
    assert_eq!(w.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(w.spec.orchestrator, "k8s");
}

#[test]
fn bad_interface_mac_and_networks_are_rejected() {
    let mut w = wep();
    w.spec.interface_name = "cali123456789012".into();
    w.spec.mac = "nope".into();
    w.spec.ip_networks = vec!["10.244.1.5/24".parse().unwrap()];
    let paths: Vec<String> = w.validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        vec![
            "WorkloadEndpoint(ns1/node1-k8s-pod--a-eth0).spec.interfaceName",
            "WorkloadEndpoint(ns1/node1-k8s-pod--a-eth0).spec.mac",
            "WorkloadEndpoint(ns1/node1-k8s-pod--a-eth0).spec.ipNetworks[0]",
        ]
    );
}

#[test]
fn ports_accept_protocol_names_and_numbers() {
    let w: WorkloadEndpoint = serde_yaml::from_str(
        "metadata: {name: w}\nspec:\n  ports:\n  - {name: dns, protocol: UDP, port: 53}\n  - {name: x, protocol: 132, port: 9}\n",
    )
    .unwrap();
    assert_eq!(w.spec.ports[0].protocol, Protocol::Name("UDP".into()));
    assert_eq!(w.spec.ports[1].protocol, Protocol::Number(132));
}

#[test]
fn endpoint_names_double_the_dashes_of_each_part() {
    assert_eq!(
        k8s_endpoint_name("node-1", "my-nginx-b1337a", "eth0"),
        "node--1-k8s-my--nginx--b1337a-eth0"
    );
}
