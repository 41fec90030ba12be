//! Behaviour of the allocation algorithm over the in-memory store.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_ipam_core::store::TypedStoreExt;
use tortie_ipam_core::{
    AllowedUse, AssignRequest, Ipam, IpamError, IpamKey, IpamStore, Limit, ListScope, MemoryStore,
    Owner, PoolView,
};
use tortie_model::ipam::{AffinityState, AllocationBlock, BlockAffinity, IpamConfig, IpamHandle};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ipam() -> Ipam<MemoryStore> {
    Ipam::new(MemoryStore::new())
}

fn pool(cidr: &str, block: u8) -> PoolView {
    PoolView::new(net(cidr), block)
}

fn block_of(i: &Ipam<MemoryStore>, cidr: &str) -> AllocationBlock {
    i.store()
        .get_json::<AllocationBlock>(&IpamKey::Block(net(cidr)))
        .unwrap()
        .unwrap()
}

#[test]
fn first_allocation_claims_a_block_affine_to_the_node_with_a_confirmed_affinity() {
    let i = ipam();
    let pools = [pool("10.0.0.0/24", 26)];
    let got = i
        .auto_assign(&AssignRequest::v4("h1", "n1", 1), &pools)
        .unwrap();
    assert_eq!(got.v4.len(), 1);
    let affs = i
        .store()
        .list(&ListScope::Affinities(Some("n1".into())))
        .unwrap();
    assert_eq!(affs.len(), 1);
    let IpamKey::Affinity { cidr, .. } = &affs[0].0 else {
        panic!()
    };
    assert!(cidr.contains(&got.v4[0]));
    let aff: BlockAffinity = serde_json::from_str(&affs[0].1.value).unwrap();
    assert_eq!(aff.state, AffinityState::Confirmed);
    let b = block_of(&i, &cidr.to_string());
    assert_eq!(b.affinity.as_deref(), Some("host:n1"));
    let h = i
        .store()
        .get_json::<IpamHandle>(&IpamKey::Handle("h1".into()))
        .unwrap()
        .unwrap();
    assert_eq!(h.total(), 1);
}

#[test]
fn a_node_fills_its_block_before_claiming_another() {
    let i = ipam();
    let pools = [pool("10.0.0.0/24", 26)];
    let mut blocks = BTreeSet::new();
    for n in 0..65 {
        let got = i
            .auto_assign(&AssignRequest::v4(&format!("h{n}"), "n1", 1), &pools)
            .unwrap();
        blocks.insert(IpNet::new(got.v4[0], 26).unwrap().trunc());
        assert_eq!(blocks.len(), if n < 64 { 1 } else { 2 }, "after {n}");
    }
}

#[test]
fn two_nodes_get_different_blocks() {
    let i = ipam();
    let pools = [pool("10.0.0.0/24", 26)];
    let a = i
        .auto_assign(&AssignRequest::v4("a", "n1", 1), &pools)
        .unwrap();
    let b = i
        .auto_assign(&AssignRequest::v4("b", "n2", 1), &pools)
        .unwrap();
    let ba = IpNet::new(a.v4[0], 26).unwrap().trunc();
    let bb = IpNet::new(b.v4[0], 26).unwrap().trunc();
    assert_ne!(ba, bb);
}

#[test]
fn a_node_borrows_from_another_nodes_block_when_the_pool_has_no_free_block() {
    let i = ipam();
    let pools = [pool("10.0.0.0/26", 26)];
    i.auto_assign(&AssignRequest::v4("a", "n1", 1), &pools)
        .unwrap();
    let b = i
        .auto_assign(&AssignRequest::v4("b", "n2", 1), &pools)
        .unwrap();
    assert_eq!(b.v4.len(), 1);
    let blk = block_of(&i, "10.0.0.0/26");
    assert_eq!(
        blk.affinity.as_deref(),
        Some("host:n1"),
        "borrowing does not move the block"
    );
    assert_eq!(blk.in_use(), 2);
}

#[test]
fn strict_affinity_forbids_borrowing_and_the_error_says_so() {
    let i = ipam();
    i.set_strict_affinity(true).unwrap();
    let pools = [pool("10.0.0.0/26", 26)];
    i.auto_assign(&AssignRequest::v4("a", "n1", 1), &pools)
        .unwrap();
    let e = i
        .auto_assign(&AssignRequest::v4("b", "n2", 1), &pools)
        .unwrap_err();
    let IpamError::Exhausted(x) = &e else {
        panic!("{e}")
    };
    assert!(x.limits.contains(&Limit::StrictAffinity));
    assert!(e.to_string().contains("strictAffinity"), "{e}");
}

#[test]
fn max_blocks_per_host_stops_claiming_and_borrowing_takes_over() {
    let i = ipam();
    let cfg = IpamConfig {
        max_blocks_per_host: 1,
        ..IpamConfig::default()
    };
    i.set_config(&cfg).unwrap();
    let pools = [pool("10.0.0.0/24", 26)];
    i.auto_assign(&AssignRequest::v4("other", "n2", 1), &pools)
        .unwrap();
    let got = i
        .auto_assign(&AssignRequest::v4("a", "n1", 70), &pools)
        .unwrap();
    assert_eq!(got.v4.len(), 70);
    let held = i
        .store()
        .list(&ListScope::Affinities(Some("n1".into())))
        .unwrap();
    assert_eq!(
        held.len(),
        1,
        "n1 never holds more than maxBlocksPerHost blocks"
    );
}

#[test]
fn exhaustion_names_the_pools_and_how_full_they_are_and_keeps_nothing() {
    let i = ipam();
    let pools = [pool("10.0.0.0/28", 29)];
    let e = i
        .auto_assign(&AssignRequest::v4("a", "n1", 17), &pools)
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("10.0.0.0/28"), "{msg}");
    assert!(
        msg.contains("0 of 16 addresses in use, 2 of 2 blocks claimed"),
        "{msg}"
    );
    assert_eq!(block_of(&i, "10.0.0.0/29").in_use(), 0);
    let i2 = ipam();
    i2.auto_assign(&AssignRequest::v4("b", "n1", 16), &pools)
        .unwrap();
    let e = i2
        .auto_assign(&AssignRequest::v4("c", "n1", 1), &pools)
        .unwrap_err();
    assert!(e.to_string().contains("16 of 16 addresses in use"), "{e}");
}

#[test]
fn a_failed_request_leaves_no_address_allocated() {
    let i = ipam();
    let pools = [pool("10.0.0.0/28", 28)];
    i.auto_assign(&AssignRequest::v4("a", "n1", 10), &pools)
        .unwrap();
    assert!(i
        .auto_assign(&AssignRequest::v4("b", "n1", 10), &pools)
        .is_err());
    assert_eq!(block_of(&i, "10.0.0.0/28").in_use(), 10);
    assert!(i
        .store()
        .get_json::<IpamHandle>(&IpamKey::Handle("b".into()))
        .unwrap()
        .is_none());
}

#[test]
fn release_by_handle_frees_every_address_and_deletes_the_handle() {
    let i = ipam();
    let pools = [pool("10.0.0.0/24", 26), pool("fd00::/120", 122)];
    let mut req = AssignRequest::v4("h", "n1", 2);
    req.num_v6 = 1;
    let got = i.auto_assign(&req, &pools).unwrap();
    assert_eq!((got.v4.len(), got.v6.len()), (2, 1));
    let freed = i.release_by_handle("h").unwrap();
    assert_eq!(freed.len(), 3);
    assert!(i
        .store()
        .get(&IpamKey::Handle("h".into()))
        .unwrap()
        .is_none());
    assert!(
        i.release_by_handle("h").unwrap().is_empty(),
        "twice is harmless"
    );
}

#[test]
fn released_addresses_are_reused_oldest_first_across_calls() {
    let i = ipam();
    let pools = [pool("10.0.0.0/30", 30)];
    let all = i
        .auto_assign(&AssignRequest::v4("a", "n1", 4), &pools)
        .unwrap()
        .v4;
    assert!(i.release_ips(&[all[2]]).unwrap().is_empty());
    assert!(i.release_ips(&[all[0]]).unwrap().is_empty());
    assert_eq!(
        i.auto_assign(&AssignRequest::v4("b", "n1", 1), &pools)
            .unwrap()
            .v4,
        vec![all[2]]
    );
    assert_eq!(
        i.auto_assign(&AssignRequest::v4("c", "n1", 1), &pools)
            .unwrap()
            .v4,
        vec![all[0]]
    );
    let h = i
        .store()
        .get_json::<IpamHandle>(&IpamKey::Handle("a".into()))
        .unwrap()
        .unwrap();
    assert_eq!(h.total(), 2, "release by address decrements the handle");
}

#[test]
fn releasing_an_unallocated_address_reports_it() {
    let i = ipam();
    let pools = [pool("10.0.0.0/30", 30)];
    i.auto_assign(&AssignRequest::v4("a", "n1", 1), &pools)
        .unwrap();
    assert_eq!(
        i.release_ips(&[ip("10.0.0.3"), ip("192.0.2.1")])
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn explicit_pools_are_used_and_unusable_ones_are_named() {
    let i = ipam();
    let mut off = pool("10.9.0.0/24", 26);
    off.disabled = true;
    let pools = [pool("10.0.0.0/24", 26), pool("10.1.0.0/24", 26), off];
    let mut req = AssignRequest::v4("a", "n1", 1);
    req.v4_pools = vec![net("10.1.0.0/24")];
    let got = i.auto_assign(&req, &pools).unwrap();
    assert!(net("10.1.0.0/24").contains(&got.v4[0]));
    req.v4_pools = vec![net("10.9.0.0/24")];
    let e = i.auto_assign(&req, &pools).unwrap_err().to_string();
    assert!(e.contains("10.9.0.0/24") && e.contains("disabled"), "{e}");
}

#[test]
fn tunnel_addresses_only_come_from_pools_allowing_tunnels() {
    let i = ipam();
    let mut w = pool("10.0.0.0/24", 26);
    w.allowed_uses = vec![AllowedUse::Workload];
    let mut t = pool("10.5.0.0/24", 26);
    t.allowed_uses = vec![AllowedUse::Tunnel];
    let mut req = AssignRequest::v4(&tortie_model::ipam::ipip_tunnel_handle("n1"), "n1", 1);
    req.use_ = AllowedUse::Tunnel;
    let got = i.auto_assign(&req, &[w, t]).unwrap();
    assert!(net("10.5.0.0/24").contains(&got.v4[0]));
}

#[test]
fn no_pool_for_the_version_is_a_clear_error() {
    let i = ipam();
    let mut req = AssignRequest::v4("a", "n1", 0);
    req.num_v6 = 1;
    let e = i.auto_assign(&req, &[pool("10.0.0.0/24", 26)]).unwrap_err();
    assert!(matches!(e, IpamError::NoPools { .. }), "{e}");
    assert!(e.to_string().contains("IPv6"));
}

#[test]
fn assign_ip_takes_a_specific_address_once() {
    let i = ipam();
    let pools = [pool("10.0.0.0/24", 26)];
    let o = Owner {
        handle_id: "x".into(),
        ..Owner::default()
    };
    i.assign_ip(ip("10.0.0.77"), &o, "n1", &pools).unwrap();
    let e = i.assign_ip(ip("10.0.0.77"), &o, "n2", &pools).unwrap_err();
    assert!(matches!(e, IpamError::AddressInUse { .. }), "{e}");
    assert_eq!(
        block_of(&i, "10.0.0.64/26").affinity.as_deref(),
        Some("host:n1")
    );
}

#[test]
fn deleting_a_node_releases_its_empty_blocks_and_keeps_used_ones() {
    let i = ipam();
    let pools = [pool("10.0.0.0/24", 26)];
    let a = i
        .auto_assign(&AssignRequest::v4("a", "n1", 64), &pools)
        .unwrap();
    i.auto_assign(&AssignRequest::v4("b", "n1", 1), &pools)
        .unwrap();
    i.release_by_handle("b").unwrap();
    let r = i.release_node_affinities("n1").unwrap();
    assert_eq!(r.released.len(), 1);
    assert_eq!(r.kept, vec![IpNet::new(a.v4[0], 26).unwrap().trunc()]);
    assert_eq!(i.store().list(&ListScope::Blocks).unwrap().len(), 1);
}

#[test]
fn a_crash_after_the_pending_affinity_is_adopted_by_the_next_claim() {
    let i = ipam();
    let pools = [pool("10.0.0.0/26", 26)];
    let akey = IpamKey::Affinity {
        node: "n1".into(),
        cidr: net("10.0.0.0/26"),
    };
    let pending = serde_json::to_string(&BlockAffinity::default()).unwrap();
    i.store()
        .commit(&[tortie_ipam_core::Write::Create(akey.clone(), pending)])
        .unwrap();
    i.auto_assign(&AssignRequest::v4("a", "n1", 1), &pools)
        .unwrap();
    let aff = i.store().get_json::<BlockAffinity>(&akey).unwrap().unwrap();
    assert_eq!(aff.state, AffinityState::Confirmed);
    assert_eq!(
        block_of(&i, "10.0.0.0/26").affinity.as_deref(),
        Some("host:n1")
    );
}

#[test]
fn an_address_freed_in_a_block_seen_full_is_used_before_claiming_a_block() {
    let i = ipam();
    let pools = [pool("10.0.0.0/24", 26)];
    let a = i
        .auto_assign(&AssignRequest::v4("a", "n1", 64), &pools)
        .unwrap();
    // The first block is now full (and remembered as such); b claims a second.
    i.auto_assign(&AssignRequest::v4("b", "n1", 1), &pools)
        .unwrap();
    i.auto_assign(&AssignRequest::v4("c", "n1", 63), &pools)
        .unwrap();
    i.release_by_handle("a").unwrap();
    let d = i
        .auto_assign(&AssignRequest::v4("d", "n1", 1), &pools)
        .unwrap();
    let first = IpNet::new(a.v4[0], 26).unwrap().trunc();
    assert!(first.contains(&d.v4[0]), "{d:?} not from {first}");
    assert_eq!(i.store().list(&ListScope::Blocks).unwrap().len(), 2);
}
