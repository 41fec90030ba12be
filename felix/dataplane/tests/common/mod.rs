//! Shared helpers for the kernel tests: namespaces shaped like nodes and pods.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tortie_felix::input::{EncapMode, LocalWorkload, Pool};
use tortie_felix::{compute, FelixConfig, FelixInput};
use tortie_felix_dataplane::{DataplaneOptions, FelixDataplane, IpipSupport, NatSupport};
use tortie_testkit::Netns;

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

/// `ip -n NS route show ARGS`, one route per line.
pub fn routes(ns: &Netns, args: &[&str]) -> String {
    let mut a = vec!["route", "show"];
    a.extend_from_slice(args);
    ns.ip_out(&a).unwrap()
}
