//! Shared helpers of the speaker's integration tests.
#![allow(dead_code)]

pub mod bird_gr;

use std::future::Future;
use std::time::{Duration, Instant};
use tortie_bgp_speaker::{PeerStatus, SpeakerHandle};

/// Runs `f` on a fresh multi-thread tokio runtime whose threads live in the
/// network namespace at `ns_path` (every socket the speaker opens is there).
pub fn run_in_netns<F, Fut>(ns_path: &str, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let path = ns_path.to_string();
    let t = std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f());
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `timeout`.
pub async fn poll_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`poll_until`] with an async condition.
pub async fn poll_async<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status of the only (or first) peer.
pub async fn first_peer(h: &SpeakerHandle) -> PeerStatus {
    h.peer_status()
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a peer")
}

/// Enables logs when `TORTIE_TEST_LOG` is set (e.g. `debug`).
pub fn init_log() {
    if let Ok(filter) = std::env::var("TORTIE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}
