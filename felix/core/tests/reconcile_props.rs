//! Reconciler against the in-memory dataplane: convergence, idempotence,
//! recovery after any single injected failure, foreign routes untouched
//! (other protocols anywhere, our protocols outside the owned prefixes),
//! and the restart hold (undesired routes of held protocols kept until
//! released or timed out).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use tortie_felix::mock::{FailPoint, MockDataplane};
use tortie_felix::{
    NextHop, Ownership, Reconciler, RouteEvent, RouteHold, RouteKey, RouteScope, RouteSpec,
};

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

/// Keys 0..32 (10.0.0.0/19) lie in the owned prefix, 32.. outside it.
const OWNED_KEYS: u8 = 32;

fn owned() -> Ownership {
    Ownership::new([80, 84], vec!["10.0.0.0/19".parse().unwrap()])
}

fn reconciler(initial: BTreeMap<RouteKey, RouteSpec>) -> Reconciler<MockDataplane> {
    let mut dp = MockDataplane::new(&[80, 84]);
    dp.routes = initial;
    let mut r = Reconciler::new(dp, Duration::from_secs(90));
    r.set_ownership(owned());
    r
}

/// Routes of `t` that carry our protocols outside the owned prefixes and
/// are not in `desired`: nobody may touch them.
fn ours_elsewhere(
    t: &BTreeMap<RouteKey, RouteSpec>,
    desired: &BTreeMap<RouteKey, RouteSpec>,
) -> BTreeMap<RouteKey, RouteSpec> {
    t.iter()
        .filter(|(k, v)| {
            [80, 84].contains(&v.protocol) && !owned().covers(&k.dst) && !desired.contains_key(k)
        })
        .map(|(k, v)| (*k, v.clone()))
        .collect()
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
    r.on_event(RouteEvent::Deleted(key(1), 80));
    assert!(!r.in_sync());
    let rep = r.apply(t0).unwrap();
    assert_eq!((rep.resynced, rep.replaced), (false, 1));
    assert_eq!(r.dataplane().ours(), table(&[(1, 80, 1)]));
}

#[test]
fn a_route_of_our_protocol_outside_the_owned_prefixes_is_never_touched() {
    let outside = key(OWNED_KEYS + 1);
    let mut r = reconciler(table(&[(OWNED_KEYS + 1, 84, 1), (2, 84, 1)]));
    r.set_desired(BTreeMap::new());
    let t0 = Instant::now();
    let rep = r.apply(t0).unwrap();
    assert_eq!(rep.deleted, 1, "only the one inside the owned prefix");
    assert_eq!(r.dataplane().routes.get(&outside), Some(&spec(84, 1)));
    // Events about it change nothing either.
    r.on_event(RouteEvent::Set(outside, spec(84, 2)));
    assert!(r.in_sync());
    assert_eq!(r.apply(t0).unwrap().deleted, 0);
}

#[test]
fn a_route_of_ours_found_outside_the_owned_prefixes_at_a_wanted_key_is_removed_when_unwanted() {
    // After a restart: the kernel holds our route to an external prefix,
    // the desired state names it again, then no longer; a resync comes
    // between the two.
    let outside = table(&[(OWNED_KEYS + 2, 84, 1)]);
    let mut r = reconciler(outside.clone());
    r.set_desired(outside);
    let t0 = Instant::now();
    assert_eq!(r.apply(t0).unwrap().replaced, 0);
    r.set_desired(BTreeMap::new());
    r.request_resync();
    assert_eq!(r.apply(t0).unwrap().deleted, 1);
    assert!(r.dataplane().ours().is_empty());
}

#[test]
fn another_programs_route_replacing_ours_is_replaced_back_without_a_resync() {
    let mut r = reconciler(BTreeMap::new());
    r.set_desired(table(&[(1, 80, 1)]));
    let t0 = Instant::now();
    r.apply(t0).unwrap();
    // `ip route replace` without a protocol: the kernel's route is now proto boot.
    r.dataplane_mut().routes.insert(key(1), spec(3, 2));
    r.on_event(RouteEvent::Set(key(1), spec(3, 2)));
    assert!(!r.in_sync());
    let rep = r.apply(t0).unwrap();
    assert_eq!((rep.resynced, rep.replaced), (false, 1));
    assert_eq!(r.dataplane().routes.get(&key(1)), Some(&spec(80, 1)));
    // A foreign route at a key we do not want is ignored.
    r.on_event(RouteEvent::Set(key(5), spec(3, 2)));
    assert!(r.in_sync());
}

#[test]
fn a_delete_event_for_another_protocol_does_not_hide_our_route() {
    let mut r = reconciler(BTreeMap::new());
    r.set_desired(table(&[(1, 80, 1)]));
    let t0 = Instant::now();
    r.apply(t0).unwrap();
    r.on_event(RouteEvent::Deleted(key(1), 12));
    assert!(r.in_sync());
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

fn hold_bgp(until: Instant) -> RouteHold {
    RouteHold {
        protocols: [84].into(),
        until,
    }
}

#[test]
fn a_hold_keeps_undesired_routes_of_its_protocol_and_still_writes_the_rest() {
    let mut r = reconciler(table(&[(1, 84, 1), (2, 84, 1), (3, 80, 1)]));
    let t0 = Instant::now();
    r.hold(hold_bgp(t0 + Duration::from_secs(60)));
    // Only key 2 is known again (with a new next hop); 1 is not desired yet.
    r.set_desired(table(&[(2, 84, 2), (4, 84, 1)]));
    let rep = r.apply(t0).unwrap();
    assert_eq!((rep.replaced, rep.deleted, rep.held), (2, 1, 1));
    assert_eq!(
        r.dataplane().ours(),
        table(&[(1, 84, 1), (2, 84, 2), (4, 84, 1)]),
        "the felix route 3 went, the BGP route 1 stayed"
    );
    assert!(!r.in_sync(), "a kept route is not the desired state");
    assert!(r.release_hold());
    let rep = r.apply(t0).unwrap();
    assert_eq!((rep.deleted, rep.held), (1, 0));
    assert_eq!(r.dataplane().ours(), table(&[(2, 84, 2), (4, 84, 1)]));
    assert!(r.in_sync());
}

#[test]
fn a_hold_that_is_never_released_runs_out_at_its_bound() {
    let mut r = reconciler(table(&[(1, 84, 1)]));
    let t0 = Instant::now();
    r.hold(hold_bgp(t0 + Duration::from_secs(60)));
    r.set_desired(BTreeMap::new());
    let rep = r.apply(t0 + Duration::from_secs(59)).unwrap();
    assert_eq!((rep.deleted, rep.held, rep.hold_expired), (0, 1, false));
    let rep = r.apply(t0 + Duration::from_secs(60)).unwrap();
    assert_eq!((rep.deleted, rep.held, rep.hold_expired), (1, 0, true));
    assert!(r.holding().is_none());
    assert!(r.dataplane().ours().is_empty());
}

proptest! {
    #[test]
    fn under_a_hold_no_route_of_the_held_protocol_is_deleted_and_release_converges(
        initial in arb_table(&[80, 84, 3]),
        desired in arb_table(&[80, 84]),
    ) {
        let mut kept: BTreeMap<_, _> = initial.iter()
            .filter(|(k, v)| v.protocol == 84 && !desired.contains_key(k) && owned().covers(&k.dst))
            .map(|(k, v)| (*k, v.clone())).collect();
        let held = kept.len();
        let elsewhere = ours_elsewhere(&initial, &desired);
        kept.extend(elsewhere.clone());
        let mut r = reconciler(initial);
        let t0 = Instant::now();
        r.hold(hold_bgp(t0 + Duration::from_secs(60)));
        r.set_desired(desired.clone());
        let rep = r.apply(t0).unwrap();
        prop_assert_eq!(rep.held, held);
        let mut want = desired.clone();
        want.extend(kept);
        prop_assert_eq!(r.dataplane().ours(), want);
        r.release_hold();
        r.apply(t0).unwrap();
        prop_assert!(r.in_sync());
        let mut want = desired.clone();
        want.extend(elsewhere);
        prop_assert_eq!(r.dataplane().ours(), want);
    }

    #[test]
    fn apply_converges_and_a_second_apply_does_nothing(
        initial in arb_table(&[80, 84, 3, 4]),
        desired in arb_table(&[80, 84]),
    ) {
        let mut foreign: BTreeMap<_, _> = initial.iter()
            .filter(|(k, v)| v.protocol < 80 && !desired.contains_key(k))
            .map(|(k, v)| (*k, v.clone())).collect();
        let elsewhere = ours_elsewhere(&initial, &desired);
        foreign.extend(elsewhere.clone());
        let mut r = reconciler(initial);
        r.set_desired(desired.clone());
        let t0 = Instant::now();
        r.apply(t0).unwrap();
        prop_assert!(r.in_sync());
        let mut want = desired.clone();
        want.extend(elsewhere);
        prop_assert_eq!(r.dataplane().ours(), want);
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
        initial in arb_table(&[80, 84, 3]),
        desired in arb_table(&[80, 84]),
        fail_at in prop::option::of(0usize..40),
    ) {
        let mut want = desired.clone();
        want.extend(ours_elsewhere(&initial, &desired));
        let mut r = reconciler(initial);
        r.set_desired(desired.clone());
        r.dataplane_mut().fail_next = Some(fail_at.map_or(FailPoint::Dump, FailPoint::Write));
        let t0 = Instant::now();
        let _ = r.apply(t0);
        r.apply(t0).unwrap();
        prop_assert!(r.in_sync());
        prop_assert_eq!(r.dataplane().ours(), want);
    }

    #[test]
    fn what_we_installed_outside_the_owned_prefixes_we_remove_and_nothing_else_there(
        initial in arb_table(&[80, 84, 3]),
        first in arb_table(&[80, 84]),
        second in arb_table(&[80, 84]),
        resync_between in any::<bool>(),
    ) {
        let mut r = reconciler(initial.clone());
        let t0 = Instant::now();
        r.set_desired(first.clone());
        r.apply(t0).unwrap();
        if resync_between {
            r.request_resync();
            r.apply(t0).unwrap();
        }
        r.set_desired(second.clone());
        r.apply(t0).unwrap();
        prop_assert!(r.in_sync());
        // Untouched: ours elsewhere that neither desired state ever named.
        let mut want = second.clone();
        for (k, v) in ours_elsewhere(&initial, &second) {
            if !first.contains_key(&k) {
                want.insert(k, v);
            }
        }
        prop_assert_eq!(r.dataplane().ours(), want);
    }
}
