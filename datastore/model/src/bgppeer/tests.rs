use super::*;

fn peer(spec: BgpPeerSpec) -> BgpPeer {
    BgpPeer {
        metadata: ObjectMeta::named("peer-a"),
        spec,
    }
}

fn global_peer() -> BgpPeerSpec {
    BgpPeerSpec {
        peer_ip: Some("192.0.2.1".parse().unwrap()),
        as_number: Some(AsNumber(65001)),
        ..BgpPeerSpec::default()
    }
}

#[test]
fn a_global_peer_and_a_selector_peer_are_valid() {
    assert_eq!(peer(global_peer()).validate(), vec![]);
    let rr = BgpPeerSpec {
        node_selector: Some("!has(route-reflector)".into()),
        peer_selector: Some("has(route-reflector)".into()),
        ..BgpPeerSpec::default()
    };
    assert_eq!(peer(rr).validate(), vec![]);
}

#[test]
fn node_and_node_selector_are_exclusive() {
    let mut s = global_peer();
    s.node = Some("node1".into());
    s.node_selector = Some("all()".into());
    let errs = peer(s).validate();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "BGPPeer(peer-a).spec.node");
    assert_eq!(
        errs[0].reason,
        Reason::Exclusive {
            other: "spec.nodeSelector"
        }
    );
}

#[test]
fn peer_ip_and_peer_selector_are_exclusive() {
    let mut s = global_peer();
    s.peer_selector = Some("has(x)".into());
    let paths: Vec<String> = peer(s).validate().into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        vec![
            "BGPPeer(peer-a).spec.peerIP",
            "BGPPeer(peer-a).spec.asNumber"
        ]
    );
}

#[test]
fn a_peer_ip_needs_an_as_number() {
    let mut s = global_peer();
    s.as_number = None;
    let errs = peer(s).validate();
    assert_eq!(errs[0].path, "BGPPeer(peer-a).spec.asNumber");
    assert_eq!(errs[0].reason, Reason::Required);
}

#[test]
fn selectors_and_node_names_are_checked() {
    let mut s = global_peer();
    s.node = Some("Node_1".into());
    s.node_selector = None;
    let errs = peer(s.clone()).validate();
    assert_eq!(errs[0].reason, Reason::NotDns1123Subdomain);
    s.node = None;
    s.node_selector = Some("a in {".into());
    let errs = peer(s).validate();
    assert!(matches!(errs[0].reason, Reason::Selector(_)));
}

fn refusals(s: BgpPeerSpec) -> Vec<String> {
    peer(s)
        .validate()
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn fields_tortie_does_not_implement_are_refused_by_name() {
    let mut s = global_peer();
    s.reachable_by = Some("192.0.2.254".parse().unwrap());
    s.bird_gateway_mode = Some(BirdGatewayMode::Recursive);
    s.failure_detection_mode = Some(FailureDetectionMode::BFDIfDirectlyConnected);
    s.restart_mode = Some(RestartMode::LongLivedGracefulRestart);
    s.local_workload_selector = Some("all()".into());
    let errs = refusals(s);
    for field in [
        "reachableBy",
        "birdGatewayMode",
        "failureDetectionMode",
        "restartMode",
        "localWorkloadSelector",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(&format!("spec.{field}:"))
                && e.contains("is not supported by tortie")),
            "{field}: {errs:?}"
        );
    }
    assert_eq!(errs.len(), 5, "{errs:?}");
}

#[test]
fn filters_are_names_of_bgpfilters() {
    let mut s = global_peer();
    s.filters = vec!["export-pools".into(), "no-bogons".into()];
    assert_eq!(refusals(s.clone()), Vec::<String>::new());
    s.filters.push("Not_A_Name".into());
    let errs = refusals(s);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("spec.filters[2]"), "{errs:?}");
}

#[test]
fn the_modes_tortie_runs_are_accepted() {
    let mut s = global_peer();
    s.failure_detection_mode = Some(FailureDetectionMode::None);
    s.restart_mode = Some(RestartMode::GracefulRestart);
    s.keepalive_time = Some(GoDuration::from_secs(10));
    s.num_allowed_local_as_numbers = Some(2);
    s.source_address = Some(SourceAddress::None);
    s.filters = vec!["f1".into()];
    assert_eq!(refusals(s), Vec::<String>::new());
}

#[test]
fn keepalive_is_whole_seconds_from_1_to_65535() {
    for bad in ["0s", "500ms", "1.5s", "65536s"] {
        let mut s = global_peer();
        s.keepalive_time = Some(bad.parse().unwrap());
        let errs = refusals(s);
        assert!(
            errs.len() == 1 && errs[0].contains("spec.keepaliveTime"),
            "{bad}: {errs:?}"
        );
    }
}

#[test]
fn a_password_needs_a_secret_name_and_key_that_stay_inside_the_secrets_dir() {
    let pw = |name: &str, key: &str| {
        let mut s = global_peer();
        s.password = Some(BgpPassword {
            secret_key_ref: Some(crate::common::SecretKeyRef {
                name: name.into(),
                key: key.into(),
                optional: None,
            }),
        });
        refusals(s)
    };
    assert_eq!(pw("bgp-secrets", "rr.password_1"), Vec::<String>::new());
    for (name, key, field) in [
        ("..", "pw", "secretKeyRef.name"),
        ("a/b", "pw", "secretKeyRef.name"),
        ("", "pw", "secretKeyRef.name"),
        ("bgp", "..", "secretKeyRef.key"),
        ("bgp", ".", "secretKeyRef.key"),
        ("bgp", "a/b", "secretKeyRef.key"),
        ("bgp", "", "secretKeyRef.key"),
    ] {
        let errs = pw(name, key);
        assert!(
            errs.len() == 1 && errs[0].contains(&format!("spec.password.{field}")),
            "{name:?} {key:?}: {errs:?}"
        );
    }
    let mut s = global_peer();
    s.password = Some(BgpPassword::default());
    let errs = refusals(s);
    assert!(errs[0].contains("spec.password.secretKeyRef"), "{errs:?}");
}

#[test]
fn keep_next_hop_has_two_spellings() {
    let mut s = global_peer();
    assert!(!s.keeps_next_hop());
    s.next_hop_mode = Some(NextHopMode::Keep);
    assert!(s.keeps_next_hop());
    s.keep_original_next_hop = true;
    assert_eq!(peer(s).validate().len(), 1, "both set is ambiguous");
}

#[test]
fn serializes_with_calico_field_names() {
    let mut s = global_peer();
    s.peer_ip = Some("[fd00::1]:17900".parse().unwrap());
    s.source_address = Some(SourceAddress::UseNodeIp);
    s.ttl_security = Some(1);
    s.max_restart_time = Some(GoDuration::from_secs(300));
    s.password = Some(BgpPassword {
        secret_key_ref: Some(crate::common::SecretKeyRef {
            name: "bgp".into(),
            key: "pw".into(),
            optional: None,
        }),
    });
    let p = peer(s);
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["spec"]["peerIP"], "[fd00::1]:17900");
    assert_eq!(v["spec"]["sourceAddress"], "UseNodeIP");
    assert_eq!(v["spec"]["password"]["secretKeyRef"]["key"], "pw");
    assert_eq!(v["spec"]["maxRestartTime"], "5m0s");
    assert!(v["spec"].get("numAllowedLocalASNumbers").is_none());
    let back: BgpPeer = serde_json::from_value(v).unwrap();
    assert_eq!(back, p);
}

#[test]
fn peers_apply_to_the_named_node_the_selected_nodes_or_all() {
    use std::collections::BTreeMap;
    let rr: BTreeMap<String, String> = [("rr".to_owned(), "true".to_owned())].into();
    let plain = BTreeMap::new();
    let mut s = global_peer();
    assert!(s.applies_to_node("n1", &plain));
    s.node = Some("n1".into());
    assert!(s.applies_to_node("n1", &plain));
    assert!(!s.applies_to_node("n2", &plain));
    s.node = None;
    s.node_selector = Some("!has(rr)".into());
    assert!(s.applies_to_node("n2", &plain));
    assert!(!s.applies_to_node("n2", &rr));
    s.peer_selector = Some("has(rr)".into());
    assert!(s.selects_peer(&rr));
    assert!(!s.selects_peer(&plain));
}

#[test]
fn calicos_spelling_of_num_allowed_local_as_numbers_parses() {
    let text = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: p\nspec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n  numAllowedLocalASNumbers: 1\n";
    match crate::parse_manifest(text).unwrap().remove(0) {
        crate::Resource::BgpPeer(p) => assert_eq!(p.spec.num_allowed_local_as_numbers, Some(1)),
        other => panic!("{other:?}"),
    }
}
