//! Load generator for IPAM: one simulated node allocating addresses one by
//! one, as the CNI plugin would, against a real datastore. Used by the
//! concurrency tests and the benchmark (docs/benchmarks.md).
//!
//! Prints one JSON line at the end:
//! `{"node":"n1","allocated":500,"seconds":0.42,"per_second":1190.5}`.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use tortie_datastore::{typed, OpenOptions};
use tortie_ipam_core::{AssignRequest, DatastoreIpamStore, Ipam};
use tortie_model::{
    IpPool, IpPoolSpec, ObjectMeta, Resource, WorkloadEndpoint, WorkloadEndpointSpec,
};

/// Allocate addresses for one node.
#[derive(Debug, Parser)]
struct Args {
    /// `sqlite:///path` or `etcd://host:port`.
    #[arg(long, env = "TORTIE_DATASTORE")]
    datastore: String,
    /// The node to allocate for.
    #[arg(long)]
    node: String,
    /// Addresses to allocate (one handle each).
    #[arg(long, default_value_t = 500)]
    count: usize,
    /// Handle IDs are `k8s-pod-network.<prefix>-<i>`.
    #[arg(long, default_value = "load")]
    prefix: String,
    /// After each allocation, write a WorkloadEndpoint naming the address
    /// (namespace `load`), as the CNI plugin does.
    #[arg(long)]
    wep: bool,
    /// Create IPPool `load-pool` with this CIDR (block size 26/122) first,
    /// unless a pool of that name exists.
    #[arg(long)]
    ensure_pool: Option<ipnet::IpNet>,
    /// Test aid: SIGKILL this process right after allocation N committed and
    /// before its WorkloadEndpoint is written (a crash in the leak window).
    #[arg(long)]
    kill_self_after: Option<usize>,
}

fn wep(args: &Args, i: usize, ip: std::net::IpAddr) -> Resource {
    let mut metadata = ObjectMeta::named(format!("{}-k8s-{}--{}-eth0", args.node, args.prefix, i));
    metadata.namespace = Some("load".into());
    let spec = WorkloadEndpointSpec {
        orchestrator: "k8s".into(),
        node: args.node.clone(),
        pod: format!("{}-{}", args.prefix, i),
        endpoint: "eth0".into(),
        container_id: format!("{}-{}", args.prefix, i),
        interface_name: format!("cali{:011x}", i),
        ip_networks: vec![ipnet::IpNet::from(ip)],
        ..WorkloadEndpointSpec::default()
    };
    Resource::WorkloadEndpoint(WorkloadEndpoint { metadata, spec })
}

fn ensure_pool(store: &DatastoreIpamStore, cidr: ipnet::IpNet) -> anyhow::Result<()> {
    let b = store.blocking();
    let pool = Resource::IpPool(IpPool {
        metadata: ObjectMeta::named("load-pool"),
        spec: IpPoolSpec::new(cidr),
    });
    match b.block_on(typed::create(b.store().as_ref(), vec![pool])) {
        Ok(_) | Err(typed::TypedError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Attempts per allocation or endpoint write when the store fails (e.g. an
/// etcd request timing out on a loaded machine).
const ATTEMPTS: usize = 3;

/// Allocates one address for `handle`; after a failure whose outcome is
/// unknown, releases the handle first (as a CNI runtime's DEL before a
/// retried ADD would), so a retry never leaves two addresses on it.
fn allocate(
    ipam: &Ipam<DatastoreIpamStore>,
    args: &Args,
    handle: &str,
    pools: &[tortie_ipam_core::PoolView],
) -> anyhow::Result<std::net::IpAddr> {
    let req = AssignRequest::v4(handle, &args.node, 1);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match ipam.auto_assign(&req, pools) {
            Ok(got) => return Ok(got.v4[0]),
            Err(e @ tortie_ipam_core::IpamError::Exhausted(_)) => return Err(e.into()),
            Err(e) => {
                eprintln!(
                    "{}: allocation for {handle} failed, retrying: {e}",
                    args.node
                );
                let _ = ipam.release_by_handle(handle);
                last = Some(e);
            }
        }
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

fn write_wep(
    ipam: &Ipam<DatastoreIpamStore>,
    args: &Args,
    i: usize,
    ip: std::net::IpAddr,
) -> anyhow::Result<()> {
    let b = ipam.store().blocking();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match b.block_on(typed::create(b.store().as_ref(), vec![wep(args, i, ip)])) {
            // AlreadyExists: an earlier attempt did write it.
            Ok(_) | Err(typed::TypedError::AlreadyExists { .. }) => return Ok(()),
            Err(e) => {
                eprintln!("{}: endpoint {i} failed, retrying: {e}", args.node);
                last = Some(e);
            }
        }
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = DatastoreIpamStore::open(&args.datastore, &OpenOptions::default())
        .with_context(|| format!("opening {}", args.datastore))?;
    if let Some(cidr) = args.ensure_pool {
        ensure_pool(&store, cidr)?;
    }
    let ipam = Ipam::new(store);
    let start = Instant::now();
    // Pools are read once, as a long-running agent would (the CNI plugin
    // reads them once per invocation, i.e. once per pod).
    let pools = ipam.store().pool_views(&args.node)?;
    for i in 0..args.count {
        let handle = format!("k8s-pod-network.{}-{}", args.prefix, i);
        let ip = allocate(&ipam, &args, &handle, &pools)?;
        if args.kill_self_after == Some(i) {
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)?;
        }
        if args.wep {
            write_wep(&ipam, &args, i, ip)?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"node\":\"{}\",\"allocated\":{},\"seconds\":{:.3},\"per_second\":{:.1}}}",
        args.node,
        args.count,
        secs,
        args.count as f64 / secs.max(1e-9)
    );
    Ok(())
}
