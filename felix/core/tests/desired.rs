//! Desired state: which route each kind of block and pool mode produces.

use std::net::IpAddr;

use tortie_felix::input::{EncapMode, LocalWorkload, PathSource, Pool, RemoteBlock, RemoteVtep};
use tortie_felix::{compute, FelixConfig, FelixInput, NextHop, RouteKey, RouteKind, RouteSpec};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn base(ipip: EncapMode, vxlan: EncapMode) -> FelixInput {
    FelixInput {
        node_name: "n1".into(),
        node_ip: Some("10.0.1.5/24".parse().unwrap()),
        ipip_tunnel_addr: Some(ip("192.168.1.0")),
        vxlan_tunnel_addr: Some(ip("192.168.1.1")),
        pools: vec![Pool {
            cidr: "192.168.0.0/16".parse().unwrap(),
            ipip_mode: ipip,
            vxlan_mode: vxlan,
            nat_outgoing: true,
        }],
        workloads: vec![LocalWorkload {
            interface: "cali0123456789a".into(),
            addresses: vec![ip("192.168.1.5"), ip("fd00::5")],
        }],
        local_blocks: vec!["192.168.1.0/26".parse().unwrap()],
        remote_blocks: vec![
            RemoteBlock {
                cidr: "192.168.2.0/26".parse().unwrap(),
                next_hops: vec![ip("10.0.1.6")],
                source: PathSource::Bgp,
            },
            RemoteBlock {
                cidr: "192.168.3.0/26".parse().unwrap(),
                next_hops: vec![ip("10.0.2.7")],
                source: PathSource::Bgp,
            },
        ],
        remote_vteps: vec![
            RemoteVtep {
                node: "n2".into(),
                node_ip: ip("10.0.1.6"),
                vtep_ip: ip("192.168.2.1"),
                vtep_mac: "66:00:00:00:00:02".into(),
            },
            RemoteVtep {
                node: "n3".into(),
                node_ip: ip("10.0.2.7"),
                vtep_ip: ip("192.168.3.1"),
                vtep_mac: "66:00:00:00:00:03".into(),
            },
        ],
        ..Default::default()
    }
}

fn route(input: &FelixInput, dst: &str) -> RouteSpec {
    let key = RouteKey {
        table: 254,
        dst: dst.parse().unwrap(),
    };
    compute(input, &FelixConfig::default()).routes[&key].clone()
}

#[test]
fn local_workloads_get_host_routes_to_their_veths() {
    let i = base(EncapMode::Never, EncapMode::Never);
    for dst in ["192.168.1.5/32", "fd00::5/128"] {
        let r = route(&i, dst);
        assert_eq!(r.protocol, 80);
        assert_eq!(r.next_hops, vec![NextHop::dev("cali0123456789a")]);
    }
}

#[test]
fn affine_blocks_get_blackholes_with_felix_protocol() {
    let r = route(&base(EncapMode::Never, EncapMode::Never), "192.168.1.0/26");
    assert_eq!(r.kind, RouteKind::Blackhole);
    assert_eq!(r.protocol, 80);
}

#[test]
fn never_mode_routes_directly_via_the_node_with_bgp_protocol() {
    let i = base(EncapMode::Never, EncapMode::Never);
    let r = route(&i, "192.168.2.0/26");
    assert_eq!(r.next_hops, vec![NextHop::via(ip("10.0.1.6"))]);
    assert_eq!(r.protocol, tortie_felix::config::PROTO_BGP);
}

#[test]
fn never_mode_routes_to_an_off_subnet_node_only_when_an_interface_reaches_it() {
    let mut i = base(EncapMode::Never, EncapMode::Never);
    let key = RouteKey {
        table: FelixConfig::default().table,
        dst: "192.168.3.0/26".parse().unwrap(),
    };
    // 10.0.2.7 is not on link: the kernel would refuse it as a gateway.
    assert!(!compute(&i, &FelixConfig::default())
        .routes
        .contains_key(&key));
    i.connected = vec!["10.0.2.0/24".parse().unwrap()];
    assert_eq!(
        route(&i, "192.168.3.0/26").next_hops,
        vec![NextHop::via(ip("10.0.2.7"))]
    );
}

#[test]
fn ipip_always_goes_through_tunl0_onlink() {
    let i = base(EncapMode::Always, EncapMode::Never);
    assert_eq!(
        route(&i, "192.168.2.0/26").next_hops,
        vec![NextHop::via_onlink(ip("10.0.1.6"), "tunl0")]
    );
}

#[test]
fn ipip_cross_subnet_is_direct_inside_the_subnet_and_tunnelled_outside() {
    let i = base(EncapMode::CrossSubnet, EncapMode::Never);
    assert_eq!(
        route(&i, "192.168.2.0/26").next_hops,
        vec![NextHop::via(ip("10.0.1.6"))]
    );
    assert_eq!(
        route(&i, "192.168.3.0/26").next_hops,
        vec![NextHop::via_onlink(ip("10.0.2.7"), "tunl0")]
    );
}

#[test]
fn same_subnet_uses_the_node_ip_prefix_length() {
    let mut i = base(EncapMode::CrossSubnet, EncapMode::Never);
    i.node_ip = Some("10.0.1.5/16".parse().unwrap());
    assert_eq!(
        route(&i, "192.168.3.0/26").next_hops,
        vec![NextHop::via(ip("10.0.2.7"))]
    );
}

#[test]
fn vxlan_routes_go_via_the_remote_vtep_on_the_vxlan_device() {
    let i = base(EncapMode::Never, EncapMode::Always);
    assert_eq!(
        route(&i, "192.168.2.0/26").next_hops,
        vec![NextHop::via_onlink(ip("192.168.2.1"), "vxlan.calico")]
    );
    let d = compute(&i, &FelixConfig::default());
    let vx = d.vxlan.unwrap();
    assert_eq!((vx.vni, vx.port, vx.mtu), (4096, 4789, 1450));
    assert_eq!(d.vteps.len(), 2);
}

#[test]
fn vxlan_cross_subnet_is_direct_inside_the_subnet() {
    let i = base(EncapMode::Never, EncapMode::CrossSubnet);
    assert_eq!(
        route(&i, "192.168.2.0/26").next_hops,
        vec![NextHop::via(ip("10.0.1.6"))]
    );
    assert_eq!(
        route(&i, "192.168.3.0/26").next_hops,
        vec![NextHop::via_onlink(ip("192.168.3.1"), "vxlan.calico")]
    );
}

#[test]
fn several_next_hops_make_an_ecmp_route_even_through_tunl0() {
    let mut i = base(EncapMode::Always, EncapMode::Never);
    i.remote_blocks[0].next_hops = vec![ip("10.0.1.7"), ip("10.0.1.6")];
    assert_eq!(
        route(&i, "192.168.2.0/26").next_hops,
        vec![
            NextHop::via_onlink(ip("10.0.1.6"), "tunl0"),
            NextHop::via_onlink(ip("10.0.1.7"), "tunl0"),
        ]
    );
}

#[test]
fn datastore_blocks_carry_felix_protocol() {
    let mut i = base(EncapMode::Never, EncapMode::Always);
    i.remote_blocks[0].source = PathSource::Datastore;
    assert_eq!(route(&i, "192.168.2.0/26").protocol, 80);
}

#[test]
fn ipip_off_leaves_tunl0_without_address_and_nat_lists_pools() {
    let d = compute(
        &base(EncapMode::Never, EncapMode::Never),
        &FelixConfig::default(),
    );
    let t = d.ipip.unwrap();
    assert!(!t.enabled);
    assert_eq!(t.address, None);
    assert_eq!(d.nat.masquerade_from.len(), 1);
    assert_eq!(d.sysctls["net/ipv4/conf/cali0123456789a/proxy_arp"], "1");
    assert_eq!(d.sysctls["net/ipv6/conf/cali0123456789a/proxy_ndp"], "1");
}

#[test]
fn input_round_trips_through_json() {
    let i = base(EncapMode::CrossSubnet, EncapMode::Never);
    let s = serde_json::to_string(&i).unwrap();
    assert_eq!(serde_json::from_str::<FelixInput>(&s).unwrap(), i);
}
