//! Property: any interleaving of allocate/release from several simulated
//! nodes never hands out one address twice and never loses one.
//!
//! Interleaving is simulated at compare-and-swap granularity: before any
//! commit of the operation under test, the store may run a whole operation
//! of another node (so the commit races it) or fail with a spurious
//! conflict. A model of who owns what is checked against the store after
//! every step.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use tortie_ipam_core::{
    AssignRequest, Entry, Ipam, IpamError, IpamKey, IpamStore, ListScope, MemoryStore, PoolView,
    Revision, StoreError, Write,
};
use tortie_model::ipam::{AllocationBlock, IpamConfig, IpamHandle};

#[derive(Debug, Clone)]
enum Op {
    Alloc { node: u8, n: u8 },
    ReleaseHandle(usize),
    ReleaseIp(usize),
}

#[derive(Debug, Clone)]
enum Interference {
    None,
    SpuriousConflict,
    Other(Op),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 1u8..5).prop_map(|(node, n)| Op::Alloc { node, n }),
        2 => any::<usize>().prop_map(Op::ReleaseHandle),
        1 => any::<usize>().prop_map(Op::ReleaseIp),
    ]
}

fn interference() -> impl Strategy<Value = Interference> {
    prop_oneof![
        3 => Just(Interference::None),
        1 => Just(Interference::SpuriousConflict),
        2 => op().prop_map(Interference::Other),
    ]
}

/// Who owns what, as the callers saw it.
#[derive(Debug, Default)]
struct Model {
    owned: BTreeMap<String, BTreeSet<IpAddr>>,
    next_handle: usize,
}

impl Model {
    fn live(&self) -> Vec<(String, IpAddr)> {
        self.owned
            .iter()
            .flat_map(|(h, ips)| ips.iter().map(move |ip| (h.clone(), *ip)))
            .collect()
    }
}

fn pools() -> Vec<PoolView> {
    vec![PoolView::new("10.0.0.0/27".parse().unwrap(), 29)]
}

/// Runs `op` against `ipam`, updating the model with what it returned.
fn apply<S: IpamStore>(ipam: &Ipam<S>, op: &Op, model: &RefCell<Model>) {
    match op {
        Op::Alloc { node, n } => {
            let h = {
                let mut m = model.borrow_mut();
                m.next_handle += 1;
                format!("h{}", m.next_handle)
            };
            let req = AssignRequest::v4(&h, &format!("node{node}"), usize::from(*n));
            match ipam.auto_assign(&req, &pools()) {
                Ok(got) => {
                    let mut m = model.borrow_mut();
                    for ip in &got.v4 {
                        for (owner, ips) in &m.owned {
                            assert!(
                                !ips.contains(ip),
                                "{ip} handed to {h} while {owner} holds it"
                            );
                        }
                    }
                    assert_eq!(got.v4.len(), usize::from(*n));
                    m.owned.entry(h).or_default().extend(got.v4);
                }
                Err(IpamError::Exhausted(_)) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        Op::ReleaseHandle(i) => {
            let h = {
                let m = model.borrow();
                if m.owned.is_empty() {
                    return;
                }
                m.owned.keys().nth(i % m.owned.len()).cloned().unwrap()
            };
            // From the start of the release, its addresses may be free again
            // (it commits block by block) and others may take them.
            let expected = model.borrow_mut().owned.remove(&h).unwrap_or_default();
            let freed: BTreeSet<IpAddr> = ipam.release_by_handle(&h).unwrap().into_iter().collect();
            assert_eq!(freed, expected, "release of {h}");
        }
        Op::ReleaseIp(i) => {
            let live = model.borrow().live();
            if live.is_empty() {
                return;
            }
            let ip = live[i % live.len()].1;
            let released = ipam.release_ips(&[ip]).unwrap().is_empty();
            // Interference may have released (and even reallocated) it meanwhile:
            // whoever owns it now is who lost it.
            let mut m = model.borrow_mut();
            let owner = m
                .owned
                .iter()
                .find(|(_, ips)| ips.contains(&ip))
                .map(|(h, _)| h.clone());
            assert_eq!(
                released,
                owner.is_some(),
                "{ip} released iff someone owned it"
            );
            if let Some(h) = owner {
                let set = m.owned.get_mut(&h).unwrap();
                set.remove(&ip);
                if set.is_empty() {
                    m.owned.remove(&h);
                }
            }
        }
    }
}

/// Forwards to a memory store, interfering before commits as scheduled.
struct Chaos<'a> {
    inner: &'a Arc<MemoryStore>,
    schedule: RefCell<VecDeque<Interference>>,
    model: &'a RefCell<Model>,
}

impl IpamStore for Chaos<'_> {
    fn get(&self, key: &IpamKey) -> Result<Option<Entry>, StoreError> {
        self.inner.get(key)
    }
    fn list(&self, scope: &ListScope) -> Result<Vec<(IpamKey, Entry)>, StoreError> {
        self.inner.list(scope)
    }
    fn commit(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        let next = self.schedule.borrow_mut().pop_front();
        match next {
            Some(Interference::SpuriousConflict) => {
                return Err(StoreError::Conflict(writes[0].key().clone()));
            }
            Some(Interference::Other(op)) => {
                apply(&Ipam::new(Arc::clone(self.inner)), &op, self.model);
            }
            Some(Interference::None) | None => {}
        }
        self.inner.commit(writes)
    }
}

/// The store holds exactly the model's addresses, owned by the model's handles.
fn check_store(store: &MemoryStore, model: &Model) {
    let mut in_store: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (_, e) in store.list(&ListScope::Blocks).unwrap() {
        let b: AllocationBlock = serde_json::from_str(&e.value).unwrap();
        let mut free: Vec<usize> = b.unallocated.clone();
        free.sort_unstable();
        let expect_free: Vec<usize> = (0..b.size())
            .filter(|o| b.allocations[*o].is_none())
            .collect();
        assert_eq!(
            free, expect_free,
            "free list of {} matches allocations",
            b.cidr
        );
        for o in 0..b.size() {
            if let Some(h) = b.handle_of(o) {
                let ip = b.ordinal_to_ip(o).unwrap();
                assert!(in_store.insert(ip, h.to_string()).is_none(), "{ip} twice");
            }
        }
    }
    let expected: BTreeMap<IpAddr, String> =
        model.live().into_iter().map(|(h, ip)| (ip, h)).collect();
    assert_eq!(
        in_store, expected,
        "store and callers agree on every address"
    );
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (_, e) in store.list(&ListScope::Handles).unwrap() {
        let h: IpamHandle = serde_json::from_str(&e.value).unwrap();
        counts.insert(h.handle_id.clone(), h.total());
    }
    let expected: BTreeMap<String, u64> = model
        .owned
        .iter()
        .map(|(h, ips)| (h.clone(), ips.len() as u64))
        .collect();
    assert_eq!(counts, expected, "handle counts");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn interleaved_allocate_and_release_never_duplicate_or_lose_an_address(
        steps in prop::collection::vec((op(), prop::collection::vec(interference(), 0..6)), 1..40),
        strict in any::<bool>(),
    ) {
        let store = Arc::new(MemoryStore::new());
        let model = RefCell::new(Model::default());
        if strict {
            Ipam::new(Arc::clone(&store))
                .set_config(&IpamConfig { strict_affinity: true, ..IpamConfig::default() })
                .unwrap();
        }
        for (op, chaos) in steps {
            let s = Chaos { inner: &store, schedule: RefCell::new(chaos.into()), model: &model };
            apply(&Ipam::new(s), &op, &model);
            check_store(&store, &model.borrow());
        }
    }
}

#[test]
fn threads_allocating_at_once_on_several_nodes_never_share_an_address() {
    let store = Arc::new(MemoryStore::new());
    let pools = vec![PoolView::new("10.0.0.0/22".parse().unwrap(), 28)];
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = Arc::clone(&store);
            let pools = pools.clone();
            std::thread::spawn(move || {
                let ipam = Ipam::new(store);
                let mut mine = Vec::new();
                for k in 0..150 {
                    let h = format!("t{t}-{k}");
                    let got =
                        ipam.auto_assign(&AssignRequest::v4(&h, &format!("n{}", t % 3), 1), &pools);
                    mine.extend(got.unwrap().v4);
                    if k % 5 == 0 {
                        ipam.release_by_handle(&format!("t{t}-{}", k / 2)).unwrap();
                    }
                }
                mine
            })
        })
        .collect();
    let mut handed = 0;
    for t in threads {
        handed += t.join().unwrap().len();
    }
    assert_eq!(handed, 900);
    let mut seen = BTreeSet::new();
    let mut allocated = 0;
    for (_, e) in store.list(&ListScope::Blocks).unwrap() {
        let b: AllocationBlock = serde_json::from_str(&e.value).unwrap();
        for o in 0..b.size() {
            if b.allocations[o].is_some() {
                allocated += 1;
                assert!(seen.insert(b.ordinal_to_ip(o).unwrap()));
            }
        }
    }
    let handles: u64 = store
        .list(&ListScope::Handles)
        .unwrap()
        .iter()
        .map(|(_, e)| {
            serde_json::from_str::<IpamHandle>(&e.value)
                .unwrap()
                .total()
        })
        .sum();
    assert_eq!(
        handles, allocated,
        "every allocation is counted by its handle"
    );
}
