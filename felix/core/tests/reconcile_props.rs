//! Reconciler against the in-memory dataplane: convergence, idempotence,
//! recovery after any single injected failure, foreign routes untouched.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use tortie_felix::mock::{FailPoint, MockDataplane};
use tortie_felix::{NextHop, Reconciler, RouteEvent, RouteKey, RouteScope, RouteSpec};

fn key(i: u8) -> RouteKey {
    RouteKey {
        table: 254,
        dst: IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 0, i, 0), 24).unwrap()),
    }
}

fn spec(proto: u8, gw: u8) -> RouteSpec {
    RouteSpec::unicast(
        proto,
        RouteScope::Universe,
        vec![NextHop::via(IpAddr::V4(Ipv4Addr::new(172, 16, 0, gw)))],
    )
}

fn table(entries: &[(u8, u8, u8)]) -> BTreeMap<RouteKey, RouteSpec> {
    entries
        .iter()
        .map(|(k, p, g)| (key(*k), spec(*p, *g)))
        .collect()
}

fn arb_table(protos: &'static [u8]) -> impl Strategy<Value = BTreeMap<RouteKey, RouteSpec>> {
    prop::collection::vec((0u8..40, prop::sample::select(protos), 1u8..4), 0..30)
        .prop_map(|v| table(&v))
}

fn reconciler(initial: BTreeMap<RouteKey, RouteSpec>) -> Reconciler<MockDataplane> {
    let mut dp = MockDataplane::new(&[80, 186]);
    dp.routes = initial;
    Reconciler::new(dp, Duration::from_secs(90))
}

#[test]
fn an_apply_with_nothing_to_do_writes_nothing() {
    let mut r = reconciler(table(&[(1, 80, 1)]));
    r.set_desired(table(&[(1, 80, 1)]));
    let t0 = Instant::now();
    let rep = r.apply(t0).unwrap();
    assert!(rep.resynced);
    assert_eq!(r.dataplane().writes, 0);
    assert!(r.in_sync());
}

#[test]
fn a_deleted_route_reported_by_the_monitor_is_rewritten() {
    let mut r = reconciler(BTreeMap::new());
    r.set_desired(table(&[(1, 80, 1)]));
    let t0 = Instant::now();
    r.apply(t0).unwrap();
    r.dataplane_mut().routes.clear();
    r.on_event(RouteEvent::Deleted(key(1)));
    assert!(!r.in_sync());
    let rep = r.apply(t0).unwrap();
    assert_eq!((rep.resynced, rep.replaced), (false, 1));
    assert_eq!(r.dataplane().ours(), table(&[(1, 80, 1)]));
}

#[test]
fn the_timer_resync_finds_a_silently_lost_route() {
    let mut r = reconciler(BTreeMap::new());
    r.set_desired(table(&[(1, 80, 1)]));
    let t0 = Instant::now();
    r.apply(t0).unwrap();
    r.dataplane_mut().routes.clear();
    assert_eq!(r.apply(t0).unwrap().replaced, 0);
    let rep = r.apply(t0 + Duration::from_secs(91)).unwrap();
    assert!(rep.resynced);
    assert_eq!(rep.replaced, 1);
}

#[test]
fn an_overflow_forces_a_resync() {
    let mut r = reconciler(BTreeMap::new());
    let t0 = Instant::now();
    r.apply(t0).unwrap();
    r.on_event(RouteEvent::Overflow);
    assert!(!r.in_sync());
    assert!(r.apply(t0).unwrap().resynced);
}

#[test]
fn a_failed_dump_is_retried_on_the_next_apply() {
    let mut r = reconciler(BTreeMap::new());
    r.set_desired(table(&[(1, 80, 1)]));
    r.dataplane_mut().fail_next = Some(FailPoint::Dump);
    let t0 = Instant::now();
    assert!(r.apply(t0).is_err());
    r.apply(t0).unwrap();
    assert!(r.in_sync());
}

proptest! {
    #[test]
    fn apply_converges_and_a_second_apply_does_nothing(
        initial in arb_table(&[80, 186, 3, 4]),
        desired in arb_table(&[80, 186]),
    ) {
        let foreign: BTreeMap<_, _> = initial.iter()
            .filter(|(k, v)| v.protocol < 80 && !desired.contains_key(k))
            .map(|(k, v)| (*k, v.clone())).collect();
        let mut r = reconciler(initial);
        r.set_desired(desired.clone());
        let t0 = Instant::now();
        r.apply(t0).unwrap();
        prop_assert!(r.in_sync());
        prop_assert_eq!(r.dataplane().ours(), desired);
        for (k, v) in &foreign {
            prop_assert_eq!(r.dataplane().routes.get(k), Some(v));
        }
        let writes = r.dataplane().writes;
        let rep = r.apply(t0).unwrap();
        prop_assert_eq!(r.dataplane().writes, writes);
        prop_assert_eq!((rep.replaced, rep.deleted), (0, 0));
    }

    #[test]
    fn after_any_single_failure_the_next_apply_converges(
        initial in arb_table(&[80, 186, 3]),
        desired in arb_table(&[80, 186]),
        fail_at in prop::option::of(0usize..40),
    ) {
        let mut r = reconciler(initial);
        r.set_desired(desired.clone());
        r.dataplane_mut().fail_next = Some(fail_at.map_or(FailPoint::Dump, FailPoint::Write));
        let t0 = Instant::now();
        let _ = r.apply(t0);
        r.apply(t0).unwrap();
        prop_assert!(r.in_sync());
        prop_assert_eq!(r.dataplane().ours(), desired);
    }
}
