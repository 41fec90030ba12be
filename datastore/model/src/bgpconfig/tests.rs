use super::*;

fn config(name: &str) -> BgpConfiguration {
    BgpConfiguration {
        metadata: ObjectMeta::named(name),
        spec: BgpConfigurationSpec::default(),
    }
}

#[test]
fn defaults_are_mesh_on_as_64512_port_179() {
    let c = config("default");
    assert!(c.spec.node_to_node_mesh_enabled());
    assert_eq!(c.spec.as_number(), AsNumber(64512));
    assert_eq!(c.spec.listen_port(), 179);
    assert_eq!(c.spec.log_severity_screen(), LogSeverity::Info);
    let mut d = c.clone();
    d.apply_defaults();
    assert_eq!(d.spec.node_to_node_mesh_enabled, Some(true));
    assert_eq!(d.spec.as_number, Some(AsNumber(64512)));
    assert_eq!(d.spec.listen_port, Some(179));
    assert_eq!(d.validate(), vec![]);
}

#[test]
fn per_node_configs_get_no_cluster_only_defaults() {
    let mut c = config("node.node1");
    c.apply_defaults();
    assert_eq!(c.spec.as_number, None);
    assert_eq!(c.spec.node_to_node_mesh_enabled, None);
    // What a node.<name> leaves out comes from `default`.
    assert_eq!(c.spec.listen_port, None);
    assert_eq!(c.spec.log_severity_screen, None);
    assert_eq!(c.spec.bind_mode, None);
    assert_eq!(c.validate(), vec![]);
}

#[test]
fn per_node_configs_override_only_what_calico_lets_them() {
    let mut c = config("node.node1");
    c.spec.listen_port = Some(17900);
    c.spec.log_severity_screen = Some(LogSeverity::Debug);
    c.spec.bind_mode = Some(BindMode::NodeIp);
    c.spec.service_cluster_ips = vec![CidrBlock {
        cidr: "10.96.0.0/12".parse().unwrap(),
    }];
    let paths: Vec<String> = c.validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        vec![
            "BGPConfiguration(node.node1).spec.bindMode",
            "BGPConfiguration(node.node1).spec.serviceClusterIPs",
        ]
    );
}

#[test]
fn ignored_interfaces_and_local_workload_peering_are_refused_by_name() {
    let mut c = config("default");
    c.spec.ignored_interfaces = vec!["eth9".into()];
    c.spec.local_workload_peering_ipv4 = Some("169.254.0.1".parse().unwrap());
    let errs: Vec<String> = c.validate().iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("spec.ignoredInterfaces") && errs[0].contains("not supported"));
    assert!(errs[1].contains("spec.localWorkloadPeeringIPV4") && errs[1].contains("not supported"));
}

#[test]
fn the_mesh_password_reference_is_checked() {
    let mut c = config("default");
    c.spec.node_mesh_password = Some(BgpPassword {
        secret_key_ref: Some(crate::common::SecretKeyRef {
            name: "bgp".into(),
            key: "../x".into(),
            optional: None,
        }),
    });
    let paths: Vec<String> = c.validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        vec!["BGPConfiguration(default).spec.nodeMeshPassword.secretKeyRef.key"]
    );
}

#[test]
fn cluster_only_fields_are_rejected_on_per_node_configs() {
    let mut c = config("node.node1");
    c.spec.as_number = Some(AsNumber(65000));
    c.spec.node_to_node_mesh_enabled = Some(false);
    let paths: Vec<String> = c.validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        vec![
            "BGPConfiguration(node.node1).spec.nodeToNodeMeshEnabled",
            "BGPConfiguration(node.node1).spec.asNumber",
        ]
    );
}

#[test]
fn community_values_and_references_are_checked() {
    let mut c = config("default");
    c.spec.communities = vec![
        Community {
            name: "good".into(),
            value: "65000:100".into(),
        },
        Community {
            name: "bad".into(),
            value: "65536:1".into(),
        },
    ];
    c.spec.prefix_advertisements = vec![PrefixAdvertisement {
        cidr: "10.0.0.0/24".parse().unwrap(),
        communities: vec!["good".into(), "1:2:3".into(), "nope".into()],
    }];
    let errs = c.validate();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0].path,
        "BGPConfiguration(default).spec.communities[1].value"
    );
    assert_eq!(errs[0].reason, Reason::NotCommunity);
    assert_eq!(
        errs[1].path,
        "BGPConfiguration(default).spec.prefixAdvertisements[0].communities[2]"
    );
    assert_eq!(errs[1].reason, Reason::UnknownCommunity);
    assert_eq!(c.spec.community_value("good"), Some("65000:100"));
}

#[test]
fn communities_without_advertisements_are_rejected() {
    let mut c = config("default");
    c.spec.communities = vec![Community {
        name: "c".into(),
        value: "1:1".into(),
    }];
    assert_eq!(c.validate().len(), 1);
}

#[test]
fn zero_port_and_zero_as_are_rejected() {
    let mut c = config("default");
    c.spec.listen_port = Some(0);
    c.spec.as_number = Some(AsNumber(0));
    let errs = c.validate();
    assert_eq!(errs.len(), 2);
    assert!(errs[0].to_string().contains("must be between 1 and 65535"));
}

#[test]
fn service_ranges_must_be_masked() {
    let mut c = config("default");
    c.spec.service_cluster_ips = vec![CidrBlock {
        cidr: "10.96.0.1/12".parse().unwrap(),
    }];
    let errs = c.validate();
    assert_eq!(
        errs[0].path,
        "BGPConfiguration(default).spec.serviceClusterIPs[0].cidr"
    );
}

#[test]
fn serializes_with_calico_field_names() {
    let mut c = config("default");
    c.spec.service_load_balancer_ips = vec![CidrBlock {
        cidr: "192.0.2.0/24".parse().unwrap(),
    }];
    c.spec.bind_mode = Some(BindMode::NodeIp);
    c.spec.node_mesh_max_restart_time = Some(GoDuration::from_secs(120));
    c.apply_defaults();
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v["spec"]["serviceLoadBalancerIPs"][0]["cidr"],
        "192.0.2.0/24"
    );
    assert_eq!(v["spec"]["bindMode"], "NodeIP");
    assert_eq!(v["spec"]["nodeToNodeMeshEnabled"], true);
    assert_eq!(v["spec"]["asNumber"], 64512);
    assert_eq!(v["spec"]["nodeMeshMaxRestartTime"], "2m0s");
    let back: BgpConfiguration = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
}
