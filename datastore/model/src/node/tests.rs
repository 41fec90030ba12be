use super::*;

fn node_with_bgp(bgp: NodeBgpSpec) -> Node {
    let mut n = Node::new("node1");
    n.spec.bgp = Some(bgp);
    n
}

#[test]
fn node_address_keeps_its_prefix_length() {
    let text = r#"{"apiVersion":"projectcalico.org/v3","kind":"Node",
        "metadata":{"name":"node1","labels":{"rack":"r1"}},
        "spec":{"bgp":{"ipv4Address":"10.0.1.5/24","asNumber":65001,
        "routeReflectorClusterID":"224.0.0.1"}}}"#;
    let n: Node = serde_json::from_str(text).unwrap();
    let bgp = n.spec.bgp.as_ref().unwrap();
    let addr = bgp.ipv4_address.unwrap();
    assert_eq!(addr.addr().to_string(), "10.0.1.5");
    assert_eq!(addr.prefix_len(), 24);
    assert!(n.is_route_reflector());
    assert_eq!(n.validate(), vec![]);
    let back: Node = serde_json::from_value(serde_json::to_value(&n).unwrap()).unwrap();
    assert_eq!(back, n);
}

#[test]
fn a_bare_node_address_reads_as_a_host_prefix() {
    let n: Node =
        serde_yaml::from_str("metadata: {name: n}\nspec: {bgp: {ipv4Address: 10.0.1.5}}\n")
            .unwrap();
    assert_eq!(
        n.spec.bgp.unwrap().ipv4_address.unwrap().to_string(),
        "10.0.1.5/32"
    );
}

#[test]
fn addresses_of_the_wrong_family_are_rejected() {
    let n = node_with_bgp(NodeBgpSpec {
        ipv4_address: Some("fd00::5/64".parse().unwrap()),
        ..NodeBgpSpec::default()
    });
    let errs = n.validate();
    assert_eq!(errs[0].path, "Node(node1).spec.bgp.ipv4Address");
    assert!(errs[0]
        .to_string()
        .contains("IPv4 address with prefix length"));
}

#[test]
fn an_empty_bgp_section_is_rejected() {
    let errs = node_with_bgp(NodeBgpSpec::default()).validate();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "Node(node1).spec.bgp");
}

#[test]
fn vxlan_mac_must_be_a_mac() {
    let mut n = Node::new("node1");
    n.spec.vxlan_tunnel_mac_addr = Some("66:ad:ab:fe:12".into());
    assert_eq!(n.validate()[0].reason, Reason::NotMac);
    n.spec.vxlan_tunnel_mac_addr = Some("66:ad:ab:fe:12:34".into());
    assert_eq!(n.validate(), vec![]);
}

#[test]
fn labels_must_be_kubernetes_labels() {
    let mut n = Node::new("node1");
    n.metadata.labels.insert("bad key".into(), "v".into());
    n.metadata.labels.insert("ok".into(), "bad value!".into());
    let errs = n.validate();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].reason, Reason::NotQualifiedName);
    assert_eq!(errs[1].reason, Reason::NotLabelValue);
}

#[test]
fn status_is_omitted_when_empty_and_kept_otherwise() {
    let mut n = Node::new("node1");
    let v = serde_json::to_value(&n).unwrap();
    assert!(v.get("status").is_none());
    n.status.pod_cidrs = vec!["10.244.1.0/24".into()];
    let v = serde_json::to_value(&n).unwrap();
    assert_eq!(v["status"]["podCIDRs"][0], "10.244.1.0/24");
    assert_eq!(serde_json::from_value::<Node>(v).unwrap(), n);
}
