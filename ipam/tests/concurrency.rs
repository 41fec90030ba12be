//! Concurrency against the real stores: 8 processes (one node each)
//! allocate 500 addresses each at the same time, some are SIGKILLed
//! mid-run; afterwards no address is held twice, `ipam check` finds exactly
//! the leaks of the killed ones, and releasing from its report reclaims them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tortie_datastore::{typed, BlockingStore};
use tortie_ipam_core::{CheckReport, DatastoreIpamStore, Ipam};
use tortie_model::{IpPool, IpPoolSpec, Kind, Node, ObjectMeta, Resource};
use tortie_testkit::{wait_until, ChildGuard};

const WORKERS: usize = 8;
const PER_WORKER: usize = 500;
/// Workers SIGKILLed from outside at an arbitrary moment.
const KILLED: [usize; 3] = [1, 4, 6];
/// A worker that SIGKILLs itself between an allocation and its endpoint,
/// so at least one leak is certain.
const SELF_KILLED: usize = 7;
const SELF_KILL_AT: usize = 123;

fn dies(i: usize) -> bool {
    KILLED.contains(&i) || i == SELF_KILLED
}

fn setup(url: &str) -> DatastoreIpamStore {
    let s = DatastoreIpamStore::open(url, &Default::default()).unwrap();
    let mut spec = IpPoolSpec::new("10.128.0.0/19".parse().unwrap());
    spec.block_size = Some(26);
    let mut rs = vec![Resource::IpPool(IpPool {
        metadata: ObjectMeta::named("load-pool"),
        spec,
    })];
    rs.extend((0..WORKERS).map(|i| Resource::Node(Node::new(format!("n{i}")))));
    let b = s.blocking();
    b.block_on(typed::create(b.store().as_ref(), rs)).unwrap();
    s
}

fn handles_of(s: &DatastoreIpamStore, worker: usize) -> usize {
    let prefix = format!("/ipam/v2/handle/k8s-pod-network.w{worker}-");
    s.blocking()
        .list(&prefix)
        .map(|l| l.items.len())
        .unwrap_or(0)
}

fn spawn(url: &str, i: usize) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tortie-ipam-load"));
    if i == SELF_KILLED {
        cmd.args(["--kill-self-after", &SELF_KILL_AT.to_string()]);
    }
    cmd.args(["--datastore", url, "--node", &format!("n{i}")])
        .args([
            "--count",
            &PER_WORKER.to_string(),
            "--prefix",
            &format!("w{i}"),
            "--wep",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    ChildGuard::spawn(&format!("worker{i}"), &mut cmd).unwrap()
}

/// Worker index of a handle `k8s-pod-network.w<i>-<n>`.
fn worker_of(handle: &str) -> usize {
    let rest = handle.strip_prefix("k8s-pod-network.w").unwrap();
    rest.split('-').next().unwrap().parse().unwrap()
}

fn run(url: &str) {
    let s = setup(url);
    let mut workers: Vec<ChildGuard> = (0..WORKERS).map(|i| spawn(url, i)).collect();
    for &k in &KILLED {
        wait_until(
            "killed worker made progress",
            Duration::from_secs(120),
            Duration::from_millis(5),
            || handles_of(&s, k) >= 40,
        )
        .unwrap();
        workers[k].signal(9);
    }
    for (i, w) in workers.iter_mut().enumerate() {
        wait_until(
            "worker exits",
            Duration::from_secs(300),
            Duration::from_millis(20),
            || w.try_exit().is_some(),
        )
        .unwrap();
        let status = w.try_exit().unwrap();
        assert_eq!(status.success(), !dies(i), "worker {i}: {status:?}");
    }
    let ipam = Ipam::new(s);

    // No address twice: every allocation in the blocks is distinct, every
    // WorkloadEndpoint's address is allocated to its own handle.
    let mut owner: BTreeMap<IpAddr, String> = BTreeMap::new();
    for b in ipam.blocks().unwrap() {
        for o in 0..b.size() {
            if let Some(h) = b.handle_of(o) {
                assert!(owner
                    .insert(b.ordinal_to_ip(o).unwrap(), h.to_string())
                    .is_none());
            }
        }
    }
    let store = ipam.store().blocking();
    let weps = store
        .block_on(typed::list(
            store.store().as_ref(),
            Kind::WorkloadEndpoint,
            None,
        ))
        .unwrap();
    let mut wep_handles = BTreeSet::new();
    for r in &weps {
        let Resource::WorkloadEndpoint(w) = r else {
            unreachable!()
        };
        let ip = w.spec.ip_networks[0].addr();
        let h = format!("k8s-pod-network.{}", w.spec.container_id);
        assert_eq!(owner.get(&ip), Some(&h), "{ip} of {}", w.metadata.name);
        wep_handles.insert(h);
    }
    for i in (0..WORKERS).filter(|i| !dies(*i)) {
        assert_eq!(
            handles_of(ipam.store(), i),
            PER_WORKER,
            "worker {i} finished its work"
        );
    }

    // Expected leaks: allocations whose owner never wrote its endpoint.
    let expected: BTreeSet<String> = owner
        .values()
        .filter(|h| !wep_handles.contains(*h))
        .cloned()
        .collect();
    assert!(expected.iter().all(|h| dies(worker_of(h))), "{expected:?}");
    let certain = format!("k8s-pod-network.w{SELF_KILLED}-{SELF_KILL_AT}");
    assert!(
        expected.contains(&certain),
        "the self-killed worker's leak: {expected:?}"
    );
    assert!(
        expected.len() <= KILLED.len() + 1,
        "a killed worker leaks at most its last one"
    );
    eprintln!(
        "{url}: {} allocations, leaks of killed workers: {expected:?}",
        owner.len()
    );

    let nodes = ipam.store().node_names().unwrap();
    let report = ipam
        .check(nodes.clone(), ipam.store().addresses_in_use().unwrap())
        .unwrap();
    let leaked: BTreeSet<String> = report
        .leaked
        .iter()
        .filter_map(|l| l.handle.clone())
        .collect();
    assert_eq!(leaked, expected);
    assert!(report.in_use_not_allocated.is_empty());
    assert!(
        report.handle_mismatches.is_empty(),
        "{:?}",
        report.handle_mismatches
    );
    assert!(report.duplicate_affinities.is_empty() && report.missing_affinities.is_empty());
    for a in &report.orphan_affinities {
        let node: usize = a.nodes[0].trim_start_matches('n').parse().unwrap();
        assert!(dies(node), "only a killed claim leaves an orphan: {a:?}");
    }

    // Release from the report file, then the check is clean of leaks.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let back: CheckReport = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let done = ipam.release_from_report(&back, &nodes).unwrap();
    assert_eq!(done.released.len(), expected.len());
    assert!(done.skipped.is_empty());
    let after = ipam
        .check(nodes, ipam.store().addresses_in_use().unwrap())
        .unwrap();
    assert!(after.leaked.is_empty(), "{:?}", after.leaked);
    assert_eq!(after.summary.allocated, weps.len());
}

#[test]
fn eight_processes_on_sqlite_never_share_an_address_and_leaks_of_killed_ones_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tortie.db").display());
    let _ = BlockingStore::open(&url, &Default::default()).unwrap();
    run(&url);
}

#[test]
#[ignore = "root: starts a real etcd server (full suite)"]
fn eight_processes_on_etcd_never_share_an_address_and_leaks_of_killed_ones_are_found() {
    let etcd = tortie_testkit::etcd::Etcd::start().unwrap();
    run(&etcd.url());
}
