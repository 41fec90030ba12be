//! Run-time policy change (`SpeakerHandle::set_policy`) with real peers
//! (root: network namespaces).
//!
//! Layout: namespace `<prefix>d` runs two tortie speakers in-process, A
//! (10.77.0.1, with a policy) and B (10.77.0.3, no policy); `<prefix>p` runs
//! BIRD 2 (10.77.0.2). A peers with both over iBGP as cluster nodes (mesh),
//! so Calico's import rules apply to what they send. Changing A's pools
//! must make a prefix refused before appear (A sends ROUTE-REFRESH, the
//! peers send again), announce a newly exportable prefix, withdraw one no
//! longer exportable, and keep every session up.

mod support;

use std::time::Duration;
use support::{
    has_all, ibgp_spec, init_log, poll_async, poll_until, prefixes, rib, run_in_netns, status_of,
    timers, PeerLab,
};
use tortie_bgp_rib::{PolicyConfig, PoolConfig};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    AfiName, Establishment, PeerConfig, Speaker, SpeakerConfig, SpeakerHandle, SpeakerOptions,
};
use tortie_bgp_wire::PathAttributes;
use tortie_testkit::daemons::{BgpDaemon, Bird};

const AS: u32 = 65001;
const WAIT: Duration = Duration::from_secs(30);

fn pool(cidr: &str, disable_bgp_export: bool) -> PoolConfig {
    PoolConfig {
        cidr: cidr.parse().unwrap(),
        disable_bgp_export,
    }
}

/// Before: 10.50/16 and 10.80/16 (exported); 10.60/16 is no pool.
fn policy_before() -> PolicyConfig {
    PolicyConfig {
        pools: vec![pool("10.50.0.0/16", false), pool("10.80.0.0/16", false)],
        ..Default::default()
    }
}

/// After: 10.60/16 is a pool; 10.80/16 is one with BGP export disabled.
fn policy_after() -> PolicyConfig {
    PolicyConfig {
        pools: vec![
            pool("10.50.0.0/16", false),
            pool("10.60.0.0/16", false),
            pool("10.80.0.0/16", true),
        ],
        ..Default::default()
    }
}

/// A mesh session with this test's timers.
fn mesh_peer(addr: &str, port: u16, local: &str, establishment: Establishment) -> PeerConfig {
    support::mesh_peer(AS, addr, port, local, establishment, timers(2, 2_000))
}

/// Every session (however many) Established?
async fn all_established(h: &SpeakerHandle) -> bool {
    h.peer_status()
        .await
        .unwrap()
        .iter()
        .all(|s| s.state == State::Established)
}

/// BIRD's `show protocols peer` line: name, proto, table, state, since, info.
fn bird_since(b: &Bird) -> String {
    let out = b.birdc(&["show", "protocols", "peer"]).unwrap();
    out.lines()
        .find(|l| l.starts_with("peer"))
        .map(|l| l.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn has_none(have: &[String], unwanted: &[&str]) -> bool {
    !unwanted.iter().any(|w| have.iter().any(|h| h == w))
}

#[test]
#[ignore = "root: BIRD and two speakers in network namespaces"]
fn a_policy_change_refreshes_imports_and_changes_exports_without_a_reset() {
    init_log();
    let lab = PeerLab::new("pol");
    // 10.50.1.0/24 is in a pool from the start; 10.60.1.0/24 only after.
    let spec = ibgp_spec(
        AS,
        "10.77.0.2".parse().unwrap(),
        17900,
        "10.77.0.1",
        17901,
        &["10.50.1.0/24", "10.60.1.0/24"],
    );
    let bird = Bird::start(&lab.peer, spec).unwrap();
    run_in_netns(&lab.dut.path(), move || async move {
        let a_cfg = SpeakerConfig {
            asn: AS,
            router_id: "10.77.0.1".parse().unwrap(),
            listen: Some("10.77.0.1:17901".parse().unwrap()),
            peers: vec![],
        };
        let options = SpeakerOptions {
            policy: Some(policy_before()),
            ..SpeakerOptions::default()
        };
        let (a, _a_rx) = Speaker::start_with(a_cfg, options).unwrap();
        let b_cfg = SpeakerConfig {
            asn: AS,
            router_id: "10.77.0.3".parse().unwrap(),
            listen: Some("10.77.0.3:17901".parse().unwrap()),
            peers: vec![],
        };
        let (b, _b_rx) = Speaker::start(b_cfg).unwrap();
        a.originate(
            prefixes(&["10.50.9.0/24", "10.60.9.0/24", "10.80.9.0/24"]),
            PathAttributes::default(),
        )
        .await
        .unwrap();
        b.originate(prefixes(&["10.60.3.0/24"]), PathAttributes::default())
            .await
            .unwrap();
        let mut to_bird = mesh_peer("10.77.0.2", 17900, "10.77.0.1", Establishment::Active);
        to_bird.families = vec![AfiName::Ipv4];
        a.add_peer(to_bird).await.unwrap();
        a.add_peer(mesh_peer(
            "10.77.0.3",
            17901,
            "10.77.0.1",
            Establishment::Active,
        ))
        .await
        .unwrap();
        b.add_peer(mesh_peer(
            "10.77.0.1",
            17901,
            "10.77.0.3",
            Establishment::Passive,
        ))
        .await
        .unwrap();
        poll_async("A's sessions Established", WAIT, || all_established(&a)).await;
        poll_async("B's session Established", WAIT, || all_established(&b)).await;

        // Before: imports and exports under the first policy.
        poll_until("BIRD has A's exportable prefixes", WAIT, || {
            has_all(&bird.received(), &["10.50.9.0/24", "10.80.9.0/24"])
        })
        .await;
        poll_async("B has A's exportable prefixes", WAIT, || async {
            has_all(&rib(&b).await, &["10.50.9.0/24", "10.80.9.0/24"])
        })
        .await;
        poll_async("A has BIRD's pool prefix", WAIT, || async {
            has_all(&rib(&a).await, &["10.50.1.0/24"])
        })
        .await;
        assert!(
            has_none(&bird.received(), &["10.60.9.0/24"]),
            "{:?}",
            bird.received()
        );
        assert!(has_none(&rib(&b).await, &["10.60.9.0/24"]));
        let a_rib = rib(&a).await;
        assert!(
            has_none(&a_rib, &["10.60.1.0/24", "10.60.3.0/24"]),
            "{a_rib:?}"
        );
        let before_bird = status_of(&a, "10.77.0.2").await;
        let before_b = status_of(&a, "10.77.0.3").await;
        let before_b_side = status_of(&b, "10.77.0.1").await;
        let bird_up = bird_since(&bird);
        assert!(bird_up.contains("Established"), "{bird_up}");

        // The change: 10.60/16 becomes a pool, 10.80/16 stops being exported.
        a.set_policy(Some(policy_after())).await.unwrap();
        poll_async("A has the prefixes refused before", WAIT, || async {
            has_all(
                &rib(&a).await,
                &["10.50.1.0/24", "10.60.1.0/24", "10.60.3.0/24"],
            )
        })
        .await;
        poll_until(
            "BIRD got the newly exportable prefix and lost the other",
            WAIT,
            || {
                let r = bird.received();
                has_all(&r, &["10.50.9.0/24", "10.60.9.0/24"]) && has_none(&r, &["10.80.9.0/24"])
            },
        )
        .await;
        poll_async(
            "B got the newly exportable prefix and lost the other",
            WAIT,
            || async {
                let r = rib(&b).await;
                has_all(&r, &["10.50.9.0/24", "10.60.9.0/24"]) && has_none(&r, &["10.80.9.0/24"])
            },
        )
        .await;
        // ROUTE-REFRESH went out, once per negotiated family, and B got it.
        let after_bird = status_of(&a, "10.77.0.2").await;
        let after_b = status_of(&a, "10.77.0.3").await;
        assert_eq!(
            after_bird.sent.route_refresh,
            before_bird.sent.route_refresh + 1,
            "{after_bird:?}"
        );
        assert_eq!(
            after_b.sent.route_refresh,
            before_b.sent.route_refresh + 2,
            "{after_b:?}"
        );
        let after_b_side = status_of(&b, "10.77.0.1").await;
        assert_eq!(
            after_b_side.received.route_refresh,
            before_b_side.received.route_refresh + 2,
            "{after_b_side:?}"
        );
        // No session was reset.
        for (was, is) in [
            (&before_bird, &after_bird),
            (&before_b, &after_b),
            (&before_b_side, &after_b_side),
        ] {
            assert_eq!(
                (is.flaps, is.since, is.state),
                (was.flaps, was.since, State::Established),
                "{is:?}"
            );
        }
        assert_eq!(bird_since(&bird), bird_up);

        // Some → None: everything is accepted and exported again.
        a.set_policy(None).await.unwrap();
        poll_until("BIRD got every prefix of A", WAIT, || {
            has_all(
                &bird.received(),
                &["10.50.9.0/24", "10.60.9.0/24", "10.80.9.0/24"],
            )
        })
        .await;
        // None → Some: the first policy again; refused imports are dropped,
        // exports outside it withdrawn.
        a.set_policy(Some(policy_before())).await.unwrap();
        poll_async("A dropped the prefixes outside the pools", WAIT, || async {
            let r = rib(&a).await;
            has_none(&r, &["10.60.1.0/24", "10.60.3.0/24"]) && has_all(&r, &["10.50.1.0/24"])
        })
        .await;
        poll_until("BIRD lost the prefix outside the pools", WAIT, || {
            let r = bird.received();
            has_none(&r, &["10.60.9.0/24"]) && has_all(&r, &["10.50.9.0/24", "10.80.9.0/24"])
        })
        .await;
        let last = status_of(&a, "10.77.0.2").await;
        assert_eq!(
            (last.flaps, last.since),
            (before_bird.flaps, before_bird.since)
        );
        assert_eq!(bird_since(&bird), bird_up);
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    });
}
