//! The control socket (JSON request/response, see [`crate::api`]) and the
//! HTTP endpoint: `/metrics` (Prometheus text), `/livez`, `/readyz`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tortie_bgp_speaker::{render_metrics, PeerStatus};
use tortie_bgp_wire::Family;

use crate::agent::{AgentError, Shared};
use crate::api::{NodeStatus, PeerReport, Request, Response};
use crate::dataplane::BUCKETS;

fn listen_err(what: String) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::Listen { what, source }
}

/// Binds the control socket (replacing a stale one) and serves it.
pub fn start_control(path: &Path, shared: Arc<Shared>) -> Result<(), AgentError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err(dir.display().to_string()))?;
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(listen_err(path.display().to_string()))?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let sh = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = handle_control(s, sh).await {
                    tracing::debug!(error = %e, "control connection failed");
                }
            });
        }
    });
    Ok(())
}

async fn handle_control(s: UnixStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Error(format!("bad request: {e}")),
        Ok(Request::Status) => Response::Status(status(&shared).await),
        Ok(Request::Rib { afi }) => match afi.as_deref() {
            None => rib(&shared, None).await,
            Some("ipv4") => rib(&shared, Some(Family::IPV4_UNICAST)).await,
            Some("ipv6") => rib(&shared, Some(Family::IPV6_UNICAST)).await,
            Some(o) => Response::Error(format!("afi {o:?} is invalid: use ipv4 or ipv6")),
        },
    };
    let mut out = serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into());
    out.push('\n');
    w.write_all(out.as_bytes()).await
}

/// The speaker's Loc-RIB (after the import policy) as `bgp rib` rows.
async fn rib(shared: &Shared, family: Option<Family>) -> Response {
    match shared.speaker().rib_query(family).await {
        Ok(entries) => Response::Rib(crate::learned::rib_rows(&entries)),
        Err(e) => Response::Error(format!("cannot read the Loc-RIB: {e}")),
    }
}

fn report(p: &PeerStatus) -> PeerReport {
    PeerReport {
        address: p.address,
        asn: p.asn,
        peer_type: p.peer_type.as_str().to_string(),
        state: p.state.name().to_string(),
        since: tortie_bgp_speaker::status::rfc3339(p.since),
        prefixes_received: p.prefixes_received,
        prefixes_sent: p.prefixes_sent,
        last_error: p.last_error.clone(),
    }
}

/// The node status.
pub async fn status(shared: &Shared) -> NodeStatus {
    let peers = shared.peers().await;
    NodeStatus {
        node: shared.node.clone(),
        router_id: shared.router_id.to_string(),
        asn: shared.asn(),
        ready: shared.ready_with(&peers),
        peers: peers.iter().map(report).collect(),
        fib: shared.fib_report(),
    }
}

/// Binds the HTTP address and serves it.
pub async fn start_http(addr: SocketAddr, shared: Arc<Shared>) -> Result<(), AgentError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(listen_err(addr.to_string()))?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let sh = shared.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (code, body) = route(&path, &sh).await;
                let resp = format!(
                    "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(())
}

async fn route(path: &str, shared: &Shared) -> (&'static str, String) {
    match path {
        "/livez" => ("200 OK", "ok\n".into()),
        "/readyz" => {
            let peers = shared.peers().await;
            if shared.ready_with(&peers) {
                ("200 OK", "ready\n".into())
            } else {
                ("503 Service Unavailable", "not ready\n".into())
            }
        }
        "/metrics" => ("200 OK", metrics(shared).await),
        _ => ("404 Not Found", "not found\n".into()),
    }
}

/// Every metric of INTERFACES.md.
pub async fn metrics(shared: &Shared) -> String {
    let peers = shared.peers().await;
    let mut m = render_metrics(&peers);
    fib_metrics(shared, &mut m);
    ipam_metrics(shared, &mut m);
    crate::sync_metrics::render(&mut m);
    m
}

fn fib_metrics(shared: &Shared, m: &mut String) {
    let Some(fib) = &shared.fib else { return };
    let f = fib.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let _ = writeln!(
        m,
        "# HELP tortie_fib_routes Routes felix holds, by protocol.\n# TYPE tortie_fib_routes gauge"
    );
    for (proto, n) in &f.routes_by_proto {
        let name = match *proto {
            tortie_felix::config::PROTO_BGP => "bgp".to_string(),
            tortie_felix::config::PROTO_FELIX => "felix".to_string(),
            p => p.to_string(),
        };
        let _ = writeln!(m, "tortie_fib_routes{{proto=\"{name}\"}} {n}");
    }
    let _ = writeln!(m, "# HELP tortie_fib_in_sync 1 when the kernel holds the desired routes.\n# TYPE tortie_fib_in_sync gauge\ntortie_fib_in_sync {}", u8::from(f.in_sync));
    let _ = writeln!(m, "# HELP tortie_fib_reconcile_seconds Duration of reconcile passes.\n# TYPE tortie_fib_reconcile_seconds histogram");
    let mut cum = 0;
    for (b, n) in BUCKETS.iter().zip(f.reconcile_buckets.iter()) {
        cum += n;
        let _ = writeln!(m, "tortie_fib_reconcile_seconds_bucket{{le=\"{b}\"}} {cum}");
    }
    let _ = writeln!(
        m,
        "tortie_fib_reconcile_seconds_bucket{{le=\"+Inf\"}} {}\ntortie_fib_reconcile_seconds_sum {}\ntortie_fib_reconcile_seconds_count {}",
        f.reconcile_count, f.reconcile_sum, f.reconcile_count
    );
}

fn ipam_metrics(shared: &Shared, m: &mut String) {
    let snap = shared.snapshot.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(
        m,
        "# HELP tortie_ipam_blocks Blocks affine to a node.\n# TYPE tortie_ipam_blocks gauge"
    );
    let mut per_node = std::collections::BTreeMap::<&str, u64>::new();
    for (n, _) in &snap.affinities {
        *per_node.entry(n).or_default() += 1;
    }
    for (n, c) in per_node {
        let _ = writeln!(m, "tortie_ipam_blocks{{node=\"{n}\"}} {c}");
    }
    let _ = writeln!(m, "# HELP tortie_ipam_allocations_in_use Addresses allocated to this node per pool (from the IPAM blocks).\n# TYPE tortie_ipam_allocations_in_use gauge");
    for (cidr, n) in snap.allocations_in_use(&shared.node) {
        let _ = writeln!(m, "tortie_ipam_allocations_in_use{{pool=\"{cidr}\"}} {n}");
    }
}
