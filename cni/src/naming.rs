//! Names and addresses that other components rely on: the host veth name,
//! the fixed host-side MAC, the pod's gateway addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use sha1::{Digest, Sha1};

/// Host-side veth MAC (Calico's `ee:ee:ee:ee:ee:ee`).
pub const HOST_VETH_MAC: [u8; 6] = [0xee; 6];
/// The pod's IPv4 next hop, answered by proxy ARP on the host veth.
pub const POD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pod's IPv6 next hop: the host veth's link-local address derived from its MAC.
pub const POD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// The `rtm_protocol` of workload routes (ARCHITECTURE.md "Kernel ownership").
pub const WORKLOAD_ROUTE_PROTOCOL: u8 = 80;

/// Hex characters after `cali` in a host veth name (15 = IFNAMSIZ - 1).
const VETH_HEX: usize = 11;

/// The host-side veth: `cali` + 11 hex chars of sha1("namespace.pod") for a
/// Kubernetes pod (Calico's name, INTERFACES.md). Without a pod identity,
/// Calico's `cali` + the first 11 characters of the container ID when those
/// are lower-case hex (a runtime's random ID), else `cali` + 11 hex chars
/// of sha1(container ID): IDs chosen by hand (`test-container-1`, `-2`)
/// share prefixes, and their veths must not collide.
pub fn host_veth_name(pod: Option<(&str, &str)>, container_id: &str) -> String {
    let sha1 = |s: &str| hex::encode(Sha1::digest(s.as_bytes()))[..VETH_HEX].to_string();
    let hex_prefix = container_id.get(..VETH_HEX).filter(|p| {
        p.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    match (pod, hex_prefix) {
        (Some((ns, name)), _) => format!("cali{}", sha1(&format!("{ns}.{name}"))),
        (None, Some(prefix)) => format!("cali{prefix}"),
        (None, None) => format!("cali{}", sha1(container_id)),
    }
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The IPAM handle of a container (Calico's `k8s-pod-network.<containerID>`).
pub fn ipam_handle(network: &str, container_id: &str) -> String {
    format!("{network}.{container_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_name_matches_calicos_hash_of_namespace_and_pod() {
        // sha1("default.nginx") starts c440f455693 (python3 hashlib).
        let name = host_veth_name(Some(("default", "nginx")), "x");
        assert_eq!(name, "calic440f455693");
        assert_eq!(name.len(), 15, "fits IFNAMSIZ");
    }

    #[test]
    fn host_veth_name_falls_back_to_the_container_id() {
        assert_eq!(host_veth_name(None, "0123456789abcdef"), "cali0123456789a");
    }

    #[test]
    fn hand_picked_container_ids_get_distinct_hashed_veths() {
        let a = host_veth_name(None, "test-container-1");
        let b = host_veth_name(None, "test-container-2");
        assert_ne!(a, b);
        for n in [&a, &b, &host_veth_name(None, "Ab_C")] {
            assert!(n.starts_with("cali") && n.len() == 15, "{n}");
            assert!(n[4..].chars().all(|c| c.is_ascii_hexdigit()), "{n}");
        }
    }

    #[test]
    fn the_ipv6_gateway_is_the_eui64_of_the_host_mac() {
        assert_eq!(POD_GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
    }

    #[test]
    fn macs_print_lowercase_with_colons() {
        assert_eq!(format_mac(&HOST_VETH_MAC), "ee:ee:ee:ee:ee:ee");
    }
}
