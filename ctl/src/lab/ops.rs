//! Changes to a running lab, for demos and end-to-end tests: delete one
//! pod as a runtime does (CNI DEL, then its namespace), or stop one node's
//! tortie-node (SIGTERM, or SIGKILL as a crash) while its namespace, kernel
//! routes and pods stay. The lab's state file is updated after each.
//!
//! Must not: touch the datastore directly (the CNI plugin and the agents
//! do that), or stop anything but the recorded PID of the named node.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};

use crate::context::UsageError;

use super::procs::{How, Outcome};
use super::sys;
use super::{load, require_root, NameArgs};

/// `tortiectl lab pod ...`.
#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Add a pod on a node, in a namespace, with labels (CNI ADD as a runtime does).
    Add(PodAddArgs),
    /// Delete a pod: CNI DEL in its node's namespace, then its namespace.
    Delete(PodArgs),
}

/// One pod of a lab.
#[derive(Debug, Args)]
pub struct PodArgs {
    #[command(flatten)]
    name: NameArgs,
    /// Pod: `NS/POD`, or `POD` in namespace default (e.g. `node1-pod2`, see `lab status`).
    pod: String,
}

/// A pod to add.
#[derive(Debug, Args)]
pub struct PodAddArgs {
    #[command(flatten)]
    name: NameArgs,
    /// Pod name (a DNS label, unique in its namespace).
    pod: String,
    /// The node it runs on (e.g. `node2`).
    #[arg(long)]
    node: String,
    /// Its Kubernetes namespace (a DNS label).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Its labels: `k=v[,k=v...]`.
    #[arg(long, value_parser = parse_labels, default_value = "")]
    labels: BTreeMap<String, String>,
}

fn dns_label(what: &str, s: &str) -> anyhow::Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(UsageError(format!(
            "{what} {s:?} is not a DNS label (lower-case letters, digits and '-', at most 63)"
        ))
        .into())
    }
}

/// `k=v[,k=v]` (empty: none).
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("label {kv:?}: expected key=value"))?;
            if k.is_empty() {
                return Err(format!("label {kv:?}: empty key"));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
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
        PodCommand::Add(a) => add_pod(a),
        PodCommand::Delete(a) => delete_pod(a),
    }
}

/// Runs `tortiectl lab node ...`.
pub fn node(cmd: &NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Stop(a) => stop_node(a),
    }
}

fn add_pod(a: &PodAddArgs) -> anyhow::Result<()> {
    require_root()?;
    dns_label("pod name", &a.pod)?;
    dns_label("namespace", &a.namespace)?;
    let lab = &a.name.name;
    let mut state = load(lab)?;
    let node = state
        .plan
        .nodes
        .iter()
        .find(|n| n.name == a.node)
        .cloned()
        .with_context(|| format!("lab {lab:?} has no node {:?} that runs pods", a.node))?;
    if state
        .plan
        .pods
        .iter()
        .any(|p| p.namespace == a.namespace && p.name == a.pod)
    {
        bail!("lab {lab:?} has a pod {}/{} already", a.namespace, a.pod);
    }
    // Namespaces keep the lab's shape `<lab>-<node>-pod<M>`: the next free M.
    let taken = |m: usize| {
        let ns = format!("{lab}-{}-pod{m}", node.name);
        state.plan.pods.iter().any(|p| p.netns == ns) || sys::lab_namespaces(lab).contains(&ns)
    };
    let m = (1..).find(|m| !taken(*m)).unwrap_or(1);
    let pod = super::plan::PodPlan {
        name: a.pod.clone(),
        namespace: a.namespace.clone(),
        labels: a.labels.clone(),
        netns: format!("{lab}-{}-pod{m}", node.name),
        node: node.name.clone(),
        node_netns: node.netns.clone(),
    };
    state.plan.pods.push(pod.clone());
    state.save()?;
    super::create_pod(&mut state, &pod)?;
    println!(
        "pod {} added on node {} ({})",
        pod.id(),
        pod.node,
        state
            .pod_ips
            .get(&pod.id())
            .map_or("no address", String::as_str)
    );
    Ok(())
}

fn delete_pod(a: &PodArgs) -> anyhow::Result<()> {
    require_root()?;
    let lab = &a.name.name;
    let mut state = load(lab)?;
    let pod = super::find_pod(&state, &a.pod)?.clone();
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
    if let Some(pid) = state.servers.remove(&pod.id()) {
        state.stop(pid, How::Term);
        state.processes.remove(&pid);
    }
    state.plan.pods.retain(|p| p.id() != pod.id());
    let ip = state.pod_ips.remove(&pod.id());
    state.save()?;
    println!(
        "pod {} ({}) deleted from node {}",
        pod.id(),
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
