use super::*;

fn felix(spec: FelixConfigurationSpec) -> FelixConfiguration {
    FelixConfiguration {
        metadata: ObjectMeta::named("default"),
        spec,
    }
}

#[test]
fn defaults_match_calico_felix() {
    let s = FelixConfigurationSpec::default();
    assert_eq!(s.vxlan_vni(), 4096);
    assert_eq!(s.vxlan_port(), 4789);
    assert_eq!(s.route_refresh_interval(), Duration::from_secs(90));
    assert_eq!(s.interface_prefix(), "cali");
    assert_eq!(s.route_table_range(), RouteTableRange { min: 1, max: 250 });
    assert_eq!(s.ipip_mtu(), None);
    assert_eq!(s.health_port(), 9099);
}

#[test]
fn zero_mtu_means_detect() {
    let s = FelixConfigurationSpec {
        vxlan_mtu: Some(0),
        ipip_mtu: Some(1480),
        ..Default::default()
    };
    assert_eq!(s.vxlan_mtu(), None);
    assert_eq!(s.ipip_mtu(), Some(1480));
    assert_eq!(felix(s).validate(), vec![]);
}

#[test]
fn out_of_range_values_are_rejected_with_their_paths() {
    let s = FelixConfigurationSpec {
        vxlan_vni: Some(0x100_0000),
        vxlan_port: Some(0),
        vxlan_mtu: Some(70_000),
        route_table_range: Some(RouteTableRange { min: 10, max: 5 }),
        ip_forwarding: Some("enabled".into()),
        interface_prefix: Some("cali,tap/".into()),
        ..Default::default()
    };
    let paths: Vec<String> = felix(s).validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        vec![
            "FelixConfiguration(default).spec.vxlanVNI",
            "FelixConfiguration(default).spec.vxlanPort",
            "FelixConfiguration(default).spec.vxlanMTU",
            "FelixConfiguration(default).spec.routeTableRange",
            "FelixConfiguration(default).spec.ipForwarding",
            "FelixConfiguration(default).spec.interfacePrefix",
        ]
    );
}

#[test]
fn serializes_with_calico_field_names() {
    let f = felix(FelixConfigurationSpec {
        vxlan_vni: Some(4097),
        vxlan_mtu: Some(1450),
        ipip_enabled: Some(true),
        ipv6_support: Some(false),
        route_refresh_interval: Some("30s".parse().unwrap()),
        failsafe_inbound_host_ports: vec![ProtoPort {
            protocol: "TCP".into(),
            port: 22,
            net: None,
        }],
        ..Default::default()
    });
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(v["spec"]["vxlanVNI"], 4097);
    assert_eq!(v["spec"]["vxlanMTU"], 1450);
    assert_eq!(v["spec"]["ipipEnabled"], true);
    assert_eq!(v["spec"]["ipv6Support"], false);
    assert_eq!(v["spec"]["routeRefreshInterval"], "30s");
    assert_eq!(v["spec"]["failsafeInboundHostPorts"][0]["port"], 22);
    let back: FelixConfiguration = serde_json::from_value(v).unwrap();
    assert_eq!(back, f);
}

#[test]
fn calico_fields_tortie_ignores_are_kept_and_others_rejected() {
    let yaml = "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec:\n  bpfLogLevel: \"\"\n  floatingIPs: Disabled\n  reportingInterval: 0s\n  vxlanVNI: 4096\n  healthTimeoutOverrides:\n  - {name: InternalDataplaneMainLoop, timeout: 60s}\n";
    let f: FelixConfiguration = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(f.spec.vxlan_vni, Some(4096));
    assert_eq!(f.spec.other["floatingIPs"], "Disabled");
    assert_eq!(f.spec.other["healthTimeoutOverrides"][0]["timeout"], "60s");
    assert_eq!(f.validate(), vec![]);
    let back: FelixConfiguration =
        serde_yaml::from_str(&serde_yaml::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);

    let mut bad = f.clone();
    bad.spec
        .other
        .insert("vxlanvni".into(), serde_json::json!(1));
    let errs = bad.validate();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "FelixConfiguration(default).spec.vxlanvni");
    assert_eq!(errs[0].reason, Reason::UnknownField);
}

#[test]
fn route_protocols_default_to_80_and_84_and_numbers_of_other_daemons_are_refused() {
    let s = FelixConfigurationSpec::default();
    assert_eq!(
        (s.device_route_protocol(), s.bgp_route_protocol()),
        (80, 84)
    );
    for n in [3, 4, 11, 12, 186, 188, 200] {
        let s = FelixConfigurationSpec {
            bgp_route_protocol: Some(n),
            ..Default::default()
        };
        let errs = felix(s).validate();
        assert_eq!(errs.len(), 1, "{n}: {errs:?}");
        assert_eq!(
            errs[0].path,
            "FelixConfiguration(default).spec.bgpRouteProtocol"
        );
        assert!(
            errs[0].to_string().contains("route protocol of"),
            "{}",
            errs[0]
        );
    }
    let s = FelixConfigurationSpec {
        device_route_protocol: Some(3),
        ..Default::default()
    };
    assert!(felix(s).validate()[0].to_string().contains("boot"));
    let same = FelixConfigurationSpec {
        device_route_protocol: Some(84),
        ..Default::default()
    };
    assert_eq!(felix(same).validate().len(), 1);
    let ok = FelixConfigurationSpec {
        device_route_protocol: Some(81),
        bgp_route_protocol: Some(85),
        ..Default::default()
    };
    assert_eq!(felix(ok).validate(), vec![]);
}

#[test]
fn a_zero_route_refresh_interval_turns_the_periodic_refresh_off() {
    let s: FelixConfigurationSpec =
        serde_json::from_str(r#"{"routeRefreshInterval": "0s"}"#).unwrap();
    assert_eq!(s.route_refresh_interval(), ROUTE_REFRESH_OFF);
    let s: FelixConfigurationSpec =
        serde_json::from_str(r#"{"routeRefreshInterval": "2s"}"#).unwrap();
    assert_eq!(s.route_refresh_interval(), Duration::from_secs(2));
}
