//! The key layout, mirroring Calico's etcd v3 layout
//! (`libcalico-go/lib/backend/etcdv3`) without the `/calico` prefix, which
//! the etcd backend adds as its configurable prefix (default `/tortie`).
//!
//! ```text
//! /resources/v3/projectcalico.org/<plural>/<name>
//! /resources/v3/projectcalico.org/<plural>/<namespace>/<name>
//! /ipam/v2/assignment/ipv4/block/10.0.0.0-26
//! /ipam/v2/handle/<id>
//! /ipam/v2/host/<node>/ipv4/block/10.0.0.0-26
//! /ipam/v2/config
//! /index/v1/workloadendpoints/<node>/<namespace>/<name>   (tortie's own)
//! ```
//!
//! The last line is not Calico's: a copy of each WorkloadEndpoint under its
//! node, written in the same transaction as the endpoint by the typed layer,
//! so that a node agent can list and watch only its own endpoints (Calico's
//! layout puts the namespace first, and etcd can only watch key ranges).

/// Prefix of every `projectcalico.org/v3` resource.
pub const RESOURCES: &str = "/resources/v3/projectcalico.org/";
/// Prefix of every IPAM object.
pub const IPAM: &str = "/ipam/v2/";

/// Prefix of every resource of one kind (`plural` as in `ippools`), ending in `/`.
pub fn resource_prefix(plural: &str) -> String {
    format!("{RESOURCES}{plural}/")
}

/// Prefix of the resources of a namespaced kind in one namespace, ending in `/`.
pub fn namespaced_prefix(plural: &str, namespace: &str) -> String {
    format!("{RESOURCES}{plural}/{namespace}/")
}

/// Key of a cluster-scoped resource.
pub fn resource(plural: &str, name: &str) -> String {
    format!("{RESOURCES}{plural}/{name}")
}

/// Key of a namespaced resource.
pub fn namespaced_resource(plural: &str, namespace: &str, name: &str) -> String {
    format!("{RESOURCES}{plural}/{namespace}/{name}")
}

/// Renders a CIDR as a key segment (`10.0.0.0/26` → `10.0.0.0-26`), as Calico does.
pub fn cidr_segment(cidr: &str) -> String {
    cidr.replace('/', "-")
}

/// IP family segment of a CIDR: `ipv6` if it contains `:`, else `ipv4`.
fn family(cidr: &str) -> &'static str {
    if cidr.contains(':') {
        "ipv6"
    } else {
        "ipv4"
    }
}

/// Key of an IPAM allocation block (`cidr` like `10.0.0.0/26`).
pub fn ipam_block(cidr: &str) -> String {
    format!(
        "{IPAM}assignment/{}/block/{}",
        family(cidr),
        cidr_segment(cidr)
    )
}

/// Prefix of every IPAM block of one family (`"ipv4"` or `"ipv6"`).
pub fn ipam_blocks_prefix(family: &str) -> String {
    format!("{IPAM}assignment/{family}/block/")
}

/// Key of an IPAM handle.
pub fn ipam_handle(id: &str) -> String {
    format!("{IPAM}handle/{id}")
}

/// Key of a block affinity of `node` for `cidr`.
pub fn ipam_affinity(node: &str, cidr: &str) -> String {
    format!(
        "{IPAM}host/{node}/{}/block/{}",
        family(cidr),
        cidr_segment(cidr)
    )
}

/// Prefix of every block affinity of `node`.
pub fn ipam_host_prefix(node: &str) -> String {
    format!("{IPAM}host/{node}/")
}

/// Prefix of tortie's per-node index of WorkloadEndpoints.
pub const WORKLOAD_INDEX: &str = "/index/v1/workloadendpoints/";

/// Prefix of the index entries of `node`'s WorkloadEndpoints, ending in `/`.
pub fn workload_index_prefix(node: &str) -> String {
    format!("{WORKLOAD_INDEX}{node}/")
}

/// Key of the index entry of the WorkloadEndpoint `namespace/name` of `node`.
pub fn workload_index(node: &str, namespace: &str, name: &str) -> String {
    format!("{WORKLOAD_INDEX}{node}/{namespace}/{name}")
}

/// Key of the IPAM configuration (strict affinity etc.).
pub fn ipam_config() -> String {
    format!("{IPAM}config")
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when no such key exists (the prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_calicos_etcd_v3_layout() {
        assert_eq!(
            resource("ippools", "default"),
            "/resources/v3/projectcalico.org/ippools/default"
        );
        assert_eq!(
            namespaced_resource("workloadendpoints", "ns1", "n1-k8s-pod-eth0"),
            "/resources/v3/projectcalico.org/workloadendpoints/ns1/n1-k8s-pod-eth0"
        );
        assert_eq!(
            ipam_block("10.0.0.0/26"),
            "/ipam/v2/assignment/ipv4/block/10.0.0.0-26"
        );
        assert_eq!(
            ipam_block("fd00::/122"),
            "/ipam/v2/assignment/ipv6/block/fd00::-122"
        );
        assert_eq!(
            ipam_affinity("node1", "10.0.0.0/26"),
            "/ipam/v2/host/node1/ipv4/block/10.0.0.0-26"
        );
        assert_eq!(
            ipam_handle("k8s-pod-network.abc"),
            "/ipam/v2/handle/k8s-pod-network.abc"
        );
        assert_eq!(ipam_config(), "/ipam/v2/config");
        assert_eq!(
            workload_index("n1", "ns1", "n1-k8s-pod-eth0"),
            "/index/v1/workloadendpoints/n1/ns1/n1-k8s-pod-eth0"
        );
        assert!(workload_index("n1", "a", "b").starts_with(&workload_index_prefix("n1")));
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end("/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(""), None);
    }
}
