//! The connection machinery of the agent's two servers (the control socket
//! and HTTP): an accept loop that survives errors, a cap on connections,
//! read and write deadlines, and a stop that waits for every connection.
//!
//! Idle connections cannot stop the servers: a request must arrive whole
//! within the read deadline (a slow sender is cut off), and when the cap is
//! reached a new connection takes the place of the one that has been
//! waiting longest for its request, so a health check that sends its
//! request at once is answered however many idle connections a local user
//! opens. An accept error (EMFILE, ENFILE, ENOBUFS…) is logged at most once
//! a second and retried after a short pause; it never ends the loop.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The whole request must arrive within this.
    pub read_timeout: Duration,
    /// The whole answer must be taken within this.
    pub write_timeout: Duration,
    /// Longest request accepted.
    pub max_request: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_request: 8 << 10,
        }
    }
}

/// A protocol spoken on a server: where a request ends, and its answer.
pub trait Service: Send + Sync + 'static {
    /// True once `buf` holds a complete request.
    fn complete(&self, buf: &[u8]) -> bool;
    /// The answer to `request` (what the connection gets before it closes).
    fn answer(&self, request: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send;
}

/// A listener of either kind.
pub trait Accept: Send + Sync + 'static {
    /// The connection type.
    type Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Waits for the next connection.
    fn accept_conn(&self) -> impl Future<Output = std::io::Result<Self::Conn>> + Send;
}

impl Accept for TcpListener {
    type Conn = TcpStream;
    async fn accept_conn(&self) -> std::io::Result<TcpStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for UnixListener {
    type Conn = UnixStream;
    async fn accept_conn(&self) -> std::io::Result<UnixStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Counters of one server (for tests and logs).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Accept calls that failed.
    pub accept_errors: AtomicU64,
    /// Connections closed to make room for a new one.
    pub evicted: AtomicU64,
}

/// Connections still waiting for their request, oldest first.
type Waiting = Arc<Mutex<VecDeque<(u64, CancellationToken)>>>;

fn lock(w: &Waiting) -> std::sync::MutexGuard<'_, VecDeque<(u64, CancellationToken)>> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one request within the deadline; `None` if it did not come whole.
async fn read_request<C: AsyncRead + Unpin, S: Service>(
    conn: &mut C,
    service: &S,
    limits: &Limits,
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = conn.read(&mut chunk).await.ok()?;
            if n == 0 {
                return (!buf.is_empty()).then_some(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if service.complete(&buf) {
                return Some(());
            }
            if buf.len() > limits.max_request {
                return None;
            }
        }
    };
    tokio::time::timeout(limits.read_timeout, read)
        .await
        .ok()??;
    Some(buf)
}

async fn handle<C, S>(
    mut conn: C,
    service: Arc<S>,
    limits: Limits,
    id: u64,
    cancel: CancellationToken,
    waiting: Waiting,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    S: Service,
{
    let req = tokio::select! {
        _ = cancel.cancelled() => None,
        r = read_request(&mut conn, service.as_ref(), &limits) => r,
    };
    lock(&waiting).retain(|(i, _)| *i != id);
    let Some(req) = req else { return };
    let answer = service.answer(req).await;
    let write = async {
        conn.write_all(&answer).await?;
        conn.shutdown().await
    };
    let _ = tokio::time::timeout(limits.write_timeout, write).await;
}

/// Serves `listener` with `service` until `stop`; then waits for the
/// connections in flight (they end by their deadlines at the latest).
pub async fn serve<L: Accept, S: Service>(
    listener: L,
    service: Arc<S>,
    limits: Limits,
    stats: Arc<ServerStats>,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    let waiting: Waiting = Arc::default();
    let mut next_id = 0u64;
    let mut last_warn: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept_conn() => r,
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    last_warn = Some(Instant::now());
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if conns.len() >= limits.max_connections {
            match lock(&waiting).pop_front() {
                Some((_, oldest)) => {
                    oldest.cancel();
                    stats.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => continue, // every slot is answering: drop this one
            }
        }
        next_id += 1;
        let cancel = CancellationToken::new();
        lock(&waiting).push_back((next_id, cancel.clone()));
        conns.spawn(handle(
            conn,
            service.clone(),
            limits,
            next_id,
            cancel,
            waiting.clone(),
        ));
    }
    for (_, c) in lock(&waiting).drain(..) {
        c.cancel();
    }
    while conns.join_next().await.is_some() {}
}
