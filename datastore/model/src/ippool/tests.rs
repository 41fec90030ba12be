use super::*;
use crate::resource::Resource;

fn pool(cidr: &str) -> IpPool {
    IpPool::new("pool-a", cidr.parse().unwrap())
}

fn reasons(p: &IpPool) -> Vec<(String, Reason)> {
    p.validate()
        .into_iter()
        .map(|e| (e.path, e.reason))
        .collect()
}

#[test]
fn defaults_follow_calico() {
    let mut p = pool("10.244.0.0/16");
    assert_eq!(p.spec.block_size(), 26);
    p.apply_defaults();
    assert_eq!(p.spec.block_size, Some(26));
    assert_eq!(p.spec.ipip_mode, Some(EncapMode::Never));
    assert_eq!(p.spec.vxlan_mode, Some(EncapMode::Never));
    assert_eq!(p.spec.node_selector.as_deref(), Some("all()"));
    assert_eq!(
        p.spec.allowed_uses,
        vec![AllowedUse::Workload, AllowedUse::Tunnel]
    );
    assert!(!p.spec.nat_outgoing);
    let v6 = pool("fd00:10:244::/48");
    assert_eq!(v6.spec.block_size(), 122);
}

#[test]
fn a_default_pool_is_valid() {
    assert_eq!(pool("10.244.0.0/16").validate(), vec![]);
    assert_eq!(pool("fd00:10:244::/48").validate(), vec![]);
}

#[test]
fn host_bits_are_rejected_with_the_masked_form() {
    let errs = pool("10.244.0.1/16").validate();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "IPPool(pool-a).spec.cidr");
    assert_eq!(errs[0].value, "10.244.0.1/16");
    assert_eq!(
        errs[0].reason,
        Reason::NotMasked {
            masked: "10.244.0.0/16".into()
        }
    );
    assert!(errs[0].to_string().contains("use 10.244.0.0/16"));
}

#[test]
fn reserved_ranges_are_rejected() {
    for (cidr, what) in [
        ("169.254.0.0/16", "link-local"),
        ("169.254.10.0/24", "link-local"),
        ("169.0.0.0/8", "link-local"),
        ("127.0.0.0/16", "loopback"),
        ("224.0.0.0/8", "multicast"),
        ("fe80::/64", "link-local"),
        ("ff02::/120", "multicast"),
    ] {
        let errs = reasons(&pool(cidr));
        assert!(
            errs.iter()
                .any(|(_, r)| matches!(r, Reason::ReservedRange { what: w, .. } if *w == what)),
            "{cidr}: {errs:?}"
        );
    }
}

#[test]
fn block_size_must_fit_the_family_range() {
    for (cidr, bs, ok) in [
        ("10.0.0.0/8", 20, true),
        ("10.0.0.0/8", 32, true),
        ("10.0.0.0/8", 19, false),
        ("10.0.0.0/8", 33, false),
        ("fd00::/64", 116, true),
        ("fd00::/64", 128, true),
        ("fd00::/64", 115, false),
        ("fd00::/64", 26, false),
    ] {
        let mut p = pool(cidr);
        p.spec.block_size = Some(bs);
        let errs = p.validate();
        assert_eq!(errs.is_empty(), ok, "{cidr} /{bs}: {errs:?}");
        if !ok {
            assert_eq!(errs[0].path, "IPPool(pool-a).spec.blockSize");
            assert!(errs[0].to_string().contains("must be between"));
        }
    }
}

#[test]
fn a_pool_smaller_than_a_block_is_rejected_unless_disabled() {
    let mut p = pool("10.0.0.0/28");
    let errs = reasons(&p);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0],
        (
            "IPPool(pool-a).spec.cidr".into(),
            Reason::PoolSmallerThanBlock { block_size: 26 }
        )
    );
    p.spec.disabled = true;
    assert_eq!(p.validate(), vec![]);
}

#[test]
fn ipip_and_vxlan_are_exclusive_and_ipip_needs_ipv4() {
    let mut p = pool("10.0.0.0/16");
    p.spec.ipip_mode = Some(EncapMode::CrossSubnet);
    p.spec.vxlan_mode = Some(EncapMode::Always);
    let errs = reasons(&p);
    assert_eq!(
        errs,
        vec![(
            "IPPool(pool-a).spec.ipipMode".into(),
            Reason::Exclusive {
                other: "spec.vxlanMode"
            }
        )]
    );
    p.spec.vxlan_mode = Some(EncapMode::Never);
    assert_eq!(p.validate(), vec![]);

    let mut v6 = pool("fd00::/64");
    v6.spec.ipip_mode = Some(EncapMode::Always);
    assert_eq!(reasons(&v6)[0].1, Reason::NotOnIpv6 { what: "IPIP" });
    v6.spec.ipip_mode = None;
    v6.spec.vxlan_mode = Some(EncapMode::Always);
    assert_eq!(v6.validate(), vec![]);
}

#[test]
fn selectors_must_parse() {
    let mut p = pool("10.0.0.0/16");
    p.spec.node_selector = Some("rack == ".into());
    let errs = p.validate();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "IPPool(pool-a).spec.nodeSelector");
    assert!(errs[0].to_string().contains("position 9"), "{}", errs[0]);
}

#[test]
fn load_balancer_use_stands_alone() {
    let mut p = pool("10.0.0.0/16");
    p.spec.allowed_uses = vec![AllowedUse::LoadBalancer, AllowedUse::Workload];
    assert_eq!(p.validate().len(), 1);
    p.spec.allowed_uses = vec![AllowedUse::LoadBalancer];
    assert_eq!(p.validate(), vec![]);
}

#[test]
fn bad_names_are_rejected() {
    let mut p = pool("10.0.0.0/16");
    p.metadata.name = "Pool_A".into();
    let errs = p.validate();
    assert_eq!(errs[0].path, "IPPool(Pool_A).metadata.name");
    assert_eq!(errs[0].reason, Reason::NotDns1123Subdomain);
}

#[test]
fn round_trips_through_yaml_and_json_with_calico_names() {
    let mut p = pool("10.244.0.0/16");
    p.spec.nat_outgoing = true;
    p.spec.disable_bgp_export = true;
    p.spec.ipip_mode = Some(EncapMode::CrossSubnet);
    p.metadata.labels.insert("zone".into(), "a".into());
    p.apply_defaults();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["apiVersion"], "projectcalico.org/v3");
    assert_eq!(json["kind"], "IPPool");
    assert_eq!(json["spec"]["disableBGPExport"], true);
    assert_eq!(json["spec"]["natOutgoing"], true);
    assert_eq!(json["spec"]["ipipMode"], "CrossSubnet");
    assert_eq!(json["spec"]["blockSize"], 26);
    let back: IpPool = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
    let yaml = Resource::from(p.clone()).to_yaml();
    let back: IpPool = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, p);
}

#[test]
fn node_selector_decides_which_nodes_allocate() {
    use std::collections::BTreeMap;
    let mut p = pool("10.0.0.0/16");
    let zone_a: BTreeMap<String, String> = [("zone".to_owned(), "a".to_owned())].into();
    assert!(p.spec.selects_node(&BTreeMap::new()), "default all()");
    p.spec.node_selector = Some("zone == 'a'".into());
    assert!(p.spec.selects_node(&zone_a));
    assert!(!p.spec.selects_node(&BTreeMap::new()));
}
