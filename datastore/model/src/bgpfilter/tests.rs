use super::*;
use crate::{parse_manifest, Kind, Resource};

fn filter(spec_yaml: &str) -> Result<BgpFilter, String> {
    let text = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: my-filter\nspec:\n{spec_yaml}"
    );
    match parse_manifest(&text).map_err(|e| e.to_string())?.remove(0) {
        Resource::BgpFilter(f) => Ok(f),
        other => panic!("{other:?}"),
    }
}

fn errors(spec_yaml: &str) -> Vec<String> {
    match filter(spec_yaml) {
        Ok(f) => f.validate().into_iter().map(|e| e.to_string()).collect(),
        Err(e) => vec![e],
    }
}

#[test]
fn calicos_sample_without_interface_rules_applies_unchanged() {
    // docs.tigera.io "BGP Filter" sample, less its `interface` rules.
    let f = filter(
        "  exportV4:\n  - action: Accept\n    matchOperator: In\n    cidr: 77.0.0.0/16\n    source: RemotePeers\n  importV4:\n  - action: Accept\n    matchOperator: In\n    cidr: 55.0.0.0/16\n    prefixLength:\n      min: 30\n  - action: Reject\n    matchOperator: NotIn\n    cidr: 44.0.0.0/16\n  exportV6:\n  - action: Reject\n    source: RemotePeers\n  importV6:\n  - action: Accept\n    matchOperator: Equal\n    cidr: 5000::0/64\n  - action: Reject\n",
    )
    .unwrap();
    assert_eq!(f.validate(), vec![]);
    assert_eq!(f.spec.import_v4[0].prefix_length.unwrap().min, Some(30));
    assert_eq!(
        f.spec.export_v4[0].source,
        Some(BgpFilterSource::RemotePeers)
    );
    assert_eq!(f.spec.import_v6[1].action, BgpFilterAction::Reject);
    // It reads back as it was written.
    let yaml = Resource::BgpFilter(f.clone()).to_yaml();
    let again = filter(yaml.split_once("spec:\n").unwrap().1).unwrap();
    assert_eq!(again.spec, f.spec);
}

#[test]
fn interface_rules_are_refused_by_name() {
    let e = errors("  exportV4:\n  - action: Reject\n    interface: '*.calico'\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("BGPFilter(my-filter).spec.exportV4[0].interface"),
        "{e:?}"
    );
    assert!(e[0].contains("is not supported by tortie"), "{e:?}");
}

#[test]
fn cidr_and_match_operator_go_together_and_match_the_list_family() {
    let e = errors("  importV4:\n  - action: Reject\n    cidr: 10.0.0.0/8\n");
    assert!(
        e[0].contains("spec.importV4[0].cidr") && e[0].contains("matchOperator"),
        "{e:?}"
    );
    let e = errors("  importV4:\n  - action: Reject\n    matchOperator: In\n");
    assert!(e[0].contains("spec.importV4[0].matchOperator"), "{e:?}");
    let e =
        errors("  importV6:\n  - action: Reject\n    matchOperator: In\n    cidr: 10.0.0.0/8\n");
    assert!(
        e[0].contains("spec.importV6[0].cidr") && e[0].contains("IPv6"),
        "{e:?}"
    );
    let e =
        errors("  exportV4:\n  - action: Reject\n    matchOperator: In\n    cidr: 10.0.0.1/8\n");
    assert!(
        e[0].contains("spec.exportV4[0].cidr") && e[0].contains("10.0.0.0/8"),
        "{e:?}"
    );
}

#[test]
fn prefix_lengths_are_checked() {
    let e = errors("  importV4:\n  - action: Accept\n    matchOperator: In\n    cidr: 10.0.0.0/8\n    prefixLength: {min: 24, max: 33}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("spec.importV4[0].prefixLength.max"), "{e:?}");
    let e = errors("  importV6:\n  - action: Accept\n    matchOperator: In\n    cidr: fd00::/8\n    prefixLength: {min: 64, max: 48}\n");
    assert!(
        e[0].contains("prefixLength.min") && e[0].contains("max"),
        "{e:?}"
    );
    let e = errors("  importV4:\n  - action: Accept\n    matchOperator: Equal\n    cidr: 10.0.0.0/8\n    prefixLength: {min: 24}\n");
    assert!(
        e[0].contains("prefixLength") && e[0].contains("In or NotIn"),
        "{e:?}"
    );
    let e = errors("  importV4:\n  - action: Accept\n    prefixLength: {min: 24}\n");
    assert!(
        e.iter().any(|x| x.contains("prefixLength needs cidr")),
        "{e:?}"
    );
}

#[test]
fn source_is_for_export_rules_only() {
    let e = errors("  importV4:\n  - action: Reject\n    source: RemotePeers\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("spec.importV4[0].source") && e[0].contains("import rules"),
        "{e:?}"
    );
}

#[test]
fn bad_values_and_later_calico_fields_name_their_path() {
    let e = errors("  exportV4:\n  - action: Drop\n");
    assert!(e[0].contains("exportV4[0].action"), "{e:?}");
    let e = errors("  exportV4:\n  - action: Accept\n    peerType: eBGP\n");
    assert!(e[0].contains("peerType"), "{e:?}");
    let e = errors(
        "  exportV4:\n  - action: Accept\n    matchOperator: Within\n    cidr: 10.0.0.0/8\n",
    );
    assert!(e[0].contains("matchOperator"), "{e:?}");
}

#[test]
fn the_cli_names_it_as_calicoctl() {
    assert_eq!(Kind::from_cli_name("bgpfilters"), Some(Kind::BgpFilter));
    assert_eq!(Kind::from_cli_name("bgpfilter"), Some(Kind::BgpFilter));
    assert_eq!(Kind::BgpFilter.plural(), "bgpfilters");
}
