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
fn inert_calico_fields_are_kept_unimplemented_ones_refused_and_unknown_names_rejected() {
    let yaml = "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec:\n  bpfLogLevel: \"\"\n  floatingIPs: Disabled\n  reportingInterval: 0s\n  vxlanVNI: 4096\n";
    let f: FelixConfiguration = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(f.spec.vxlan_vni, Some(4096));
    assert_eq!(f.spec.other["floatingIPs"], "Disabled");
    assert_eq!(f.validate(), vec![]);
    let back: FelixConfiguration =
        serde_yaml::from_str(&serde_yaml::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);

    let mut bad = f.clone();
    bad.spec
        .other
        .insert("vxlanvni".into(), serde_json::json!(1));
    bad.spec.other.insert(
        "healthTimeoutOverrides".into(),
        serde_json::json!([{"name": "InternalDataplaneMainLoop", "timeout": "60s"}]),
    );
    bad.spec
        .other
        .insert("floatingIPs".into(), serde_json::json!("Enabled"));
    let errs = bad.validate();
    let got: Vec<(&str, bool)> = errs
        .iter()
        .map(|e| (e.path.as_str(), matches!(e.reason, Reason::Unsupported(_))))
        .collect();
    assert_eq!(
        got,
        vec![
            ("FelixConfiguration(default).spec.floatingIPs", true),
            (
                "FelixConfiguration(default).spec.healthTimeoutOverrides",
                true
            ),
            ("FelixConfiguration(default).spec.vxlanvni", false),
        ]
    );
    assert_eq!(errs[2].reason, Reason::UnknownField);
}

/// The `default` FelixConfiguration Calico's operator writes: the fields
/// tortie does not implement are refused by name, nothing else.
#[test]
fn calicos_stock_default_is_refused_only_for_what_tortie_does_not_do() {
    let yaml = "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec:\n  bpfConnectTimeLoadBalancing: TCP\n  bpfHostNetworkedNATWithoutCTLB: Enabled\n  bpfLogLevel: \"\"\n  floatingIPs: Disabled\n  healthPort: 9099\n  logSeverityScreen: Info\n  reportingInterval: 0s\n  vxlanEnabled: true\n  vxlanPort: 4789\n  vxlanVNI: 4096\n";
    let f: FelixConfiguration = serde_yaml::from_str(yaml).unwrap();
    let errs: Vec<String> = f.validate().iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("FelixConfiguration(default).spec.logSeverityScreen: "),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].contains("not supported by tortie") && errs[0].contains("--log-level"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("FelixConfiguration(default).spec.healthPort: 9099"),
        "{}",
        errs[1]
    );
    assert!(errs[1].contains("--http-addr"), "{}", errs[1]);
}

#[test]
fn every_unimplemented_typed_field_is_refused_by_name_and_tortie_s_own_values_pass() {
    let refused: &[(&str, &str)] = &[
        ("logSeverityScreen", "\"Debug\""),
        ("logSeverityFile", "\"Info\""),
        ("logSeveritySys", "\"Info\""),
        ("logFilePath", "\"/var/log/felix.log\""),
        ("ipipEnabled", "false"),
        ("vxlanEnabled", "false"),
        ("vxlanMTUV6", "1430"),
        ("wireguardEnabled", "true"),
        ("mtuIfacePattern", "\"eth.*\""),
        ("iptablesRefreshInterval", "\"90s\""),
        ("reportingInterval", "\"30s\""),
        ("netlinkTimeout", "\"10s\""),
        ("routeSource", "\"WorkloadIPs\""),
        ("routeSyncDisabled", "true"),
        ("deviceRouteSourceAddress", "\"10.0.0.1\""),
        ("removeExternalRoutes", "true"),
        ("interfacePrefix", "\"tap\""),
        ("interfaceExclude", "\"kube-ipvs0\""),
        ("ipv6Support", "true"),
        ("ipForwarding", "\"Disabled\""),
        ("natOutgoingAddress", "\"10.0.0.1\""),
        ("healthEnabled", "true"),
        ("healthHost", "\"0.0.0.0\""),
        ("prometheusMetricsEnabled", "true"),
        ("prometheusMetricsHost", "\"0.0.0.0\""),
        ("prometheusMetricsPort", "9091"),
        ("defaultEndpointToHostAction", "\"Accept\""),
        ("bpfEnabled", "true"),
        ("chainInsertMode", "\"Append\""),
        ("iptablesBackend", "\"NFT\""),
        ("featureDetectOverride", "\"SNATFullyRandom=true\""),
        ("externalNodesList", "[\"10.0.0.9\"]"),
        (
            "failsafeInboundHostPorts",
            "[{\"protocol\": \"TCP\", \"port\": 22}]",
        ),
        (
            "failsafeOutboundHostPorts",
            "[{\"protocol\": \"TCP\", \"port\": 2379}]",
        ),
        ("serviceLoopPrevention", "\"Drop\""),
    ];
    for (field, value) in refused {
        let spec: FelixConfigurationSpec =
            serde_json::from_str(&format!("{{\"{field}\": {value}}}")).unwrap();
        let errs = felix(spec).validate();
        assert_eq!(errs.len(), 1, "{field}: {errs:?}");
        assert_eq!(
            errs[0].path,
            format!("FelixConfiguration(default).spec.{field}")
        );
        assert!(
            matches!(errs[0].reason, Reason::Unsupported(_)),
            "{field}: {errs:?}"
        );
    }
    let accepted = r#"{"ipipEnabled": true, "vxlanEnabled": true, "vxlanMTUV6": 0,
        "wireguardEnabled": false, "bpfEnabled": false, "reportingInterval": "0s",
        "routeSource": "CalicoIPAM", "routeSyncDisabled": false, "removeExternalRoutes": false,
        "interfacePrefix": "cali", "ipv6Support": false, "ipForwarding": "Enabled",
        "routeTableRange": {"min": 1, "max": 250}, "routeRefreshInterval": "30s",
        "ipipMTU": 1440, "vxlanMTU": 1410, "vxlanVNI": 4097, "vxlanPort": 4790,
        "deviceRouteProtocol": 81, "bgpRouteProtocol": 85}"#;
    let spec: FelixConfigurationSpec = serde_json::from_str(accepted).unwrap();
    assert_eq!(felix(spec).validate(), vec![]);
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
