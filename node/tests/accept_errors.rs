//! The servers' accept loop survives errors: with the process's file
//! descriptors used up, `accept` fails (EMFILE) and the loop keeps going,
//! and once descriptors are free again a request is answered. Alone in its
//! test binary, because it lowers the process's descriptor limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tortie_node::serve::{serve, Limits, ServerStats, Service};

struct Echo;

impl Service for Echo {
    fn complete(&self, buf: &[u8]) -> bool {
        buf.contains(&b'\n')
    }

    async fn answer(&self, request: Vec<u8>) -> Vec<u8> {
        request
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test]
async fn accept_errors_do_not_end_the_loop() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ServerStats::default());
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(Echo),
        Limits::default(),
        stats.clone(),
        stop.clone(),
    ));

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, open_fds() + 12, hard).unwrap();
    // Connect until the process has no descriptor left: the server's
    // accepts fail with EMFILE while clients keep the backlog full.
    let mut clients = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect(addr).await {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
    }
    let errors = async {
        while stats.accept_errors.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), errors)
        .await
        .expect("accept never failed: the test proves nothing");
    drop(clients);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();

    let answered = async {
        loop {
            let Ok(mut c) = TcpStream::connect(addr).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let _ = c.write_all(b"ping\n").await;
            let mut out = Vec::new();
            if c.read_to_end(&mut out).await.is_ok() && out == b"ping\n" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), answered)
        .await
        .expect("no answer after the descriptors came back");
    assert!(!server.is_finished(), "the accept loop ended");
    stop.cancel();
    server.await.unwrap();
}
