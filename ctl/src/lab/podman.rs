//! `lab up --runtime podman`: each node's agent runs in a container from
//! the tortie image, as the DaemonSet runs it — privileged, in the node's
//! network namespace (`--network ns:/run/netns/<ns>`, the lab's
//! `hostNetwork`), with the node's host folders mounted where the
//! DaemonSet mounts the host's — after install-cni from the same image has
//! put the plugins and the conflist into the node's CNI folders, from which
//! the lab then wires its pods.
//!
//! Every container is recorded by the ID podman gives it, in the lab's
//! state, before it starts; `lab down` removes exactly those IDs.
//!
//! Must not: address a container by name or pattern, use an image other
//! than the one asked for (never pull), or mount anything but the node's
//! own folders (and `/lib/modules` read only).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::plan::{host_dirs, NodePlan, Plan, PodmanPlan, Runtime};
use super::sys::LabState;

/// The image `--runtime podman` uses unless `--image` says otherwise.
pub const DEFAULT_IMAGE: &str = "localhost/tortie:latest";

/// Inside the containers: where the DaemonSet mounts the host's folders.
const CTR_CNI_BIN: &str = "/host/opt/cni/bin";
const CTR_CNI_NET: &str = "/host/etc/cni/net.d";
const CTR_CALICO: &str = "/var/lib/calico";
const CTR_RUN: &str = "/run/tortie";

/// The settings every podman call of the lab needs here (this kernel
/// refuses podman's default rlimits), for a lab whose caller set no
/// `CONTAINERS_CONF`.
pub const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = []\npids_limit = 0\n";

/// Checks an `--image` value: podman gets it as one argument, never as an
/// option.
pub fn parse_image(v: &str) -> Result<String, String> {
    if v.is_empty() || v.starts_with('-') || v.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{v:?} is not an image reference (e.g. {DEFAULT_IMAGE})"
        ));
    }
    Ok(v.to_string())
}

/// Checks `--podman-root` / `--podman-runroot`: an absolute path.
pub fn parse_abs_dir(v: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err(format!("{v:?} is not an absolute path"));
    }
    Ok(p)
}

/// `podman [--root R] [--runroot RR] --cgroup-manager=cgroupfs`.
fn base_args(p: &PodmanPlan) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(r) = &p.root {
        a.extend(["--root".to_string(), r.display().to_string()]);
    }
    if let Some(r) = &p.runroot {
        a.extend(["--runroot".to_string(), r.display().to_string()]);
    }
    a.push("--cgroup-manager=cgroupfs".into());
    a
}

fn vol(host: &Path, ctr: &str) -> [String; 2] {
    ["-v".into(), format!("{}:{ctr}", host.display())]
}

fn env(k: &str, v: &str) -> [String; 2] {
    ["-e".into(), format!("{k}={v}")]
}

/// The node's namespace as podman joins it.
fn netns_arg(n: &NodePlan) -> String {
    format!("--network=ns:/run/netns/{}", n.netns)
}

/// `create` arguments of node `n`'s install-cni: the init container of the
/// DaemonSet (same variables, the node's CNI folders at `/host/...`).
pub fn install_cni_args(plan: &Plan, p: &PodmanPlan, n: &NodePlan) -> Vec<String> {
    let h = host_dirs(&plan.dir, &n.name);
    let mut a = base_args(p);
    a.extend([
        "create".into(),
        "--pull=never".into(),
        "--privileged".into(),
    ]);
    a.push(netns_arg(n));
    a.extend(vol(&h.cni_bin, CTR_CNI_BIN));
    a.extend(vol(&h.cni_net, CTR_CNI_NET));
    a.extend(env("TORTIE_DATASTORE", plan.agent_datastore()));
    a.extend(env("TORTIE_NODENAME", &n.name));
    a.extend(env("TORTIE_CNI_MTU", &plan.mode.pod_mtu().to_string()));
    // Host paths, as the plugin runs on the host.
    a.extend(env(
        "TORTIE_CNI_MTU_FILE",
        &n.mtu_file.display().to_string(),
    ));
    let state = plan.dir.join(format!("cni-{}", n.name));
    a.extend(env("TORTIE_CNI_STATE_DIR", &state.display().to_string()));
    a.extend([p.image.clone(), "install-cni".into()]);
    a
}

/// `run -d` arguments of node `n`'s agent: the DaemonSet's container
/// (privileged, its variables and host mounts), in the node's namespace.
pub fn agent_args(plan: &Plan, p: &PodmanPlan, n: &NodePlan, dataplane: bool) -> Vec<String> {
    let h = host_dirs(&plan.dir, &n.name);
    let mut a = base_args(p);
    a.extend(["run".into(), "-d".into(), "--pull=never".into()]);
    a.extend(["--privileged".into(), netns_arg(n)]);
    a.push(format!("--name={}-{}", plan.name, n.name));
    a.push(format!("--label=io.tortie.lab={}", plan.name));
    a.extend([
        "--log-driver=k8s-file".into(),
        format!("--log-opt=path={}", n.log.display()),
    ]);
    if Path::new("/lib/modules").is_dir() {
        a.extend(["-v".into(), "/lib/modules:/lib/modules:ro".into()]);
    }
    a.extend(vol(&h.xtables_lock, "/run/xtables.lock"));
    a.extend(vol(&h.calico, CTR_CALICO));
    a.extend(vol(&h.run, CTR_RUN));
    if let Some(db) = plan.sqlite_file() {
        // The lab's own SQLite datastore, at the same path inside.
        if let Some(d) = db.parent() {
            a.extend(vol(d, &d.display().to_string()));
        }
    }
    a.extend(env("TORTIE_DATASTORE", plan.agent_datastore()));
    a.extend(env("TORTIE_NODENAME", &n.name));
    a.extend(env("TORTIE_NODE_IP", &n.ip));
    a.extend(env("TORTIE_HTTP_ADDR", "127.0.0.1:9099"));
    a.extend(env(
        "TORTIE_CONTROL_SOCKET",
        &format!("{CTR_RUN}/node.sock"),
    ));
    a.extend(env("TORTIE_MTU_FILE", &format!("{CTR_CALICO}/mtu")));
    a.extend([p.image.clone(), "tortie-node".into(), "--dataplane".into()]);
    a.push(if dataplane { "linux" } else { "none" }.into());
    a
}

fn command(p: &PodmanPlan, args: &[String]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(args);
    // The lab's own file exists from the moment its folder does; before
    // that (the image check) podman's settings do for a query.
    if p.containers_conf.exists() {
        cmd.env("CONTAINERS_CONF", &p.containers_conf);
    }
    cmd
}

/// Runs podman with the lab's storage and configuration; its stdout.
fn podman(p: &PodmanPlan, args: &[String]) -> anyhow::Result<String> {
    let out = command(p, args)
        .output()
        .context("cannot run podman (is it installed? apt-get install podman)")?;
    if !out.status.success() {
        bail!(
            "`podman {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fails unless podman runs and holds the image.
pub fn check_image(p: &PodmanPlan) -> anyhow::Result<()> {
    let mut a = base_args(p);
    a.extend(["image".into(), "exists".into(), p.image.clone()]);
    let out = command(p, &a)
        .output()
        .context("cannot run podman (is it installed? apt-get install podman)")?;
    match out.status.code() {
        Some(0) => Ok(()),
        // `image exists`: 1 means no such image.
        Some(1) => {
            let root = |pre: &str| {
                p.root
                    .as_ref()
                    .map(|r| format!("{pre}{}", r.display()))
                    .unwrap_or_default()
            };
            bail!(
                "image {} is not in podman's storage{}: build it with scripts/build-image.sh{}",
                p.image,
                root(" at "),
                root(" --root ")
            )
        }
        _ => bail!(
            "`podman {}` failed: {}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

fn id_of(out: &str) -> anyhow::Result<String> {
    let id = out.lines().last().unwrap_or_default().trim();
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("podman printed no container ID: {out}");
    }
    Ok(id.to_string())
}

/// The podman settings of a podman lab.
fn settings(plan: &Plan) -> anyhow::Result<&PodmanPlan> {
    plan.podman
        .as_ref()
        .context("the lab state has no podman settings")
}

/// install-cni for node `n`, as the init container: created and recorded,
/// run to completion, removed. Fails with its output.
pub fn install_cni(state: &mut LabState, n: &NodePlan) -> anyhow::Result<()> {
    let p = settings(&state.plan)?.clone();
    let h = host_dirs(&state.plan.dir, &n.name);
    for d in [&h.cni_bin, &h.cni_net] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let id = id_of(&podman(&p, &install_cni_args(&state.plan, &p, n))?)?;
    let key = format!("{}/install-cni", n.name);
    state.containers.insert(key.clone(), id.clone());
    state.save()?;
    let mut start = base_args(&p);
    start.extend(["start".into(), "--attach".into(), id.clone()]);
    let ran = podman(&p, &start);
    let mut rm = base_args(&p);
    rm.extend(["rm".into(), id]);
    podman(&p, &rm)?;
    state.containers.remove(&key);
    state.save()?;
    ran.with_context(|| format!("install-cni for {}", n.name))?;
    Ok(())
}

/// Starts node `n`'s agent container and records its ID.
pub fn start_agent(state: &mut LabState, n: &NodePlan, dataplane: bool) -> anyhow::Result<()> {
    let p = settings(&state.plan)?.clone();
    let h = host_dirs(&state.plan.dir, &n.name);
    for d in [&h.calico, &h.run] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    if !h.xtables_lock.exists() {
        std::fs::write(&h.xtables_lock, "")?;
    }
    if let Some(d) = state
        .plan
        .sqlite_file()
        .and_then(|f| f.parent().map(Path::to_path_buf))
    {
        std::fs::create_dir_all(&d)?;
    }
    let out = podman(&p, &agent_args(&state.plan, &p, n, dataplane))
        .with_context(|| format!("tortie-node container for {}", n.name))?;
    state.containers.insert(n.name.clone(), id_of(&out)?);
    state.save()
}

/// Stops node `node`'s agent container (SIGTERM, SIGKILL after 5 s, or
/// SIGKILL at once); the container stays recorded until `lab down`.
pub fn stop_agent(state: &LabState, node: &str, kill: bool) -> anyhow::Result<bool> {
    let Some(id) = state.containers.get(node) else {
        return Ok(false);
    };
    let p = settings(&state.plan)?;
    let mut a = base_args(p);
    if kill {
        a.extend(["kill".into(), "--signal=KILL".into(), id.clone()]);
    } else {
        a.extend(["stop".into(), "--time=5".into(), id.clone()]);
    }
    podman(p, &a)?;
    Ok(true)
}

/// Removes every container the lab recorded (agents stop with SIGTERM,
/// SIGKILL after 10 s), by ID; a recorded ID podman no longer knows is
/// fine. Returns how many went, or the errors.
pub fn remove_all(state: &LabState) -> Result<usize, Vec<String>> {
    if state.containers.is_empty() {
        return Ok(0);
    }
    let p = match settings(&state.plan) {
        Ok(p) => p,
        Err(e) => return Err(vec![e.to_string()]),
    };
    let mut errors = Vec::new();
    for id in state.containers.values() {
        let mut a = base_args(p);
        a.extend([
            "rm".into(),
            "--force".into(),
            "--time=10".into(),
            "--ignore".into(),
        ]);
        a.push(id.clone());
        if let Err(e) = podman(p, &a) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(state.containers.len())
    } else {
        Err(errors)
    }
}

/// Where the CNI plugins of node `node` are and the network configuration
/// a runtime hands the `tortie` plugin there: the lab's own binaries and
/// configuration for processes; for podman, what install-cni put into the
/// node's CNI folders (the conflist's `tortie` entry with the list's
/// `cniVersion` and `name`, as a runtime builds it).
pub fn cni_for(plan: &Plan, node: &NodePlan) -> anyhow::Result<(PathBuf, serde_json::Value)> {
    match plan.runtime {
        Runtime::Process => Ok((super::bin_dir()?, super::plan::cni_conf(plan, node))),
        Runtime::Podman => {
            let h = host_dirs(&plan.dir, &node.name);
            let file = h.cni_net.join("10-tortie.conflist");
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!("cannot read {} (written by install-cni)", file.display())
            })?;
            let list: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let conf =
                plugin_conf(&list, "tortie").with_context(|| format!("{}", file.display()))?;
            Ok((h.cni_bin, conf))
        }
    }
}

/// The configuration a runtime gives plugin `kind` of a conflist.
pub fn plugin_conf(list: &serde_json::Value, kind: &str) -> anyhow::Result<serde_json::Value> {
    let mut conf = list["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["type"] == kind))
        .cloned()
        .with_context(|| format!("no plugin of type {kind:?}"))?;
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::super::plan::{plan, LabSpec, Mode};
    use super::*;

    fn podman_lab() -> Plan {
        plan(&LabSpec {
            name: "t",
            mode: Mode::Vxlan,
            nodes: 2,
            pods: 1,
            route_reflectors: 0,
            datastore: None,
            podman: Some(PodmanPlan {
                image: DEFAULT_IMAGE.into(),
                root: Some("/var/tmp/st".into()),
                runroot: None,
                containers_conf: "/run/tortie-lab/t/containers.conf".into(),
            }),
        })
    }

    fn has(a: &[String], s: &str) -> bool {
        a.iter().any(|x| x == s)
    }

    #[test]
    fn the_agent_runs_as_the_daemonset_runs_it() {
        let p = podman_lab();
        let pm = p.podman.clone().unwrap();
        let a = agent_args(&p, &pm, &p.nodes[0], true);
        assert_eq!(
            &a[..3],
            ["--root", "/var/tmp/st", "--cgroup-manager=cgroupfs"]
        );
        for want in [
            "--privileged",
            "--network=ns:/run/netns/t-node1",
            "--pull=never",
            "/run/tortie-lab/t/node1/calico:/var/lib/calico",
            "/run/tortie-lab/t/node1/run:/run/tortie",
            "/run/tortie-lab/t/node1/xtables.lock:/run/xtables.lock",
            "/run/tortie-lab/t/db:/run/tortie-lab/t/db",
            "TORTIE_DATASTORE=sqlite:///run/tortie-lab/t/db/tortie.db",
            "TORTIE_NODENAME=node1",
            "TORTIE_NODE_IP=10.0.1.11/24",
            "TORTIE_CONTROL_SOCKET=/run/tortie/node.sock",
            "TORTIE_MTU_FILE=/var/lib/calico/mtu",
        ] {
            assert!(has(&a, want), "{want} in {a:?}");
        }
        assert_eq!(
            &a[a.len() - 4..],
            [DEFAULT_IMAGE, "tortie-node", "--dataplane", "linux"]
        );
        // The host sees the socket and MTU file where the plan says.
        assert_eq!(
            p.nodes[0].control_socket,
            Path::new("/run/tortie-lab/t/node1/run/node.sock")
        );
        assert_eq!(
            p.nodes[0].mtu_file,
            Path::new("/run/tortie-lab/t/node1/calico/mtu")
        );
    }

    #[test]
    fn install_cni_writes_into_the_node_folders_with_host_paths() {
        let p = podman_lab();
        let pm = p.podman.clone().unwrap();
        let a = install_cni_args(&p, &pm, &p.nodes[1]);
        for want in [
            "create",
            "/run/tortie-lab/t/node2/opt-cni-bin:/host/opt/cni/bin",
            "/run/tortie-lab/t/node2/etc-cni-net.d:/host/etc/cni/net.d",
            "TORTIE_NODENAME=node2",
            "TORTIE_CNI_MTU=1450",
            "TORTIE_CNI_MTU_FILE=/run/tortie-lab/t/node2/calico/mtu",
            "TORTIE_CNI_STATE_DIR=/run/tortie-lab/t/cni-node2",
        ] {
            assert!(has(&a, want), "{want} in {a:?}");
        }
        assert_eq!(&a[a.len() - 2..], [DEFAULT_IMAGE, "install-cni"]);
    }

    #[test]
    fn a_runtime_gives_the_plugin_its_entry_with_the_list_name_and_version() {
        let list = serde_json::json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
            {"type": "tortie", "nodename": "n", "ipam": {"type": "tortie-ipam"}},
            {"type": "portmap", "snat": true}]});
        let c = plugin_conf(&list, "tortie").unwrap();
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["name"], "k8s-pod-network");
        assert_eq!(c["nodename"], "n");
        assert!(plugin_conf(&list, "bridge").is_err());
    }

    #[test]
    fn images_and_storage_folders_are_checked() {
        assert!(parse_image("localhost/tortie:0.1.0").is_ok());
        for bad in ["", "--privileged", "a b", "x\ny"] {
            assert!(parse_image(bad).is_err(), "{bad:?}");
        }
        assert!(parse_abs_dir("/var/tmp/x").is_ok());
        assert!(parse_abs_dir("rel/x").is_err());
        assert!(id_of("0123456789abcdef0123").is_ok());
        assert!(id_of("Error: no").is_err());
    }
}
