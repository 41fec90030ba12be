//! `tortiectl delete nodes NAME` releases the node's empty blocks and keeps
//! the ones that still hold addresses (issue 6), on a temporary SQLite store.

mod common;

use tortie_ipam_core::{AssignRequest, DatastoreIpamStore, Ipam};

const MANIFEST: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool1
spec:
  cidr: 10.77.0.0/24
  blockSize: 26
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node1
";

fn tortiectl(url: &str, args: &[&str], stdin: &str) {
    let out = common::run_tortiectl(url, args, stdin);
    assert!(
        out.status.success(),
        "tortiectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn block_cidrs(ipam: &Ipam<DatastoreIpamStore>) -> Vec<String> {
    ipam.blocks()
        .unwrap()
        .into_iter()
        .map(|b| b.cidr.to_string())
        .collect()
}

#[test]
fn deleting_a_node_releases_its_empty_block_and_keeps_the_used_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    tortiectl(&url, &["create", "-f", "-"], MANIFEST);
    let ipam = Ipam::new(DatastoreIpamStore::open(&url, &Default::default()).unwrap());
    let pools = ipam.store().pool_views("node1").unwrap();
    // 64 addresses fill the first block; the 65th claims a second one.
    ipam.auto_assign(&AssignRequest::v4("used", "node1", 64), &pools)
        .unwrap();
    ipam.auto_assign(&AssignRequest::v4("gone", "node1", 1), &pools)
        .unwrap();
    ipam.release_by_handle("gone").unwrap();
    let blocks = ipam.blocks().unwrap();
    assert_eq!(blocks.len(), 2);
    let used_block: Vec<String> = blocks
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| b.cidr.to_string())
        .collect();
    assert_eq!(used_block.len(), 1, "one block holds the 64 addresses");

    tortiectl(&url, &["delete", "nodes", "node1"], "");

    assert_eq!(block_cidrs(&ipam), used_block);
    let affs: Vec<_> = ipam
        .affinities()
        .unwrap()
        .into_iter()
        .map(|(n, c, _)| (n, c.to_string()))
        .collect();
    assert_eq!(affs, vec![("node1".to_string(), used_block[0].clone())]);
}
