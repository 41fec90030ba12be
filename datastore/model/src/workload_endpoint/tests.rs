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

#[test]
fn defaults_add_the_namespace_and_orchestrator_labels() {
    let mut w = wep();
    w.apply_defaults();
    assert_eq!(w.metadata.labels[LABEL_NAMESPACE], "ns1");
    assert_eq!(w.metadata.labels[LABEL_ORCHESTRATOR], "k8s");
    assert_eq!(w.validate(), vec![]);
}

#[test]
fn labels_cannot_claim_another_namespace_or_inherited_prefixes() {
    let mut w = wep();
    w.metadata
        .labels
        .insert(LABEL_NAMESPACE.into(), "other".into());
    w.metadata.labels.insert("pcns.team".into(), "a".into());
    let paths: Vec<String> = w.validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        vec![
            "WorkloadEndpoint(ns1/node1-k8s-pod--a-eth0).metadata.labels[projectcalico.org/namespace]",
            "WorkloadEndpoint(ns1/node1-k8s-pod--a-eth0).metadata.labels[pcns.team]",
        ]
    );
}

#[test]
fn named_ports_need_a_valid_name_and_a_protocol_with_ports() {
    let mut w = wep();
    let port = |name: &str, protocol: Protocol| WorkloadEndpointPort {
        name: name.into(),
        protocol,
        port: 80,
        host_port: 0,
        host_ip: String::new(),
    };
    w.spec.ports = vec![
        port("http", Protocol::named("TCP")),
        port("", Protocol::named("TCP")),
        port("Bad_Name", Protocol::named("UDP")),
        port("ping", Protocol::named("ICMP")),
    ];
    w.spec.profiles = vec!["kns.ns1".into(), "Not A Name".into()];
    let paths: Vec<String> = w.validate().into_iter().map(|e| e.path).collect();
    let p = "WorkloadEndpoint(ns1/node1-k8s-pod--a-eth0).spec";
    assert_eq!(
        paths,
        vec![
            format!("{p}.ports[1].name"),
            format!("{p}.ports[2].name"),
            format!("{p}.ports[3].protocol"),
            format!("{p}.profiles[1]"),
        ]
    );
}
