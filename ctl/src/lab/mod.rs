//! `tortiectl lab up|status|ping|down`: a whole tortie cluster on this
//! machine. Nodes are network namespaces on two underlay subnets joined by
//! a router namespace; each runs tortie-node; pods are created through the
//! CNI plugin binaries as a runtime would; everything shares one datastore.
//! Needs root. Binaries are taken from tortiectl's own directory.

mod name;
mod ops;
mod plan;
mod podman;
mod probe;
mod procs;
mod relay;
mod sys;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::json;
use tortie_datastore::{typed, BlockingStore, OpenOptions, DEFAULT_DATASTORE};
use tortie_node_api::{self as api, NodeStatus, Request, Response};

use crate::context::{Context, UsageError};
use crate::node_status::{boxed, StatusFormat};
use plan::{Mode, NodePlan, Plan, PodmanPlan, Runtime};
use procs::{How, Outcome};
use sys::LabState;

/// `tortiectl lab ...`.
#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Build the lab and leave it running.
    Up(UpArgs),
    /// Show every node's BGP and FIB state and the pods.
    Status(OutArgs),
    /// Ping every pod from every pod.
    Ping(OutArgs),
    /// Stop the nodes and delete the lab's namespaces.
    Down(NameArgs),
    /// Change one pod of a running lab.
    #[command(subcommand)]
    Pod(ops::PodCommand),
    /// Change one node of a running lab.
    #[command(subcommand)]
    Node(ops::NodeCommand),
    /// Relay etcd connections from the router namespace to the host (started by `up`).
    #[command(hide = true)]
    Relay(relay::RelayArgs),
    /// Probe reachability: every pod pair (a matrix), or FROM to TO.
    Probe(ProbeArgs),
    /// Answer on TCP/UDP 80 and 81 inside a pod's namespace (started for every pod).
    #[command(hide = true)]
    Serve(probe::ServeArgs),
}

#[derive(Debug, Args)]
struct ProbeArgs {
    #[command(flatten)]
    name: NameArgs,
    /// Source pod (`NS/POD`, or `POD` in namespace default); with TO, probe
    /// one pair: exit 0 when allowed, 1 when denied.
    from: Option<String>,
    /// Target pod.
    to: Option<String>,
    /// Port (every pod answers on 80 and 81).
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Transport.
    #[arg(long, value_enum, default_value = "tcp")]
    protocol: probe::Protocol,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: StatusFormat,
}

#[derive(Debug, Args)]
struct NameArgs {
    /// Lab name: a DNS label of at most 63 characters (namespace prefix,
    /// state in /run/tortie-lab/NAME).
    #[arg(long, default_value = "tortie", value_parser = name::parse_lab_name)]
    name: String,
}

#[derive(Debug, Args)]
struct OutArgs {
    #[command(flatten)]
    name: NameArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: StatusFormat,
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    name: NameArgs,
    /// Number of nodes (1-200); the first half on subnet 10.0.1.0/24, the rest on 10.0.2.0/24.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=200))]
    nodes: u8,
    /// Pods per node (0-50).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=50))]
    pods_per_node: u8,
    /// How pods of different nodes reach each other.
    #[arg(long, value_enum, default_value = "bgp")]
    mode: Mode,
    /// Dedicated route reflectors (0-10; BGP only, replacing the node-to-node mesh).
    #[arg(long, default_value_t = 0)]
    route_reflectors: u8,
    /// How each node runs tortie-node: `process` (the binary next to
    /// tortiectl) or `podman` (a privileged container from --image in the
    /// node's namespace, after install-cni from the image, as the DaemonSet).
    #[arg(long, value_enum, default_value = "process")]
    runtime: Runtime,
    /// The image of `--runtime podman` [default: localhost/tortie:latest]
    /// (scripts/build-image.sh builds it; never pulled).
    #[arg(long, value_parser = podman::parse_image)]
    image: Option<String>,
    /// podman's `--root` for `--runtime podman` (default: podman's own storage).
    #[arg(long, value_parser = podman::parse_abs_dir)]
    podman_root: Option<PathBuf>,
    /// podman's `--runroot` for `--runtime podman`.
    #[arg(long, value_parser = podman::parse_abs_dir)]
    podman_runroot: Option<PathBuf>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Catches Ctrl-C / SIGTERM so that an interrupted `up` cleans up.
fn catch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("interrupted: cleaning up the lab");
        });
    });
}

fn check_interrupt() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Runs `tortiectl lab ...`. The lab's datastore is the global
/// `--datastore` when one other than the default is given, else an SQLite
/// file in the lab's state directory.
pub fn lab(ctx: &Context, args: &LabArgs) -> anyhow::Result<()> {
    match &args.command {
        LabCommand::Up(a) => {
            let ds = (ctx.datastore != DEFAULT_DATASTORE).then_some(ctx.datastore.as_str());
            check_datastore(ctx, ds)?;
            check_runtime_args(a)?;
            up(a, ds)
        }
        LabCommand::Status(a) => status(a),
        LabCommand::Ping(a) => ping(a),
        LabCommand::Down(a) => down(&a.name),
        LabCommand::Pod(c) => ops::pod(c),
        LabCommand::Node(c) => ops::node(c),
        LabCommand::Relay(a) => relay::relay(a),
        LabCommand::Probe(a) => probe_cmd(a),
        LabCommand::Serve(a) => probe::serve(a),
    }
}

/// The lab reaches an etcd through a plain TCP relay on the router's
/// address, which a server certificate would have to name, and passes no
/// TLS files to the agents and the CNI plugin: etcd over TLS is refused.
fn check_datastore(ctx: &Context, datastore: Option<&str>) -> anyhow::Result<()> {
    let etcd = datastore.is_some_and(|d| d.starts_with("etcd://"));
    if etcd && ctx.options.etcd.tls.enabled() {
        return Err(UsageError(format!(
            "lab up: etcd over TLS (--etcd-ca/--etcd-cert/--etcd-key) is not supported: \
             the nodes reach the host's etcd through a relay at {}, which the server \
             certificate does not name, and the lab gives the agents and the CNI plugin \
             no TLS files; use a plain etcd:// datastore for the lab",
            plan::ROUTER_IP
        ))
        .into());
    }
    Ok(())
}

fn require_root() -> anyhow::Result<()> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        });
    if uid.as_deref() != Some("0") {
        bail!("the lab needs root (network namespaces): run it with sudo");
    }
    Ok(())
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find tortiectl's own path")?;
    let dir = exe
        .parent()
        .context("tortiectl has no directory")?
        .to_path_buf();
    for b in ["tortie-node", "tortie", "tortie-ipam"] {
        if !dir.join(b).exists() {
            bail!(
                "{b} is missing next to tortiectl in {}: build it (cargo build --release)",
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// `--image` and `--podman-*` only with `--runtime podman` (checked
/// before anything else, root or not).
fn check_runtime_args(a: &UpArgs) -> anyhow::Result<()> {
    let podman_only = [
        ("--image", a.image.is_some()),
        ("--podman-root", a.podman_root.is_some()),
        ("--podman-runroot", a.podman_runroot.is_some()),
    ];
    if a.runtime == Runtime::Process {
        if let Some((flag, _)) = podman_only.iter().find(|(_, given)| *given) {
            return Err(UsageError(format!("{flag} is for --runtime podman")).into());
        }
    }
    Ok(())
}

fn check_up_args(a: &UpArgs) -> anyhow::Result<()> {
    if a.route_reflectors > 10 {
        return Err(UsageError("--route-reflectors: at most 10".into()).into());
    }
    if a.mode == Mode::IpipCrosssubnet && !tortie_node_api::kernel_has_ipip() {
        bail!("--mode ipip-crosssubnet needs the ipip kernel module, which this kernel does not have (modprobe ipip failed or /sys/module/ipip is missing): use --mode vxlan-crosssubnet or --mode bgp");
    }
    Ok(())
}

fn up(a: &UpArgs, datastore: Option<&str>) -> anyhow::Result<()> {
    require_root()?;
    if a.mode == Mode::IpipCrosssubnet {
        let _ = sys::run("modprobe", &["ipip"]);
    }
    check_up_args(a)?;
    let name = &a.name.name;
    let podman = podman_plan(a);
    match &podman {
        None => drop(bin_dir()?),
        Some(p) => podman::check_image(p)?,
    }
    let p = plan::plan(&plan::LabSpec {
        name,
        mode: a.mode,
        nodes: a.nodes,
        pods: a.pods_per_node,
        route_reflectors: a.route_reflectors,
        datastore,
        podman,
    });
    if LabState::path(&p.dir).exists() || !sys::lab_namespaces(name).is_empty() {
        bail!("lab {name:?} exists already: run `tortiectl lab down --name {name}` first");
    }
    catch_signals();
    sys::check_state_dir(&p.dir)?;
    let mut state = LabState {
        plan: p,
        pids: BTreeMap::new(),
        pod_ips: BTreeMap::new(),
        servers: BTreeMap::new(),
        relay_pid: None,
        processes: BTreeMap::new(),
        containers: BTreeMap::new(),
    };
    let started = Instant::now();
    match build(&mut state) {
        Ok(()) => {
            println!(
                "lab {name:?} is up in {:.1} s ({} nodes, {} pods, mode {:?}); state in {}",
                started.elapsed().as_secs_f64(),
                state.plan.nodes.len(),
                state.pod_ips.len(),
                a.mode,
                state.plan.dir.display()
            );
            print_status(&state, StatusFormat::Table)
        }
        Err(e) => {
            eprintln!("lab up failed: {e:#}; cleaning up");
            let _ = down(name);
            Err(e)
        }
    }
}

/// `--runtime podman`'s settings: the image, the storage, and the
/// caller's `CONTAINERS_CONF` or the lab's own file (written by `build`).
fn podman_plan(a: &UpArgs) -> Option<PodmanPlan> {
    (a.runtime == Runtime::Podman).then(|| PodmanPlan {
        image: a
            .image
            .clone()
            .unwrap_or_else(|| podman::DEFAULT_IMAGE.into()),
        root: a.podman_root.clone(),
        runroot: a.podman_runroot.clone(),
        containers_conf: std::env::var_os("CONTAINERS_CONF")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .and_then(|p| std::fs::canonicalize(p).ok())
            .unwrap_or_else(|| plan::state_dir(&a.name.name).join("containers.conf")),
    })
}

fn apply_resources(plan: &Plan) -> anyhow::Result<()> {
    let store = BlockingStore::open(&plan.datastore, &OpenOptions::default())?;
    let resources =
        tortie_model::parse_manifest(&plan::manifest(plan)).map_err(|e| anyhow::anyhow!("{e}"))?;
    store.block_on(typed::apply(store.store().as_ref(), resources))?;
    Ok(())
}

fn all_nodes(plan: &Plan) -> Vec<&NodePlan> {
    plan.router_node
        .iter()
        .chain(plan.route_reflectors.iter())
        .chain(plan.nodes.iter())
        .collect()
}

fn build(state: &mut LabState) -> anyhow::Result<()> {
    sys::create_state_dir(&state.plan.dir)?;
    if let Some(db) = state.plan.sqlite_file() {
        if let Some(d) = db.parent() {
            std::fs::create_dir_all(d)?;
        }
        let _ = std::fs::remove_file(&db);
    }
    if let Some(p) = &state.plan.podman {
        if p.containers_conf.starts_with(&state.plan.dir) {
            std::fs::write(&p.containers_conf, podman::CONTAINERS_CONF)?;
        }
    }
    state.save()?;
    apply_resources(&state.plan)?;
    sys::build_router(&state.plan)?;
    if let Some(relay) = &state.plan.relay {
        let (pid, id) = sys::start_relay(relay)?;
        state.relay_pid = Some(pid);
        state.processes.insert(pid, id);
        state.save()?;
    }
    for n in state.plan.route_reflectors.iter().chain(&state.plan.nodes) {
        check_interrupt()?;
        sys::build_node(&state.plan, n)?;
    }
    for n in all_nodes(&state.plan.clone()) {
        check_interrupt()?;
        start_agent(state, n)?;
    }
    wait_for(
        Duration::from_secs(60),
        "every node to serve its status",
        || all_nodes(&state.plan).iter().all(|n| query(n).is_ok()),
    )?;
    create_pods(state)?;
    let what = "every session Established and every FIB in sync";
    let ready = wait_for(Duration::from_secs(90), what, || {
        all_nodes(&state.plan)
            .iter()
            .all(|n| query(n).is_ok_and(settled))
    });
    if let Err(e) = ready {
        check_interrupt()?;
        eprintln!("warning: {e}");
    }
    Ok(())
}

/// Starts node `n`'s agent: a process, or install-cni then the agent's
/// container. Recorded in the state before `up` goes on.
fn start_agent(state: &mut LabState, n: &NodePlan) -> anyhow::Result<()> {
    let dataplane = !state.plan.route_reflectors.contains(n);
    if state.plan.runtime == Runtime::Podman {
        podman::install_cni(state, n)?;
        return podman::start_agent(state, n, dataplane);
    }
    let ns = if n.name == "router" {
        state.plan.router_netns.clone()
    } else {
        n.netns.clone()
    };
    let node_bin = bin_dir()?.join("tortie-node");
    let (pid, id) = sys::start_node(&node_bin, &state.plan, n, &ns, dataplane)?;
    state.pids.insert(n.name.clone(), pid);
    state.processes.insert(pid, id);
    state.save()
}

/// Ready, every session Established, the FIB in sync.
fn settled(s: NodeStatus) -> bool {
    s.ready && s.fib.in_sync && s.peers.iter().all(|p| p.state == "Established")
}

fn create_pods(state: &mut LabState) -> anyhow::Result<()> {
    for pod in state.plan.pods.clone() {
        check_interrupt()?;
        create_pod(state, &pod)?;
    }
    Ok(())
}

/// Creates one planned pod: its namespace, CNI ADD (with its namespace and
/// labels), its server on ports 80 and 81. The state is saved after each step.
fn create_pod(state: &mut LabState, pod: &plan::PodPlan) -> anyhow::Result<()> {
    sys::create_netns(&pod.netns)?;
    let node = state
        .plan
        .nodes
        .iter()
        .find(|n| n.name == pod.node)
        .context("pod without node")?;
    let (bins, conf) = podman::cni_for(&state.plan, node)?;
    let conf = plan::with_pod_args(conf, pod);
    let ip = sys::cni_add(&bins, pod, &conf)?;
    state.pod_ips.insert(pod.id(), ip);
    state.save()?;
    let log = state.plan.dir.join(format!("{}.serve.log", pod.netns));
    let (pid, id) = sys::start_server(pod, &log)?;
    state.servers.insert(pod.id(), pid);
    state.processes.insert(pid, id);
    state.save()
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupt()?;
        if f() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s waiting for {what}", limit.as_secs());
        }
        std::thread::park_timeout(Duration::from_millis(250));
    }
}

fn query(n: &NodePlan) -> anyhow::Result<NodeStatus> {
    match api::query(&n.control_socket, &Request::Status)? {
        Response::Status(s) => Ok(s),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// The state of lab `name` (its folder checked first).
fn load(name: &str) -> anyhow::Result<LabState> {
    let dir = plan::state_dir(name);
    sys::check_state_dir(&dir)?;
    LabState::load(name, &dir)
}

fn status(a: &OutArgs) -> anyhow::Result<()> {
    let state = load(&a.name.name)?;
    print_status(&state, a.output)
}

type NodeResult<'a> = (&'a NodePlan, anyhow::Result<NodeStatus>);

fn print_status_json(state: &LabState, statuses: &[NodeResult<'_>]) -> anyhow::Result<()> {
    let pods: Vec<serde_json::Value> = state.plan.pods.iter().map(|p| {
        json!({"id": p.id(), "name": p.name, "namespace": p.namespace, "labels": p.labels, "node": p.node, "netns": p.netns, "ip": state.pod_ips.get(&p.id())})
    }).collect();
    let nodes: Vec<serde_json::Value> = statuses.iter().map(|(n, s)| {
        let mut v = json!({"name": n.name, "ip": n.ip, "netns": n.netns, "control_socket": n.control_socket, "pid": state.pids.get(&n.name), "container": state.containers.get(&n.name)});
        match s {
            Ok(s) => v["status"] = json!(s),
            Err(e) => {
                v["status"] = serde_json::Value::Null;
                v["error"] = json!(e.to_string());
            }
        }
        v
    }).collect();
    let image = state.plan.podman.as_ref().map(|p| &p.image);
    let v = json!({"name": state.plan.name, "mode": state.plan.mode, "runtime": state.plan.runtime, "image": image, "datastore": state.plan.datastore, "agent_datastore": state.plan.agent_datastore(), "relay_pid": state.relay_pid, "nodes": nodes, "pods": pods});
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn print_status(state: &LabState, format: StatusFormat) -> anyhow::Result<()> {
    let nodes = all_nodes(&state.plan);
    let statuses: Vec<NodeResult<'_>> = nodes.iter().map(|n| (*n, query(n))).collect();
    if format == StatusFormat::Json {
        return print_status_json(state, &statuses);
    }
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|(n, s)| match s {
            Ok(s) => {
                let up = s.peers.iter().filter(|p| p.state == "Established").count();
                vec![
                    n.name.clone(),
                    n.ip.clone(),
                    s.ready.to_string(),
                    format!("{up}/{}", s.peers.len()),
                    s.fib.routes.to_string(),
                    s.fib.in_sync.to_string(),
                ]
            }
            Err(e) => vec![
                n.name.clone(),
                n.ip.clone(),
                "down".into(),
                "-".into(),
                "-".into(),
                e.to_string(),
            ],
        })
        .collect();
    print!(
        "{}",
        boxed(
            &["NODE", "IP", "READY", "PEERS UP", "FIB ROUTES", "IN SYNC"],
            &rows
        )
    );
    let prow: Vec<Vec<String>> = state
        .plan
        .pods
        .iter()
        .map(|p| {
            vec![
                p.id(),
                p.node.clone(),
                state
                    .pod_ips
                    .get(&p.id())
                    .cloned()
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print!("{}", boxed(&["POD", "NODE", "IP"], &prow));
    Ok(())
}

fn ping(a: &OutArgs) -> anyhow::Result<()> {
    let state = load(&a.name.name)?;
    let pods: Vec<(String, String, String)> = state
        .plan
        .pods
        .iter()
        .filter_map(|p| Some((p.id(), p.netns.clone(), state.pod_ips.get(&p.id())?.clone())))
        .collect();
    let failed: Vec<(String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|(from, ns, _)| {
                let pods = &pods;
                s.spawn(move || {
                    pods.iter()
                        .filter(|(to, _, _)| to != from)
                        .filter(|(_, _, ip)| !(sys::ping(ns, ip) || sys::ping(ns, ip)))
                        .map(|(to, _, _)| (from.clone(), to.clone()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let total = pods.len() * pods.len().saturating_sub(1);
    let ok = total - failed.len();
    if a.output == StatusFormat::Json {
        let f: Vec<_> = failed
            .iter()
            .map(|(a, b)| json!({"from": a, "to": b}))
            .collect();
        println!("{}", json!({"total": total, "ok": ok, "failed": f}));
    } else {
        println!("{ok}/{total} pod-to-pod pings answered");
        for (a, b) in &failed {
            println!("FAILED {a} -> {b}");
        }
    }
    if !failed.is_empty() {
        bail!("{} of {total} pings failed", failed.len());
    }
    Ok(())
}

/// Stops the lab's recorded processes (each only if it is still the one
/// the lab started), deletes the namespaces of the lab's shapes and its
/// state folder. Touches nothing else.
fn down(name: &str) -> anyhow::Result<()> {
    require_root()?;
    let dir = plan::state_dir(name);
    sys::check_state_dir(&dir)?;
    let (mut stopped, mut left) = (0, Vec::new());
    let mut removed = 0;
    let mut keep_state = Vec::new();
    match LabState::load(name, &dir) {
        Ok(state) => {
            // Containers first (they hold mounts of the state folder).
            match podman::remove_all(&state) {
                Ok(n) => removed = n,
                Err(e) => keep_state = e,
            }
            let pids = state.pids.values().chain(state.servers.values());
            for pid in pids.chain(&state.relay_pid) {
                match state.stop(*pid, How::Term) {
                    Outcome::Stopped => stopped += 1,
                    Outcome::Gone => {}
                    Outcome::NotOurs => left.push(*pid),
                }
            }
        }
        Err(e) if dir.exists() => {
            // Without a usable record no process is signalled.
            eprintln!("warning: {e:#}");
        }
        Err(_) => {}
    }
    let namespaces = sys::lab_namespaces(name);
    let mut errors = Vec::new();
    for ns in &namespaces {
        if let Err(e) = sys::run("ip", &["netns", "del", ns]) {
            errors.push(e.to_string());
        }
    }
    if !keep_state.is_empty() {
        // The record of the containers stays for the next `lab down`.
        bail!(
            "{}\n(the lab's state stays in {} so that `lab down` can retry)",
            keep_state.join("\n"),
            dir.display()
        );
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    println!(
        "lab {name:?} down: {removed} containers removed, {stopped} processes stopped, {} namespaces deleted",
        namespaces.len() - errors.len()
    );
    if !left.is_empty() {
        eprintln!(
            "warning: not stopped, as these PIDs no longer run what the lab started (or nothing was recorded for them): {left:?}"
        );
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// Finds a pod by `NS/POD` or `POD` (namespace `default`).
fn find_pod<'a>(state: &'a LabState, id: &str) -> anyhow::Result<&'a plan::PodPlan> {
    let (ns, name) = id.split_once('/').unwrap_or(("default", id));
    state
        .plan
        .pods
        .iter()
        .find(|p| p.namespace == ns && p.name == name)
        .with_context(|| format!("lab {:?} has no pod {ns}/{name}", state.plan.name))
}

fn target(state: &LabState, p: &plan::PodPlan) -> anyhow::Result<probe::Target> {
    let ip = state
        .pod_ips
        .get(&p.id())
        .with_context(|| format!("pod {} has no address", p.id()))?;
    Ok(probe::Target {
        id: p.id(),
        netns: p.netns.clone(),
        ip: ip
            .parse()
            .with_context(|| format!("pod {}: bad address {ip}", p.id()))?,
    })
}

/// `lab probe`: one pair (exit 1 when denied) or the matrix of every pair.
fn probe_cmd(a: &ProbeArgs) -> anyhow::Result<()> {
    require_root()?;
    let state = load(&a.name.name)?;
    let proto = a.protocol;
    match (&a.from, &a.to) {
        (Some(f), Some(t)) => {
            let from = target(&state, find_pod(&state, f)?)?;
            let to = target(&state, find_pod(&state, t)?)?;
            let m = probe::matrix(
                std::slice::from_ref(&from),
                std::slice::from_ref(&to),
                a.port,
                proto,
            )?;
            let ok = m.get(&from.id).and_then(|r| r.get(&to.id)) == Some(&true);
            let verdict = if ok { "allowed" } else { "denied" };
            if a.output == StatusFormat::Json {
                println!(
                    "{}",
                    json!({"from": from.id, "to": to.id, "port": a.port, "protocol": proto, "allowed": ok, "result": verdict})
                );
            } else {
                println!("{} -> {} {:?}/{}: {verdict}", from.id, to.id, proto, a.port);
            }
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        (None, None) => {
            let all: Vec<probe::Target> = state
                .plan
                .pods
                .iter()
                .map(|p| target(&state, p))
                .collect::<anyhow::Result<_>>()?;
            let m = probe::matrix(&all, &all, a.port, proto)?;
            if a.output == StatusFormat::Json {
                println!(
                    "{}",
                    json!({"port": a.port, "protocol": proto, "matrix": m})
                );
            } else {
                let ids: Vec<String> = all.iter().map(|t| t.id.clone()).collect();
                let rows: Vec<Vec<String>> = ids
                    .iter()
                    .map(|f| {
                        std::iter::once(f.clone())
                            .chain(ids.iter().map(|t| {
                                let ok = m.get(f).and_then(|r| r.get(t)) == Some(&true);
                                if ok { "." } else { "X" }.to_string()
                            }))
                            .collect()
                    })
                    .collect();
                let mut head = vec!["FROM \\ TO"];
                head.extend(ids.iter().map(String::as_str));
                println!("{proto:?} port {} (. allowed, X denied)", a.port);
                print!("{}", boxed(&head, &rows));
            }
            Ok(())
        }
        _ => Err(UsageError("lab probe: give both FROM and TO, or neither".into()).into()),
    }
}
