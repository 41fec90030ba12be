//! The adapter over tortie-datastore (SQLite here): Calico's keys, pool
//! selection from IPPool resources and Node labels, addresses in use.

use tortie_datastore::typed;
use tortie_ipam_core::{AssignRequest, DatastoreIpamStore, Ipam, IpamError};
use tortie_model::{IpPool, IpPoolSpec, Node, ObjectMeta, Resource};

fn open() -> (tempfile::TempDir, Ipam<DatastoreIpamStore>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = DatastoreIpamStore::open(&url, &Default::default()).unwrap();
    (dir, Ipam::new(s))
}

fn create(ipam: &Ipam<DatastoreIpamStore>, rs: Vec<Resource>) {
    let b = ipam.store().blocking();
    b.block_on(typed::create(b.store().as_ref(), rs)).unwrap();
}

#[test]
fn objects_land_under_calicos_keys_in_a_real_store() {
    let (_d, ipam) = open();
    let spec = IpPoolSpec::new("10.9.0.0/24".parse().unwrap());
    create(
        &ipam,
        vec![Resource::IpPool(IpPool {
            metadata: ObjectMeta::named("p"),
            spec,
        })],
    );
    let pools = ipam.store().pool_views("n1").unwrap();
    assert_eq!(pools[0].block_size, 26, "IPv4 default block size");
    let got = ipam
        .auto_assign(&AssignRequest::v4("k8s-pod-network.c1", "n1", 1), &pools)
        .unwrap();
    assert_eq!(got.v4.len(), 1);
    let b = ipam.store().blocking();
    let block_keys: Vec<String> = b
        .list("/ipam/v2/")
        .unwrap()
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    let block = ipnet::IpNet::new(got.v4[0], 26)
        .unwrap()
        .trunc()
        .to_string()
        .replace('/', "-");
    assert!(
        block_keys.contains(&format!("/ipam/v2/assignment/ipv4/block/{block}")),
        "{block_keys:?}"
    );
    assert!(
        block_keys.contains(&format!("/ipam/v2/host/n1/ipv4/block/{block}")),
        "{block_keys:?}"
    );
    assert!(
        block_keys.contains(&"/ipam/v2/handle/k8s-pod-network.c1".to_string()),
        "{block_keys:?}"
    );
    assert_eq!(
        ipam.release_by_handle("k8s-pod-network.c1").unwrap(),
        got.v4
    );
}

#[test]
fn a_pools_node_selector_is_evaluated_against_the_nodes_labels() {
    let (_d, ipam) = open();
    let mut spec = IpPoolSpec::new("10.9.0.0/24".parse().unwrap());
    spec.node_selector = Some("zone == 'a'".into());
    let mut n1 = Node::new("n1");
    n1.metadata.labels.insert("zone".into(), "a".into());
    create(
        &ipam,
        vec![
            Resource::IpPool(IpPool {
                metadata: ObjectMeta::named("p"),
                spec,
            }),
            Resource::Node(n1),
            Resource::Node(Node::new("n2")),
        ],
    );
    let p1 = ipam.store().pool_views("n1").unwrap();
    assert!(ipam
        .auto_assign(&AssignRequest::v4("a", "n1", 1), &p1)
        .is_ok());
    let p2 = ipam.store().pool_views("n2").unwrap();
    let e = ipam
        .auto_assign(&AssignRequest::v4("b", "n2", 1), &p2)
        .unwrap_err();
    assert!(matches!(e, IpamError::NoPools { .. }), "{e}");
}

#[test]
fn tunnel_addresses_of_nodes_count_as_in_use() {
    let (_d, ipam) = open();
    let mut n = Node::new("n1");
    n.spec.ipv4_vxlan_tunnel_addr = Some("10.9.0.7".parse().unwrap());
    create(&ipam, vec![Resource::Node(n)]);
    let used = ipam.store().addresses_in_use().unwrap();
    assert!(used[&"10.9.0.7".parse::<std::net::IpAddr>().unwrap()].contains("vxlan"));
}
