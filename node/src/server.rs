//! The control socket (JSON request/response, see [`crate::api`]) and the
//! HTTP endpoint: `/metrics` (Prometheus text), `/livez`, `/readyz`. The
//! connections are handled by [`crate::serve`] (deadlines, a cap, an accept
//! loop that survives errors); this module binds the sockets and answers.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tortie_bgp_speaker::{render_metrics, PeerStatus};
use tortie_bgp_wire::Family;

use crate::agent::{AgentError, Shared};
use crate::api::{NodeStatus, PeerReport, Request, Response};
use crate::dataplane::BUCKETS;
use crate::serve::Service;

fn listen_err(what: String) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::Listen { what, source }
}

/// Binds the control socket (replacing a stale one).
pub fn bind_control(path: &Path) -> Result<UnixListener, AgentError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err(dir.display().to_string()))?;
    }
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(listen_err(path.display().to_string()))
}

/// Binds the HTTP address.
pub async fn bind_http(addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(listen_err(addr.to_string()))
}

/// The control socket's protocol: one JSON line in, one JSON line out.
#[derive(Debug)]
pub struct ControlService(pub Arc<Shared>);

impl Service for ControlService {
    fn complete(&self, buf: &[u8]) -> bool {
        buf.contains(&b'\n')
    }

    async fn answer(&self, request: Vec<u8>) -> Vec<u8> {
        let line = String::from_utf8_lossy(&request);
        let resp = control(line.trim(), &self.0).await;
        let mut out = serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into());
        out.push('\n');
        out.into_bytes()
    }
}

async fn control(line: &str, shared: &Shared) -> Response {
    match serde_json::from_str::<Request>(line) {
        Err(e) => Response::Error(format!("bad request: {e}")),
        Ok(Request::Status) => Response::Status(status(shared).await),
        Ok(Request::Rib { afi }) => match afi.as_deref() {
            None => rib(shared, None).await,
            Some("ipv4") => rib(shared, Some(Family::IPV4_UNICAST)).await,
            Some("ipv6") => rib(shared, Some(Family::IPV6_UNICAST)).await,
            Some(o) => Response::Error(format!("afi {o:?} is invalid: use ipv4 or ipv6")),
        },
    }
}

/// The speaker's Loc-RIB (after the import policy) as `bgp rib` rows.
async fn rib(shared: &Shared, family: Option<Family>) -> Response {
    match shared.speaker().rib_query(family).await {
        Ok(entries) => Response::Rib(crate::learned::rib_rows(entries)),
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

/// HTTP/1.x, one request per connection: `GET /livez`, `/readyz`, `/metrics`.
#[derive(Debug)]
pub struct HttpService(pub Arc<Shared>);

impl Service for HttpService {
    fn complete(&self, buf: &[u8]) -> bool {
        buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
    }

    async fn answer(&self, request: Vec<u8>) -> Vec<u8> {
        let req = String::from_utf8_lossy(&request);
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (code, body) = route(&path, &self.0).await;
        format!(
            "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
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
    policy_metrics(shared, &mut m);
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
    let _ = writeln!(m, "tortie_fib_routes{{proto=\"bgp\"}} {}", f.bgp_routes);
    let _ = writeln!(m, "tortie_fib_routes{{proto=\"felix\"}} {}", f.felix_routes);
    let _ = writeln!(m, "# HELP tortie_fib_resyncs_total Full re-reads of the kernel's routes.\n# TYPE tortie_fib_resyncs_total counter\ntortie_fib_resyncs_total {}", f.resyncs);
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

fn policy_metrics(shared: &Shared, m: &mut String) {
    let Some(p) = &shared.policy else { return };
    let p = p.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let rows = [
        (
            "policy_programs_total",
            "counter",
            "Programs of the policy table that wrote a change.",
            p.programs,
        ),
        (
            "policy_errors_total",
            "counter",
            "Programs of the policy table that failed.",
            p.errors,
        ),
        (
            "policy_repairs_total",
            "counter",
            "Times the policy table was changed by someone else and restored.",
            p.repairs,
        ),
        (
            "policy_rules",
            "gauge",
            "Rules in the policy table.",
            p.rules,
        ),
        (
            "policy_sets",
            "gauge",
            "Named sets in the policy table.",
            p.sets,
        ),
        (
            "policy_endpoints",
            "gauge",
            "Local workload endpoints policed.",
            p.endpoints,
        ),
        (
            "policy_in_sync",
            "gauge",
            "1 when the last program of the policy table succeeded.",
            u64::from(p.ok()),
        ),
    ];
    for (name, kind, help, v) in rows {
        let _ = writeln!(
            m,
            "# HELP tortie_{name} {help}\n# TYPE tortie_{name} {kind}\ntortie_{name} {v}"
        );
    }
    let _ = writeln!(m, "# HELP tortie_policy_program_seconds Time to compile and program the policy table.\n# TYPE tortie_policy_program_seconds histogram");
    let mut cum = 0;
    for (b, n) in crate::netpol::BUCKETS.iter().zip(p.buckets.iter()) {
        cum += n;
        let _ = writeln!(
            m,
            "tortie_policy_program_seconds_bucket{{le=\"{b}\"}} {cum}"
        );
    }
    let _ = writeln!(
        m,
        "tortie_policy_program_seconds_bucket{{le=\"+Inf\"}} {}\ntortie_policy_program_seconds_sum {}\ntortie_policy_program_seconds_count {}",
        p.count, p.sum, p.count
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
