use super::*;
use crate::asn::AsNumber;
use crate::ippool::EncapMode;

/// Manifests as the Calico documentation writes them (docs.tigera.io).
const CALICO_DOCS: &str = r#"
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: my.ippool-1
spec:
  cidr: 10.1.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
  disabled: false
  nodeSelector: all()
  allowedUses:
    - Workload
    - Tunnel
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  nodeMeshMaxRestartTime: 120s
  asNumber: 63400
  serviceClusterIPs:
    - cidr: 10.96.0.0/12
  serviceExternalIPs:
    - cidr: 104.244.42.129/32
    - cidr: 172.217.3.0/24
  listenPort: 178
  bindMode: NodeIP
  communities:
    - name: bgp-large-community
      value: 63400:300:100
  prefixAdvertisements:
    - cidr: 172.218.4.0/26
      communities:
        - bgp-large-community
        - 63400:120
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: some.name
spec:
  node: rack1-host1
  peerIP: 192.168.1.1
  asNumber: 63400
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-to-rrs
spec:
  nodeSelector: "!has(i-am-a-route-reflector)"
  peerSelector: has(i-am-a-route-reflector)
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: bgppeer-global-3040
spec:
  peerIP: 192.20.30.40
  asNumber: 64567
  password:
    secretKeyRef:
      name: bgp-secrets
      key: rr-password
  keepOriginalNextHop: true
  maxRestartTime: 15m
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-hostname
  labels:
    i-am-a-route-reflector: "true"
spec:
  bgp:
    asNumber: 64512
    ipv4Address: 10.244.0.1/24
    ipv6Address: 2001:db8:85a3::8a2e:370:7334/120
    ipv4IPIPTunnelAddr: 192.168.0.1
    routeReflectorClusterID: 244.0.0.1
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  ipv6Support: false
  ipipMTU: 1400
  vxlanVNI: 4096
  routeRefreshInterval: 90s
  routeTableRange:
    min: 1
    max: 250
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-my--nginx--b1337a-eth0
  namespace: default
  labels:
    app: frontend
    projectcalico.org/namespace: default
    projectcalico.org/orchestrator: k8s
spec:
  node: node1
  orchestrator: k8s
  endpoint: eth0
  containerID: "1337495556942031415926535"
  pod: my-nginx-b1337a
  endpoint: eth0
  interfaceName: cali0ef24ba
  mac: ca:fe:1d:52:bb:e9
  ipNetworks:
    - 192.168.0.0/32
  profiles:
    - profile1
  ports:
    - name: some-port
      port: 1234
      protocol: TCP
    - name: another-port
      port: 5432
      protocol: UDP
"#;

fn errors_of(text: &str) -> Vec<String> {
    match parse_manifest(text) {
        Ok(r) => panic!("expected errors, got {r:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn calico_documentation_manifests_are_accepted_unchanged() {
    // The WorkloadEndpoint example repeats `endpoint:`; YAML duplicate keys
    // are an error, so drop the repetition the way calicoctl users must.
    let text = CALICO_DOCS.replacen("  endpoint: eth0\n  interfaceName", "  interfaceName", 1);
    let resources = parse_manifest(&text).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<Kind> = resources.iter().map(Resource::kind).collect();
    assert_eq!(
        kinds,
        vec![
            Kind::IpPool,
            Kind::BgpConfiguration,
            Kind::BgpPeer,
            Kind::BgpPeer,
            Kind::BgpPeer,
            Kind::Node,
            Kind::FelixConfiguration,
            Kind::WorkloadEndpoint,
        ]
    );
    let Resource::IpPool(pool) = &resources[0] else {
        panic!()
    };
    assert_eq!(pool.spec.ipip_mode(), EncapMode::CrossSubnet);
    let Resource::BgpConfiguration(bgp) = &resources[1] else {
        panic!()
    };
    assert_eq!(bgp.spec.as_number(), AsNumber(63400));
    assert_eq!(bgp.spec.listen_port(), 178);
    let Resource::BgpPeer(peer) = &resources[4] else {
        panic!()
    };
    let secret = peer
        .spec
        .password
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("bgp-secrets", "rr-password")
    );
    assert_eq!(
        resources[7].id(),
        "WorkloadEndpoint(default/node1-k8s-my--nginx--b1337a-eth0)"
    );
}

#[test]
fn json_documents_and_arrays_are_accepted() {
    let text = r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool",
        "metadata":{"name":"a"},"spec":{"cidr":"10.1.0.0/16"}}
        {"apiVersion":"projectcalico.org/v3","kind":"IPPool",
        "metadata":{"name":"b"},"spec":{"cidr":"10.2.0.0/16"}}"#;
    let r = parse_manifest(text).unwrap();
    assert_eq!(r.len(), 2);
    let array = format!("[{}]", text.replace("}}\n", "}},\n"));
    assert_eq!(parse_manifest(&array).unwrap(), r);
}

#[test]
fn lists_and_typed_lists_expand_to_their_items() {
    let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata: {name: a}
  spec: {cidr: 10.1.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: BGPPeerList
metadata:
  resourceVersion: "12"
items:
- metadata: {name: p1}
  spec: {peerIP: "10.0.0.1:17900", asNumber: "1.10"}
"#;
    let r = parse_manifest(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.len(), 2);
    let Resource::BgpPeer(p) = &r[1] else {
        panic!()
    };
    assert_eq!(p.spec.peer_ip.unwrap().port, Some(17900));
    assert_eq!(p.spec.as_number, Some(AsNumber(65546)));
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let errs = errors_of(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16, blocksize: 24}\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("document 1: IPPool(a).spec.blocksize: unknown field `blocksize`"),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].contains("blockSize"),
        "lists valid fields: {}",
        errs[0]
    );
}

#[test]
fn wrong_values_name_the_field_and_the_valid_choices() {
    let errs = errors_of(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16, ipipMode: always}\n",
    );
    assert!(errs[0].contains("IPPool(a).spec.ipipMode"), "{}", errs[0]);
    assert!(errs[0].contains("`Always`"), "{}", errs[0]);
    let errs = errors_of(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.300, asNumber: 1}\n",
    );
    assert!(errs[0].contains("BGPPeer(p).spec.peerIP"), "{}", errs[0]);
    assert!(errs[0].contains("[<IPv6>]:<port>"), "{}", errs[0]);
}

#[test]
fn every_error_of_every_document_is_reported_and_nothing_is_returned() {
    let text = r#"
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: good}
spec: {cidr: 10.1.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.2.0.1/16, blockSize: 33}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: p}
spec: {node: n1, nodeSelector: all(), peerIP: 10.0.0.1, peerSelector: has(x), asNumber: 65000}
---
apiVersion: projectcalico.org/v3
kind: Widget
metadata: {name: w}
---
apiVersion: projectcalico.org/v1
kind: Node
metadata: {name: n}
"#;
    let errs = errors_of(text);
    let expect = [
        "document 2: IPPool(pool-a).spec.cidr: 10.2.0.1/16 is invalid: host bits must be zero; use 10.2.0.0/16",
        "document 2: IPPool(pool-a).spec.blockSize: 33 is invalid: must be between 20 and 32 for an IPv4 pool",
        "document 3: BGPPeer(p).spec.node: \"n1\" is invalid: cannot be used together with spec.nodeSelector",
        "document 3: BGPPeer(p).spec.peerIP: 10.0.0.1 is invalid: cannot be used together with spec.peerSelector",
        "document 3: BGPPeer(p).spec.asNumber: 65000 is invalid: cannot be used together with spec.peerSelector",
        "document 4: kind `Widget` is not supported",
        "document 5: Node(n).apiVersion: `projectcalico.org/v1` is not supported",
    ];
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    for (got, want) in errs.iter().zip(expect) {
        assert!(got.starts_with(want), "got  {got}\nwant {want}");
    }
}

#[test]
fn duplicates_within_a_manifest_are_rejected() {
    let doc = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16}\n";
    let errs = errors_of(&format!("{doc}---\n{doc}"));
    assert_eq!(
        errs,
        vec!["document 2: IPPool(a) appears more than once in the manifest"]
    );
}

#[test]
fn syntax_errors_and_non_resources_are_reported() {
    let errs = errors_of("kind: IPPool\n  bad: [indent\n");
    assert!(
        errs[0].starts_with("document 1: not valid YAML or JSON"),
        "{}",
        errs[0]
    );
    let errs = errors_of("- 1\n- 2\n");
    assert!(errs[0].contains("expected a resource"), "{}", errs[0]);
    let errs = errors_of("apiVersion: projectcalico.org/v3\nmetadata: {name: a}\n");
    assert!(errs[0].contains("kind is missing"), "{}", errs[0]);
    let errs = errors_of("{\"kind\": ");
    assert!(errs[0].contains("not valid YAML or JSON"), "{}", errs[0]);
}

#[test]
fn missing_spec_reports_the_required_field() {
    let errs = errors_of("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\n");
    assert!(errs[0].contains("missing field `cidr`"), "{}", errs[0]);
    // Kinds whose spec has no required field accept a missing spec.
    let r = parse_manifest(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n",
    )
    .unwrap();
    assert_eq!(r.len(), 1);
}

#[test]
fn empty_documents_are_skipped() {
    let text = "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\n---\n";
    assert_eq!(parse_manifest(text).unwrap().len(), 1);
    assert_eq!(parse_manifest("").unwrap(), vec![]);
}

#[test]
fn every_kind_round_trips_through_yaml_and_json() {
    let text = CALICO_DOCS.replacen("  endpoint: eth0\n  interfaceName", "  interfaceName", 1);
    for r in parse_manifest(&text).unwrap() {
        for r in [r.clone(), r.defaulted()] {
            let yaml = r.to_yaml();
            assert_eq!(parse_manifest(&yaml).unwrap(), vec![r.clone()], "{yaml}");
            let json = r.to_json();
            assert_eq!(parse_manifest(&json).unwrap(), vec![r.clone()], "{json}");
            let back: Resource = serde_json::from_str(&json).unwrap();
            assert_eq!(back, r);
        }
    }
}

#[test]
fn lists_render_like_calicoctl_get() {
    let r = parse_manifest("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16}\n").unwrap();
    let v = list_value_of(Kind::IpPool, &r);
    assert_eq!(v["kind"], "IPPoolList");
    assert_eq!(v["items"][0]["spec"]["cidr"], "10.1.0.0/16");
    let again = parse_manifest(&v.to_string()).unwrap();
    assert_eq!(again, r);
}

#[test]
fn yaml_anchors_and_merge_keys_are_expanded() {
    let text = r#"
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: a}
spec: &base
  cidr: 10.1.0.0/16
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: b}
spec:
  <<: {natOutgoing: true, ipipMode: Always}
  cidr: 10.2.0.0/16
"#;
    let r = parse_manifest(text).unwrap_or_else(|e| panic!("{e}"));
    let Resource::IpPool(b) = &r[1] else { panic!() };
    assert!(b.spec.nat_outgoing);
    assert_eq!(b.spec.ipip_mode(), EncapMode::Always);
}

#[test]
fn overlapping_pools_in_one_manifest_are_rejected() {
    let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.0.0.0/16}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: b}\nspec: {cidr: 10.0.128.0/20}\n";
    let errs = errors_of(text);
    assert_eq!(
        errs,
        vec!["document 2: IPPool(b).spec.cidr: 10.0.128.0/20 is invalid: overlaps IPPool(a) 10.0.0.0/16; pool ranges must be disjoint"]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics_the_parser(s in "\\PC{0,200}") {
            let _ = parse_manifest(&s);
        }

        #[test]
        fn corrupted_manifests_never_panic_the_parser(
            cut in 0usize..2000,
            insert in "[ :\\-{}\\[\\]a-z0-9\\n'\"]{0,8}",
        ) {
            let text = CALICO_DOCS;
            let mut at = cut.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let corrupted = format!("{}{}{}", &text[..at], insert, &text[at..]);
            let _ = parse_manifest(&corrupted);
        }

        #[test]
        fn generated_pools_round_trip_after_defaulting(
            a in 1u8..=223, b: u8, prefix in 8u8..=24, block in 24u8..=32, nat: bool,
        ) {
            let cidr: ipnet::IpNet = format!("{a}.{b}.0.0/{prefix}").parse().unwrap();
            let text = format!(
                "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: {}, blockSize: {block}, natOutgoing: {nat}}}\n",
                cidr.trunc()
            );
            // Keep clear of the loopback and link-local ranges.
            prop_assume!(a != 127 && a != 169);
            let r = parse_manifest(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let stored = r[0].clone().defaulted();
            prop_assert_eq!(parse_manifest(&stored.to_yaml()).unwrap(), vec![stored.clone()]);
            prop_assert_eq!(parse_manifest(&stored.to_json()).unwrap(), vec![stored]);
        }
    }
}
