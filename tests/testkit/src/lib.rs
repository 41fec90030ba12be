//! Test helpers for tortie's full suite: network namespaces and child
//! processes that clean themselves up (also when a test panics), polling
//! with a deadline instead of sleeping, and free loopback ports.
//!
//! Must not: touch any namespace or process it did not create, or send
//! traffic anywhere but loopback and namespaces created here.

pub mod daemons;
pub mod etcd;
pub mod netns;
pub mod process;
pub mod wait;

pub use netns::Netns;
pub use process::ChildGuard;
pub use wait::{wait_until, WaitError};

/// True when the current process runs as root (uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A short name prefix unique to this test process and call, e.g. `tt12345a3-`.
///
/// Namespaces created by tests start with it so that parallel runs never
/// collide and leftovers are recognisable.
pub fn unique_prefix(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(4)
        .collect();
    format!("tt{}{}{:x}-", tag, std::process::id() % 100_000, n)
}
