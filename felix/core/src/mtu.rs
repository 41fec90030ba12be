//! MTU auto-detection by Calico's rules.

use serde::{Deserialize, Serialize};

use crate::config::FelixConfig;
use crate::input::FelixInput;

/// IPv4 IP-in-IP overhead.
pub const IPIP_OVERHEAD: u32 = 20;
/// IPv4 VXLAN overhead.
pub const VXLAN_OVERHEAD: u32 = 50;
/// MTU assumed when no host interface matches.
pub const DEFAULT_MTU: u32 = 1500;

/// The MTUs felix sets and publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mtus {
    /// Smallest MTU of the up host interfaces that match the pattern.
    pub host: u32,
    /// tunl0 MTU.
    pub ipip: u32,
    /// VXLAN device MTU.
    pub vxlan: u32,
    /// Pod MTU written to the MTU file: the smallest of the encapsulations in use.
    pub pod: u32,
}

/// Computes the MTUs: host minus 20 for IPIP, minus 50 for VXLAN, overrides win.
pub fn detect_mtus(input: &FelixInput, cfg: &FelixConfig, ipip: bool, vxlan: bool) -> Mtus {
    let host = input
        .host_interfaces
        .iter()
        .filter(|i| {
            cfg.mtu_iface_prefixes
                .iter()
                .any(|p| i.name.starts_with(p.as_str()))
        })
        .map(|i| i.mtu)
        .min()
        .unwrap_or(DEFAULT_MTU);
    let ipip_mtu = input
        .knobs
        .ipip_mtu
        .unwrap_or(host.saturating_sub(IPIP_OVERHEAD));
    let vxlan_mtu = input
        .knobs
        .vxlan_mtu
        .unwrap_or(host.saturating_sub(VXLAN_OVERHEAD));
    let mut pod = host;
    if ipip {
        pod = pod.min(ipip_mtu);
    }
    if vxlan {
        pod = pod.min(vxlan_mtu);
    }
    Mtus {
        host,
        ipip: ipip_mtu,
        vxlan: vxlan_mtu,
        pod,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::HostInterface;

    fn input(ifs: &[(&str, u32)]) -> FelixInput {
        FelixInput {
            host_interfaces: ifs
                .iter()
                .map(|(n, m)| HostInterface {
                    name: n.to_string(),
                    mtu: *m,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_smallest_matching_interface_sets_the_host_mtu() {
        let i = input(&[
            ("eth0", 9000),
            ("ens3", 1450),
            ("cali123", 1000),
            ("lo", 65536),
        ]);
        let m = detect_mtus(&i, &FelixConfig::default(), true, false);
        assert_eq!(m.host, 1450);
        assert_eq!(m.ipip, 1430);
        assert_eq!(m.vxlan, 1400);
        assert_eq!(m.pod, 1430);
    }

    #[test]
    fn vxlan_and_ipip_together_publish_the_smaller_mtu() {
        let m = detect_mtus(
            &input(&[("eth0", 1500)]),
            &FelixConfig::default(),
            true,
            true,
        );
        assert_eq!(m.pod, 1450);
    }

    #[test]
    fn no_encapsulation_publishes_the_host_mtu_and_overrides_win() {
        let mut i = input(&[]);
        i.knobs.ipip_mtu = Some(1300);
        let m = detect_mtus(&i, &FelixConfig::default(), false, false);
        assert_eq!(m.pod, DEFAULT_MTU);
        assert_eq!(
            detect_mtus(&i, &FelixConfig::default(), true, false).pod,
            1300
        );
    }
}
