//! Changes to a running lab, for demos and end-to-end tests: delete one
//! pod as a runtime does (CNI DEL, then its namespace), or stop one node's
//! tortie-node (SIGTERM, or SIGKILL as a crash) while its namespace, kernel
//! routes and pods stay. The lab's state file is updated after each.
//!
//! Must not: touch the datastore directly (the CNI plugin and the agents
//! do that), or stop anything but the recorded PID of the named node.

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use super::procs::{How, Outcome};
use super::sys;
use super::{load, require_root, NameArgs};

/// `tortiectl lab pod ...`.
#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Delete a pod: CNI DEL in its node's namespace, then its namespace.
    Delete(PodArgs),
}

/// One pod of a lab.
#[derive(Debug, Args)]
pub struct PodArgs {
    #[command(flatten)]
    name: NameArgs,
    /// Pod name, e.g. `node1-pod2` (see `lab status`).
    pod: String,
}

/// `tortiectl lab node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Stop a node's tortie-node; its namespace, routes and pods stay.
    Stop(NodeStopArgs),
}

/// How a node's agent is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StopSignal {
    /// SIGTERM (SIGKILL after 5 s): a clean shutdown.
    Term,
    /// SIGKILL at once: a crash.
    Kill,
}

/// One node of a lab.
#[derive(Debug, Args)]
pub struct NodeStopArgs {
    #[command(flatten)]
    name: NameArgs,
    /// Node name, e.g. `node2`, `rr1` or `router` (see `lab status`).
    node: String,
    /// How to stop it.
    #[arg(long, value_enum, default_value = "term")]
    signal: StopSignal,
}

/// Runs `tortiectl lab pod ...`.
pub fn pod(cmd: &PodCommand) -> anyhow::Result<()> {
    match cmd {
        PodCommand::Delete(a) => delete_pod(a),
    }
}

/// Runs `tortiectl lab node ...`.
pub fn node(cmd: &NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Stop(a) => stop_node(a),
    }
}

fn delete_pod(a: &PodArgs) -> anyhow::Result<()> {
    require_root()?;
    let lab = &a.name.name;
    let mut state = load(lab)?;
    let pod = state
        .plan
        .pods
        .iter()
        .find(|p| p.name == a.pod)
        .cloned()
        .with_context(|| format!("lab {lab:?} has no pod {:?}", a.pod))?;
    let node = state
        .plan
        .nodes
        .iter()
        .find(|n| n.name == pod.node)
        .with_context(|| format!("pod {}: lab {lab:?} has no node {:?}", pod.name, pod.node))?;
    let (bins, conf) = super::podman::cni_for(&state.plan, node)?;
    sys::cni_del(&bins, &pod, &conf)?;
    if sys::lab_namespaces(lab).contains(&pod.netns) {
        sys::run("ip", &["netns", "del", &pod.netns])?;
    }
    state.plan.pods.retain(|p| p.name != pod.name);
    let ip = state.pod_ips.remove(&pod.name);
    state.save()?;
    println!(
        "pod {} ({}) deleted from node {}",
        pod.name,
        ip.as_deref().unwrap_or("no address"),
        pod.node
    );
    Ok(())
}

fn stop_node(a: &NodeStopArgs) -> anyhow::Result<()> {
    require_root()?;
    let lab = &a.name.name;
    let mut state = load(lab)?;
    if super::podman::stop_agent(&state, &a.node, a.signal == StopSignal::Kill)? {
        println!("tortie-node container of node {} stopped", a.node);
        return Ok(());
    }
    let pid = state.pids.get(&a.node).copied().with_context(|| {
        format!(
            "lab {lab:?} has no running tortie-node for node {:?}",
            a.node
        )
    })?;
    let how = match a.signal {
        StopSignal::Term => How::Term,
        StopSignal::Kill => How::Kill,
    };
    let outcome = state.stop(pid, how);
    state.pids.remove(&a.node);
    state.processes.remove(&pid);
    state.save()?;
    match outcome {
        Outcome::Stopped => println!("tortie-node of node {} (pid {pid}) stopped", a.node),
        Outcome::Gone => println!(
            "tortie-node of node {} (pid {pid}) had already exited",
            a.node
        ),
        Outcome::NotOurs => println!(
            "tortie-node of node {} had exited: pid {pid} now runs another program, left alone",
            a.node
        ),
    }
    Ok(())
}
