//! Kernel tests (root): pods on different nodes ping each other through
//! `vxlan.calico` (VXLAN Always) and, in CrossSubnet mode, directly inside
//! the subnet and through VXLAN across a router.

mod common;

use std::time::Instant;

use common::*;
use tortie_felix::desired::mac_for_node;
use tortie_felix::input::{EncapMode, PathSource, RemoteBlock, RemoteVtep};
use tortie_felix::FelixInput;
use tortie_testkit::{unique_prefix, Netns};

struct Node {
    name: &'static str,
    ip: &'static str,
    block: &'static str,
    vtep: &'static str,
    pod_ip: &'static str,
}

const N1: Node = Node {
    name: "n1",
    ip: "10.0.1.5",
    block: "10.244.1.0/26",
    vtep: "10.244.1.0",
    pod_ip: "10.244.1.5",
};
const N2: Node = Node {
    name: "n2",
    ip: "10.0.1.6",
    block: "10.244.2.0/26",
    vtep: "10.244.2.0",
    pod_ip: "10.244.2.5",
};
const N3: Node = Node {
    name: "n3",
    ip: "10.0.2.7",
    block: "10.244.3.0/26",
    vtep: "10.244.3.0",
    pod_ip: "10.244.3.5",
};

fn input(me: &Node, others: &[&Node], mode: EncapMode) -> FelixInput {
    let mac = |n: &Node| {
        mac_for_node(n.name)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    FelixInput {
        node_name: me.name.into(),
        node_ip: Some(format!("{}/24", me.ip).parse().unwrap()),
        vxlan_tunnel_addr: Some(ip(me.vtep)),
        pools: vec![pool("10.244.0.0/16", EncapMode::Never, mode, true)],
        workloads: vec![workload("calipod", me.pod_ip)],
        local_blocks: vec![me.block.parse().unwrap()],
        remote_blocks: others
            .iter()
            .map(|o| RemoteBlock {
                cidr: o.block.parse().unwrap(),
                next_hops: vec![ip(o.ip)],
                source: PathSource::Datastore,
            })
            .collect(),
        remote_vteps: others
            .iter()
            .map(|o| RemoteVtep {
                node: o.name.into(),
                node_ip: ip(o.ip),
                vtep_ip: ip(o.vtep),
                vtep_mac: mac(o),
            })
            .collect(),
        ..Default::default()
    }
}

fn sysctl(ns: &Netns, key: &str, v: &str) {
    ns.exec(&["sysctl", "-qw", &format!("{key}={v}")]).unwrap();
}

fn vxlan_tx_packets(ns: &Netns) -> u64 {
    let s = ns
        .exec(&["cat", "/sys/class/net/vxlan.calico/statistics/tx_packets"])
        .unwrap();
    String::from_utf8_lossy(&s.stdout).trim().parse().unwrap()
}

fn ping(from: &Netns, to: &str) -> bool {
    from.command("ping")
        .args(["-c2", "-i0.2", "-W2", to])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
#[ignore = "root: creates network namespaces and VXLAN devices"]
fn two_nodes_ping_pod_to_pod_through_vxlan() {
    let p = unique_prefix("vx");
    let n1 = Netns::create(&format!("{p}n1")).unwrap();
    let n2 = Netns::create(&format!("{p}n2")).unwrap();
    n1.veth_to("eth0", "10.0.1.5/24", &n2, "eth0", "10.0.1.6/24")
        .unwrap();
    // Default routes, as real nodes have: proxy ARP for the pods' gateway
    // 169.254.1.1 needs a route to it through another interface.
    n1.ip(&["route", "add", "default", "via", "10.0.1.6"])
        .unwrap();
    n2.ip(&["route", "add", "default", "via", "10.0.1.5"])
        .unwrap();
    let pod1 = pod(&n1, &format!("{p}p1"), "calipod", N1.pod_ip);
    let _pod2 = pod(&n2, &format!("{p}p2"), "calipod", N2.pod_ip);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut f1 = felix(&n1, &cfg);
    let mut f2 = felix(&n2, &cfg);
    assert_eq!(
        apply(&mut f1, &cfg, input(&N1, &[&N2], EncapMode::Always)).failed,
        0
    );
    assert_eq!(
        apply(&mut f2, &cfg, input(&N2, &[&N1], EncapMode::Always)).failed,
        0
    );

    let link = n1.ip_out(&["-d", "link", "show", "vxlan.calico"]).unwrap();
    assert!(
        link.contains("vxlan id 4096") && link.contains("dstport 4789"),
        "{link}"
    );
    assert!(link.contains("mtu 1450"), "{link}");
    let fdb = n1
        .exec(&["bridge", "fdb", "show", "dev", "vxlan.calico"])
        .unwrap();
    assert!(String::from_utf8_lossy(&fdb.stdout).contains("dst 10.0.1.6"));
    let r = routes(&n1, &[N2.block]);
    assert!(
        r.contains("via 10.244.2.0 dev vxlan.calico proto 80 onlink"),
        "{r}"
    );

    let before = vxlan_tx_packets(&n1);
    assert!(ping(&pod1, N2.pod_ip), "pod1 -> pod2 over VXLAN");
    assert!(
        vxlan_tx_packets(&n1) > before,
        "traffic did not use vxlan.calico"
    );
    // Nothing to do on a second pass.
    let rep = f1.apply(Instant::now()).unwrap();
    assert_eq!((rep.replaced, rep.deleted), (0, 0));

    // n2 leaves: its route, FDB entry and neighbour go with it.
    assert_eq!(
        apply(&mut f1, &cfg, input(&N1, &[], EncapMode::Always)).deleted,
        1
    );
    let fdb = n1
        .exec(&["bridge", "fdb", "show", "dev", "vxlan.calico"])
        .unwrap();
    assert!(!String::from_utf8_lossy(&fdb.stdout).contains("dst 10.0.1.6"));
    let neigh = n1
        .ip_out(&["neigh", "show", "dev", "vxlan.calico"])
        .unwrap();
    assert!(!neigh.contains("10.244.2.0"), "{neigh}");
}

#[test]
#[ignore = "root: creates network namespaces and VXLAN devices"]
fn vxlan_cross_subnet_is_direct_inside_the_subnet_and_encapsulated_across() {
    let p = unique_prefix("vc");
    let r = Netns::create(&format!("{p}r")).unwrap();
    let n1 = Netns::create(&format!("{p}n1")).unwrap();
    let n2 = Netns::create(&format!("{p}n2")).unwrap();
    let n3 = Netns::create(&format!("{p}n3")).unwrap();
    r.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    r.ip(&["addr", "add", "10.0.1.1/24", "dev", "br0"]).unwrap();
    r.ip(&["link", "set", "br0", "up"]).unwrap();
    for (n, node, port) in [(&n1, &N1, "p1"), (&n2, &N2, "p2")] {
        r.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            n.name(),
        ])
        .unwrap();
        r.ip(&["link", "set", port, "master", "br0", "up"]).unwrap();
        n.ip(&["addr", "add", &format!("{}/24", node.ip), "dev", "eth0"])
            .unwrap();
        n.ip(&["link", "set", "eth0", "up"]).unwrap();
        n.ip(&["route", "add", "default", "via", "10.0.1.1"])
            .unwrap();
    }
    r.veth_to("p3", "10.0.2.1/24", &n3, "eth0", "10.0.2.7/24")
        .unwrap();
    n3.ip(&["route", "add", "default", "via", "10.0.2.1"])
        .unwrap();
    sysctl(&r, "net.ipv4.ip_forward", "1");
    let pod1 = pod(&n1, &format!("{p}p1"), "calipod", N1.pod_ip);
    let _pod2 = pod(&n2, &format!("{p}p2"), "calipod", N2.pod_ip);
    let _pod3 = pod(&n3, &format!("{p}p3"), "calipod", N3.pod_ip);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mode = EncapMode::CrossSubnet;
    let mut fs = Vec::new();
    for (n, me, others) in [
        (&n1, &N1, [&N2, &N3]),
        (&n2, &N2, [&N1, &N3]),
        (&n3, &N3, [&N1, &N2]),
    ] {
        let mut f = felix(n, &cfg);
        assert_eq!(apply(&mut f, &cfg, input(me, &others, mode)).failed, 0);
        fs.push(f);
    }
    let rt = routes(&n1, &[]);
    assert!(
        rt.contains("10.244.2.0/26 via 10.0.1.6 dev eth0 proto 80"),
        "{rt}"
    );
    assert!(
        rt.contains("10.244.3.0/26 via 10.244.3.0 dev vxlan.calico proto 80 onlink"),
        "{rt}"
    );

    let before = vxlan_tx_packets(&n1);
    assert!(ping(&pod1, N2.pod_ip), "pod1 -> pod2 inside the subnet");
    assert_eq!(
        vxlan_tx_packets(&n1),
        before,
        "same-subnet traffic was encapsulated"
    );
    assert!(ping(&pod1, N3.pod_ip), "pod1 -> pod3 across the router");
    assert!(
        vxlan_tx_packets(&n1) > before,
        "cross-subnet traffic was not encapsulated"
    );
}
