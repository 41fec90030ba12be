//! Shared helpers for the kernel tests: namespaces shaped like nodes and pods.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tortie_felix::input::{EncapMode, LocalWorkload, PathSource, Pool, RemoteBlock};
use tortie_felix::{compute, FelixConfig, FelixInput};
use tortie_felix_dataplane::{DataplaneOptions, FelixDataplane, IpipSupport, NatSupport};
use tortie_testkit::{unique_prefix, Netns};

/// Parses an IP.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A config whose MTU file lives in a temp dir.
pub fn config(dir: &tempfile::TempDir) -> FelixConfig {
    FelixConfig {
        mtu_file: dir.path().join("mtu").to_string_lossy().into_owned(),
        ..FelixConfig::default()
    }
}

/// Opens felix in `ns` (no tunl0 on this kernel).
pub fn felix(ns: &Netns, cfg: &FelixConfig) -> FelixDataplane {
    FelixDataplane::open(DataplaneOptions {
        config: cfg.clone(),
        netns: Some(PathBuf::from(ns.path())),
        resync_interval: Duration::from_secs(90),
        ipip: IpipSupport::Skip,
        nat: NatSupport::Manage,
    })
    .unwrap()
}

/// Computes desired state for `input` (host interfaces read from the namespace) and applies it.
pub fn apply(
    f: &mut FelixDataplane,
    cfg: &FelixConfig,
    mut input: FelixInput,
) -> tortie_felix::ApplyReport {
    input.host_interfaces = f.host_interfaces().unwrap();
    f.set_desired(compute(&input, cfg));
    f.apply(Instant::now()).unwrap()
}

/// A pod namespace joined to `node` by veth `cali` (host side) with `pod_ip`.
pub fn pod(node: &Netns, name: &str, cali: &str, pod_ip: &str) -> Netns {
    let p = Netns::create(name).unwrap();
    node.ip(&[
        "link",
        "add",
        cali,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        p.name(),
    ])
    .unwrap();
    node.ip(&["link", "set", cali, "up"]).unwrap();
    p.ip(&["addr", "add", &format!("{pod_ip}/32"), "dev", "eth0"])
        .unwrap();
    p.ip(&["link", "set", "eth0", "up"]).unwrap();
    p.ip(&[
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
        "scope",
        "link",
    ])
    .unwrap();
    p.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])
    .unwrap();
    p
}

/// A pool.
pub fn pool(cidr: &str, ipip: EncapMode, vxlan: EncapMode, nat: bool) -> Pool {
    Pool {
        cidr: cidr.parse().unwrap(),
        ipip_mode: ipip,
        vxlan_mode: vxlan,
        nat_outgoing: nat,
    }
}

/// A workload.
pub fn workload(cali: &str, addr: &str) -> LocalWorkload {
    LocalWorkload {
        interface: cali.into(),
        addresses: vec![ip(addr)],
    }
}

/// `ip -n NS route add DST via GW proto PROTO`: a route as another program
/// (or an earlier felix) left it.
pub fn add_route(ns: &Netns, dst: &str, via: &str, proto: &str) {
    ns.ip(&["route", "add", dst, "via", via, "proto", proto])
        .unwrap();
}

/// `ip -n NS route show ARGS`, one route per line.
pub fn routes(ns: &Netns, args: &[&str]) -> String {
    let mut a = vec!["route", "show"];
    a.extend_from_slice(args);
    ns.ip_out(&a).unwrap()
}

/// A node namespace `<prefix>n` (10.0.1.5/24 on `eth0`) on a veth to a peer
/// `<prefix>peer` (10.0.1.6/24), a pod `<prefix>pod` on `calia`
/// (10.244.1.5), and a felix config whose files live in a temp dir. The
/// namespaces are deleted on drop (pod first, as a test's locals would go).
pub struct NodeWithPod {
    pub pod: Netns,
    pub peer: Netns,
    pub n: Netns,
    pub cfg: FelixConfig,
    pub dir: tempfile::TempDir,
}

impl NodeWithPod {
    /// Namespaces named from `tag` with [`unique_prefix`].
    pub fn new(tag: &str) -> Self {
        let p = unique_prefix(tag);
        let n = Netns::create(&format!("{p}n")).unwrap();
        let peer = Netns::create(&format!("{p}peer")).unwrap();
        n.veth_to("eth0", "10.0.1.5/24", &peer, "eth0", "10.0.1.6/24")
            .unwrap();
        let pod = pod(&n, &format!("{p}pod"), "calia", "10.244.1.5");
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir);
        Self {
            pod,
            peer,
            n,
            cfg,
            dir,
        }
    }
}

/// The node's input as the datastore gives it: node `n1` at 10.0.1.5, pool
/// 10.244.0.0/16 (no encapsulation), the pod on `calia` in local block
/// 10.244.1.0/26, and `remote_blocks`.
pub fn node_input(remote_blocks: Vec<RemoteBlock>) -> FelixInput {
    FelixInput {
        node_name: "n1".into(),
        node_ip: Some("10.0.1.5/24".parse().unwrap()),
        pools: vec![pool(
            "10.244.0.0/16",
            EncapMode::Never,
            EncapMode::Never,
            false,
        )],
        workloads: vec![workload("calia", "10.244.1.5")],
        local_blocks: vec!["10.244.1.0/26".parse().unwrap()],
        remote_blocks,
        ..Default::default()
    }
}

/// A remote block learned over BGP via `hop`.
pub fn bgp_block(cidr: &str, hop: &str) -> RemoteBlock {
    RemoteBlock {
        cidr: cidr.parse().unwrap(),
        next_hops: vec![ip(hop)],
        source: PathSource::Bgp,
    }
}
