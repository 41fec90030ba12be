//! The lab's system work: namespaces, veths and bridges through `ip`,
//! tortie-node processes (recorded by PID), the CNI plugin run as a runtime
//! runs it, and the lab's state file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::name;
use super::plan::{NodePlan, Plan, PodPlan, RelayPlan};
use super::procs::{self, How, Outcome, ProcIdentity};

/// What `lab up` created, saved as `state.json` after every step so that
/// `lab down` (or an interrupted `up`) can undo it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The layout.
    pub plan: Plan,
    /// tortie-node PIDs by node name.
    pub pids: BTreeMap<String, u32>,
    /// Pod IPs by pod id (`NS/POD`).
    pub pod_ips: BTreeMap<String, String>,
    /// The PID of each pod's server (`lab serve`) by pod id.
    #[serde(default)]
    pub servers: BTreeMap<String, u32>,
    /// The etcd relay's PID (etcd datastores only).
    #[serde(default)]
    pub relay_pid: Option<u32>,
    /// What each PID above was when the lab started it: a process is
    /// signalled only while it still matches (see [`procs`]).
    #[serde(default)]
    pub processes: BTreeMap<u32, ProcIdentity>,
    /// `--runtime podman`: the ID of each container the lab created, by
    /// node name (`node1`; `node1/install-cni` while that one exists).
    /// `lab down` removes exactly these.
    #[serde(default)]
    pub containers: BTreeMap<String, String>,
}

impl LabState {
    /// The state file of a lab directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Writes the state file.
    pub fn save(&self) -> anyhow::Result<()> {
        let p = Self::path(&self.plan.dir);
        std::fs::write(&p, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", p.display()))
    }

    /// Reads the state file of lab `lab` in its directory `dir`, refusing
    /// one that points anywhere but that lab's folder and namespaces.
    pub fn load(lab: &str, dir: &Path) -> anyhow::Result<Self> {
        let p = Self::path(dir);
        let bytes = std::fs::read(&p)
            .with_context(|| format!("no lab state at {} (is the lab up?)", p.display()))?;
        let state: Self = serde_json::from_slice(&bytes)?;
        name::check_confined(&state.plan, lab, dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}; not using it", p.display()))?;
        Ok(state)
    }

    /// Stops recorded process `pid` if it is still the one the lab started.
    pub fn stop(&self, pid: u32, how: How) -> Outcome {
        procs::stop(pid, self.processes.get(&pid), how)
    }
}

/// Creates the lab's state folder (and `/run/tortie-lab`) private to root;
/// refuses a state folder that is a symbolic link or not a folder.
pub fn create_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    check_state_dir(dir)
}

/// A lab's state folder must be a real folder: `lab down` removes it
/// recursively and never follows a link somewhere else.
pub fn check_state_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => bail!(
            "{} is not a folder (a link or a file): the lab does not touch it",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Runs a command, failing with its stderr.
pub fn run(prog: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip netns exec NS ip ARGS...`.
pub fn ip_in(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut a = vec!["netns", "exec", ns, "ip"];
    a.extend_from_slice(args);
    run("ip", &a)
}

/// Writes a sysctl inside a namespace.
pub fn sysctl_in(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    run(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("{key}={value}"),
        ],
    )
    .map(|_| ())
}

/// Creates a namespace with loopback up.
pub fn create_netns(ns: &str) -> anyhow::Result<()> {
    run("ip", &["netns", "add", ns])?;
    ip_in(ns, &["link", "set", "lo", "up"]).map(|_| ())
}

/// Existing namespaces of the shapes lab `name` creates (`<name>-router`,
/// `-nodeN`, `-rrN`, `-nodeN-podM`; not those of a lab `<name>-x`).
pub fn lab_namespaces(name: &str) -> Vec<String> {
    run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| name::is_lab_namespace(name, n))
        .map(str::to_string)
        .collect()
}

/// Builds the router namespace with one bridge per subnet.
pub fn build_router(plan: &Plan) -> anyhow::Result<()> {
    let r = &plan.router_netns;
    create_netns(r)?;
    for s in [1, 2] {
        let br = format!("br{s}");
        ip_in(r, &["link", "add", "name", &br, "type", "bridge"])?;
        ip_in(r, &["addr", "add", &format!("10.0.{s}.1/24"), "dev", &br])?;
        ip_in(r, &["link", "set", &br, "up"])?;
    }
    sysctl_in(r, "net.ipv4.ip_forward", "1")
}

/// Builds a node namespace wired to its subnet's bridge.
pub fn build_node(plan: &Plan, n: &NodePlan) -> anyhow::Result<()> {
    let r = &plan.router_netns;
    create_netns(&n.netns)?;
    run(
        "ip",
        &[
            "link",
            "add",
            "name",
            &n.router_if,
            "netns",
            r,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &n.netns,
        ],
    )?;
    ip_in(
        r,
        &[
            "link",
            "set",
            &n.router_if,
            "master",
            &format!("br{}", n.subnet),
        ],
    )?;
    ip_in(r, &["link", "set", &n.router_if, "up"])?;
    ip_in(&n.netns, &["addr", "add", &n.ip, "dev", "eth0"])?;
    ip_in(&n.netns, &["link", "set", "eth0", "up"])?;
    ip_in(
        &n.netns,
        &[
            "route",
            "add",
            "default",
            "via",
            &format!("10.0.{}.1", n.subnet),
        ],
    )?;
    sysctl_in(&n.netns, "net.ipv4.ip_forward", "1")
}

/// Starts tortie-node in `netns` (`dataplane` false: BGP only, as a
/// dedicated route reflector) in its own process group; returns its PID
/// and identity once it runs the binary.
pub fn start_node(
    bin: &Path,
    plan: &Plan,
    n: &NodePlan,
    netns: &str,
    dataplane: bool,
) -> anyhow::Result<(u32, ProcIdentity)> {
    let log = File::create(&n.log).with_context(|| format!("cannot create {}", n.log.display()))?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(bin)
        .args([
            "--datastore",
            plan.agent_datastore(),
            "--node-name",
            &n.name,
            "--node-ip",
            &n.ip,
        ])
        .arg("--control-socket")
        .arg(&n.control_socket)
        .arg("--mtu-file")
        .arg(&n.mtu_file)
        .args(["--http-addr", "127.0.0.1:9099", "--log-level", "info"])
        .args(["--dataplane", if dataplane { "linux" } else { "none" }])
        .env_remove("TORTIE_DATASTORE")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start tortie-node")?;
    let pid = child.id();
    match procs::record(pid, bin) {
        Ok(id) => Ok((pid, id)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e.context(format!("tortie-node for {}", n.name)))
        }
    }
}

/// Starts the etcd relay (`tortiectl lab relay`, this very binary) in its
/// own process group, logging to the relay's log file; returns its PID and
/// identity once it listens, or fails with its log when it exits first.
pub fn start_relay(relay: &RelayPlan) -> anyhow::Result<(u32, ProcIdentity)> {
    let mut args = vec![
        "lab".to_string(),
        "relay".into(),
        "--netns".into(),
        relay.netns.clone(),
    ];
    for r in &relay.routes {
        args.push("--route".into());
        args.push(format!("{}={}", r.listen, r.target));
    }
    let what = format!("the etcd relay (in namespace {})", relay.netns);
    start_own(&args, &relay.log, &what)
}

/// Starts the pod's server (`tortiectl lab serve`, TCP and UDP 80 and 81)
/// and waits until it listens; its PID and identity.
pub fn start_server(pod: &PodPlan, log: &Path) -> anyhow::Result<(u32, ProcIdentity)> {
    let args = ["lab", "serve", "--netns", &pod.netns, "--id", &pod.id()].map(String::from);
    start_own(&args, log, &format!("the server of pod {}", pod.id()))
}

/// Starts this very binary with `args` in its own process group, stderr to
/// `log`, and waits for the `ready` line it prints once it serves; its PID
/// and identity (recorded so that `lab down` stops only it). When it does
/// not get ready, it is stopped and the error carries its log.
fn start_own(args: &[String], log: &Path, what: &str) -> anyhow::Result<(u32, ProcIdentity)> {
    let exe = std::env::current_exe().context("cannot find tortiectl's own path")?;
    let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut child = Command::new(&exe)
        .args(args)
        .env_remove("TORTIE_DATASTORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(log).unwrap_or_default();
        bail!("{what} did not start: {}", log.trim());
    }
    let pid = child.id();
    match procs::record(pid, &exe) {
        Ok(id) => Ok((pid, id)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e.context(what.to_string()))
        }
    }
}

/// Runs the `tortie` CNI plugin with `command` (`ADD`, `DEL`) for `pod`
/// inside its node's namespace as a runtime does: CNI_* environment, the
/// network configuration on stdin. Fails with the plugin's output.
fn cni_run(
    bin_dir: &Path,
    command: &str,
    pod: &PodPlan,
    conf: &serde_json::Value,
) -> anyhow::Result<String> {
    let cid = format!("lab-{}", pod.netns);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &pod.node_netns])
        .arg(bin_dir.join("tortie"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &cid)
        .env("CNI_NETNS", format!("/var/run/netns/{}", pod.netns))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", bin_dir)
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={cid}", pod.namespace, pod.name),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run the tortie CNI plugin")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(conf.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "CNI {command} for {} failed: {} {}",
            pod.name,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

/// Runs the `tortie` CNI plugin for `pod` inside its node's namespace as a
/// runtime does; returns the pod IP.
pub fn cni_add(bin_dir: &Path, pod: &PodPlan, conf: &serde_json::Value) -> anyhow::Result<String> {
    let stdout = cni_run(bin_dir, "ADD", pod, conf)?;
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .with_context(|| format!("CNI ADD for {} printed no JSON: {stdout}", pod.name))?;
    let addr = v["ips"][0]["address"].as_str().unwrap_or_default();
    let ip = addr.split('/').next().unwrap_or_default();
    if ip.is_empty() {
        bail!("CNI ADD for {} returned no address: {stdout}", pod.name);
    }
    Ok(ip.to_string())
}

/// Runs CNI DEL for `pod` as a runtime does when the pod is deleted: the
/// plugin removes its interface, WorkloadEndpoint and addresses.
pub fn cni_del(bin_dir: &Path, pod: &PodPlan, conf: &serde_json::Value) -> anyhow::Result<()> {
    cni_run(bin_dir, "DEL", pod, conf).map(|_| ())
}

/// One ping from a namespace; true if it was answered.
pub fn ping(ns: &str, ip: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-q", ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
