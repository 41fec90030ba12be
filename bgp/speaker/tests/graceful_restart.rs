//! The restarting-speaker side of graceful restart (RFC 4724 §4.1) with
//! real peers (root: network namespaces).
//!
//! Layout: namespace `<prefix>d` holds two tortie speakers, A (10.77.0.1)
//! and B (10.77.0.3); `<prefix>p` runs BIRD 2 with graceful restart on
//! (10.77.0.2). A also has a configured peer 10.77.0.9 that never answers.
//! A first runs as a process (the `speakerd` example) and is killed with
//! SIGKILL: its sockets close without a NOTIFICATION. A is then started
//! again, in-process, as a restarting speaker.

mod support;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::bird_gr::{GrBird, GrBirdSpec};
use support::{
    has_all, init_log, mesh_peer, poll_async, poll_until, prefixes, rib, run_in_netns, timers,
    PeerLab,
};
use tortie_bgp_session::State;
use tortie_bgp_speaker::{
    AfiName, Establishment, FibEvent, GracefulRestartConfig, PeerConfig, RestartOptions, Speaker,
    SpeakerConfig, SpeakerEvent, SpeakerHandle, SpeakerOptions,
};
use tortie_bgp_wire::{Family, PathAttributes};
use tortie_testkit::ChildGuard;

const AS: u32 = 65001;
const WAIT: Duration = Duration::from_secs(30);
/// BIRD's and B's prefixes: A learns them before its restart.
const LEARNED: [&str; 3] = ["10.2.0.0/24", "10.2.1.0/24", "10.3.0.0/24"];
/// A's own prefixes.
const OURS: [&str; 2] = ["10.1.0.0/24", "10.1.1.0/24"];

/// A mesh session with graceful restart on, IPv4 only.
fn peer(addr: &str, port: u16, local: &str, establishment: Establishment) -> PeerConfig {
    let mut p = mesh_peer(AS, addr, port, local, establishment, timers(1, 1_000));
    p.families = vec![AfiName::Ipv4];
    p.graceful_restart = Some(GracefulRestartConfig::default());
    p
}

fn a_config() -> SpeakerConfig {
    SpeakerConfig {
        asn: AS,
        router_id: "10.77.0.1".parse().unwrap(),
        listen: Some("10.77.0.1:17901".parse().unwrap()),
        peers: vec![
            peer("10.77.0.2", 17900, "10.77.0.1", Establishment::Active),
            peer("10.77.0.3", 17901, "10.77.0.1", Establishment::Active),
            // Configured, never comes back: only `peer_wait` waits for it.
            peer("10.77.0.9", 17901, "10.77.0.1", Establishment::Active),
        ],
    }
}

/// A directory removed on drop, also when the test fails.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `speakerd` example built next to this test (`cargo test` builds examples).
fn speakerd() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("examples").join("speakerd");
    assert!(
        bin.exists(),
        "{} missing: run the whole `cargo test -p tortie-bgp-speaker` (it builds the examples) or `cargo build -p tortie-bgp-speaker --example speakerd`",
        bin.display()
    );
    bin
}

/// Runs A as a `speakerd` process in namespace `ns`; killed with SIGKILL on drop.
fn spawn_a(ns: &str, dir: &std::path::Path) -> ChildGuard {
    let conf = serde_json::json!({
        "speaker": a_config(),
        "originate": OURS,
        "status_file": dir.join("status.json"),
    });
    let path = dir.join("speakerd.json");
    std::fs::write(&path, conf.to_string()).unwrap();
    ChildGuard::spawn(
        "speakerd",
        std::process::Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(speakerd())
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap()
}

/// Starts A in-process; its events are collected.
fn start_a(options: SpeakerOptions) -> (SpeakerHandle, Arc<Mutex<Vec<SpeakerEvent>>>) {
    let (h, mut rx) = Speaker::start_with(a_config(), options).unwrap();
    let events: Arc<Mutex<Vec<SpeakerEvent>>> = Arc::default();
    let e = events.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            e.lock().unwrap().push(ev);
        }
    });
    (h, events)
}

async fn established(h: &SpeakerHandle, peers: &[&str]) -> bool {
    let st = h.peer_status().await.unwrap();
    peers.iter().all(|p| {
        let a: IpAddr = p.parse().unwrap();
        st.iter()
            .any(|s| s.address == a && s.state == State::Established)
    })
}

fn eor_from(events: &Mutex<Vec<SpeakerEvent>>, peer: &str) -> bool {
    let p: IpAddr = peer.parse().unwrap();
    events.lock().unwrap().iter().any(|e| {
        matches!(e, SpeakerEvent::EndOfRib { peer, family } if *peer == p && *family == Family::IPV4_UNICAST)
    })
}

#[test]
#[ignore = "root: BIRD and two speakers in network namespaces"]
fn a_restarting_speaker_keeps_forwarding_and_completes_without_the_peer_that_stays_down() {
    init_log();
    let lab = PeerLab::new("grr");
    let (p, dut) = (&lab.prefix, &lab.dut);
    let bird = GrBird::start(
        &lab.peer,
        &GrBirdSpec {
            router_id: "10.77.0.2".parse().unwrap(),
            asn: AS,
            local: "10.77.0.2".parse().unwrap(),
            port: 17900,
            peer: "10.77.0.1".parse().unwrap(),
            peer_port: 17901,
            peer_as: AS,
            originate: vec![LEARNED[0].into(), LEARNED[1].into()],
        },
    );
    let tmp_dir = TempDir::new(&format!("{p}speakerd"));
    let tmp = tmp_dir.0.clone();
    let mut a_process = spawn_a(dut.name(), &tmp);
    let status = tmp.join("status.json");
    run_in_netns(&dut.path(), move || async move {
        // B: a receiving speaker for A.
        let b_cfg = SpeakerConfig {
            asn: AS,
            router_id: "10.77.0.3".parse().unwrap(),
            listen: Some("10.77.0.3:17901".parse().unwrap()),
            peers: vec![peer(
                "10.77.0.1",
                17901,
                "10.77.0.3",
                Establishment::Passive,
            )],
        };
        let (b, _b_rx) = Speaker::start(b_cfg).unwrap();
        b.originate(prefixes(&[LEARNED[2]]), PathAttributes::default())
            .await
            .unwrap();

        // 1. A runs normally (a process) and exchanges routes with BIRD and B.
        poll_until("BIRD Established with A", WAIT, || bird.established()).await;
        poll_async("B Established with A", WAIT, || {
            established(&b, &["10.77.0.1"])
        })
        .await;
        poll_until("BIRD has A's prefixes", WAIT, || {
            has_all(&bird.received(), &OURS)
        })
        .await;
        poll_async("B has A's prefixes", WAIT, || async {
            has_all(&rib(&b).await, &OURS)
        })
        .await;
        poll_until("A learned BIRD's two prefixes and B's one", WAIT, || {
            let st: serde_json::Value = std::fs::read_to_string(status.clone())
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            let got = |addr: &str| {
                st.as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["address"] == addr)
                    .map(|p| p["prefixes_received"].clone())
            };
            got("10.77.0.2") == Some(2.into()) && got("10.77.0.3") == Some(1.into())
        })
        .await;

        // 2. A is killed (SIGKILL: no NOTIFICATION); the peers keep its routes, stale.
        a_process.kill();
        poll_until("BIRD noticed A is gone", WAIT, || !bird.established()).await;
        poll_async("B noticed A is gone", WAIT, || async {
            !established(&b, &["10.77.0.1"]).await
        })
        .await;
        assert!(
            has_all(&bird.received(), &OURS),
            "BIRD flushed A's routes:\n{}",
            bird.log()
        );
        let kept = b.rib_query(None).await.unwrap();
        for p in OURS {
            let e = kept
                .iter()
                .find(|e| e.prefix.to_string() == p)
                .unwrap_or_else(|| panic!("B lost {p}"));
            assert!(e.paths[0].stale, "{e:?}");
        }

        // 3. A comes back as a restarting speaker.
        let options = SpeakerOptions {
            restart: Some(RestartOptions {
                selection_deferral: Duration::from_secs(300),
                peer_wait: Duration::from_secs(5),
            }),
            ..SpeakerOptions::default()
        };
        let restarted = std::time::Instant::now();
        let (a, events) = start_a(options);
        let mut fib = a.subscribe_fib().await.unwrap();
        assert!(a.restart_in_progress().await.unwrap());
        a.originate(prefixes(&OURS), PathAttributes::default())
            .await
            .unwrap();

        // The FIB stream until RestartComplete (at most 60 s, deferral is 300 s).
        let mut given: HashSet<String> = HashSet::new();
        let mut saw_r_bit = false;
        let complete = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                tokio::select! {
                    ev = fib.recv() => match ev.expect("FIB stream open") {
                        FibEvent::RestartComplete => return,
                        FibEvent::Routes(updates) => {
                            for u in updates {
                                let prefix = u.prefix.to_string();
                                assert!(
                                    u.route.is_some() || !LEARNED.contains(&prefix.as_str()),
                                    "{prefix} withdrawn from the FIB during the restart"
                                );
                                given.insert(prefix);
                            }
                        }
                    },
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        // While A restarts: BIRD sees the R bit and keeps A's routes.
                        let proto = bird.protocol();
                        if !saw_r_bit && bird.established() && proto.contains("Restart recovery") {
                            eprintln!("BIRD while A restarts:\n{proto}");
                            saw_r_bit = true;
                        }
                        assert!(has_all(&bird.received(), &OURS), "BIRD lost A's routes during the restart");
                    }
                }
            }
        })
        .await;
        assert!(
            complete.is_ok(),
            "no RestartComplete within 60 s; BIRD:\n{}",
            bird.protocol()
        );
        eprintln!(
            "RestartComplete {:?} after the restart (peer_wait 5 s, deferral 300 s)",
            restarted.elapsed()
        );
        assert!(
            saw_r_bit,
            "BIRD never showed the Restart State bit:\n{}",
            bird.protocol()
        );
        // The whole table came before RestartComplete, so the End-of-RIBs of
        // the peers that came back were awaited.
        assert!(LEARNED.iter().all(|p| given.contains(*p)), "{given:?}");
        poll_until("End-of-RIB from BIRD and B seen", WAIT, || {
            eor_from(&events, "10.77.0.2") && eor_from(&events, "10.77.0.3")
        })
        .await;
        assert!(!a.restart_in_progress().await.unwrap());
        let st = a.peer_status().await.unwrap();
        let down: IpAddr = "10.77.0.9".parse().unwrap();
        assert!(st
            .iter()
            .any(|s| s.address == down && s.state != State::Established));

        // After the restart: tables and End-of-RIB go out; B's stale routes are refreshed.
        poll_async("B has A's routes, no longer stale", WAIT, || async {
            let r = b.rib_query(None).await.unwrap();
            OURS.iter().all(|p| {
                r.iter().any(|e| {
                    e.prefix.to_string() == *p && e.paths.first().is_some_and(|x| !x.stale)
                })
            })
        })
        .await;
        assert!(has_all(&bird.received(), &OURS));

        // New OPENs no longer carry the R bit: BIRD re-establishes after a reset.
        bird.birdc(&["restart", "peer"]).expect("birdc restart");
        poll_until("BIRD re-established", WAIT, || bird.established()).await;
        poll_until("BIRD's view of A has no Restart State bit", WAIT, || {
            let p = bird.protocol();
            p.contains("Established")
                && p.contains("Graceful restart")
                && !p.contains("Restart recovery")
        })
        .await;
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
        drop(bird);
    });
}
