//! Kernel test (root): NAT outgoing masquerades pod traffic leaving the
//! pools, so a host that only knows the node can answer a pod.

mod common;

use common::*;
use tortie_felix::input::EncapMode;
use tortie_felix::FelixInput;
use tortie_testkit::{unique_prefix, Netns};

fn input(nat: bool) -> FelixInput {
    FelixInput {
        node_name: "n1".into(),
        node_ip: Some("10.0.1.5/24".parse().unwrap()),
        pools: vec![
            pool("10.244.0.0/16", EncapMode::Never, EncapMode::Never, nat),
            pool("10.245.0.0/16", EncapMode::Never, EncapMode::Never, false),
        ],
        workloads: vec![workload("calipod", "10.244.1.5")],
        local_blocks: vec!["10.244.1.0/26".parse().unwrap()],
        ..Default::default()
    }
}

fn ping(from: &Netns, to: &str) -> bool {
    from.command("ping")
        .args(["-c1", "-W1", to])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
#[ignore = "root: creates network namespaces and nftables tables"]
fn nat_outgoing_masquerades_pod_traffic_leaving_the_pools() {
    let p = unique_prefix("nat");
    let n = Netns::create(&format!("{p}n")).unwrap();
    let ext = Netns::create(&format!("{p}ext")).unwrap();
    // The outside host knows only the node's subnet, not the pod CIDR.
    n.veth_to("eth0", "10.0.1.5/24", &ext, "eth0", "10.0.1.100/24")
        .unwrap();
    // A default route, as every real node has: proxy ARP for the pods'
    // gateway 169.254.1.1 needs a route to it through another interface.
    n.ip(&["route", "add", "default", "via", "10.0.1.100"])
        .unwrap();
    let pod1 = pod(&n, &format!("{p}pod"), "calipod", "10.244.1.5");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut f = felix(&n, &cfg);

    apply(&mut f, &cfg, input(false));
    assert!(
        !ping(&pod1, "10.0.1.100"),
        "answered without NAT: the test proves nothing"
    );

    apply(&mut f, &cfg, input(true));
    let rules = n
        .exec(&["nft", "list", "table", "ip", "tortie-nat"])
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    assert!(rules.contains("masquerade"), "{rules}");
    assert!(
        ping(&pod1, "10.0.1.100"),
        "pod could not reach the outside host through NAT"
    );

    apply(&mut f, &cfg, input(false));
    assert!(
        n.exec(&["nft", "list", "table", "ip", "tortie-nat"])
            .is_err(),
        "table left behind"
    );
}
