//! A real container runtime: podman 4.3 with its CNI backend and runc runs
//! containers with podman's default names (`happy_mcnulty`, which no
//! Kubernetes name may be) on a `tortie` network, inside a node namespace
//! of the test's own. podman execs the plugin for ADD and DEL exactly as on
//! a user's machine (it passes the container name as `K8S_POD_NAME` alone);
//! CHECK, which podman never sends, is sent with the arguments and result
//! podman's CNI library cached for the container. The recipe (containers.conf,
//! nsenter, a busybox-static root filesystem, unmounting before removal)
//! is TESTING.md's "A real container runtime".

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::store::{apply, conf, handle_exists, sqlite_url, wep_list, POOL_V4};
use common::{tortie_bin, with_prev, Call, Node};
use serde_json::{json, Value};

/// Where libcni (inside podman) caches each attachment's args and result.
const CNI_CACHE: &str = "/var/lib/cni/results";

/// podman with storage, run root, configuration and a root filesystem in a
/// temporary directory, run inside `node`'s host namespace.
struct Podman {
    dir: tempfile::TempDir,
    netns: String,
    network: String,
}

impl Podman {
    fn new(node: &Node, plugin: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let network = format!("{}net", node.prefix);
        for sub in ["root", "runroot", "tmp", "net.d", "rootfs/bin"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::copy("/bin/busybox", d.join("rootfs/bin/busybox")).unwrap();
        for applet in ["sh", "ip", "ping", "sleep"] {
            std::os::unix::fs::symlink("busybox", d.join("rootfs/bin").join(applet)).unwrap();
        }
        let ours = tortie_bin().parent().unwrap().display().to_string();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = []\npids_limit = 0\n\
                 [network]\nnetwork_backend = \"cni\"\n\
                 cni_plugin_dirs = [\"{ours}\", \"/usr/lib/cni\"]\n\
                 network_config_dir = \"{}\"\n\
                 [engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\n",
                d.join("net.d").display(),
                d.join("events.log").display()
            ),
        )
        .unwrap();
        let list = json!({"cniVersion": "1.0.0", "name": network, "plugins": [plugin]});
        std::fs::write(
            d.join("net.d").join(format!("{network}.conflist")),
            list.to_string(),
        )
        .unwrap();
        Self {
            dir,
            netns: node.host.name().to_string(),
            network,
        }
    }

    fn podman(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .arg("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"])
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .output()
            .unwrap()
    }

    /// Runs podman, failing the test with its stderr.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts a container with podman's default name; returns its ID.
    fn run_detached(&self) -> String {
        let rootfs = self.dir.path().join("rootfs").display().to_string();
        let network = self.network.as_str();
        self.ok(&[
            "run",
            "-d",
            "--network",
            network,
            "--rootfs",
            &rootfs,
            "/bin/sleep",
            "600",
        ])
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, id])
    }

    /// What libcni cached for the container's attachment: `cniArgs` and `result`.
    fn cached(&self, id: &str) -> Value {
        let p = Path::new(CNI_CACHE).join(format!("{}-{id}-eth0", self.network));
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        unmount_under(self.dir.path());
    }
}

/// Lazily unmounts every mount below `dir`, deepest first, so the
/// temporary directory can be removed.
fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
    }
}

/// `K8S_POD_NAME` etc. as libcni passed them, joined back into CNI_ARGS.
fn cni_args(cache: &Value) -> String {
    cache["cniArgs"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .map(|kv| format!("{}={}", kv[0].as_str().unwrap(), kv[1].as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "root: podman, runc and network namespaces"]
fn podman_containers_with_default_names_go_through_add_check_del() {
    let node = Node::new("pdm");
    let url = sqlite_url(&node);
    apply(&node, &url, POOL_V4);
    let mut plugin = conf(&node, &url, "1.0.0");
    let obj = plugin.as_object_mut().unwrap();
    obj.remove("cniVersion");
    obj.remove("name");
    let podman = Podman::new(&node, plugin.clone());

    let ids = [podman.run_detached(), podman.run_detached()];
    let mut ips = Vec::new();
    for id in &ids {
        let name = podman.inspect(id, "{{.Name}}");
        assert!(name.contains('_'), "podman's default name: {name}");
        let cache = podman.cached(id);
        assert_eq!(
            cni_args(&cache),
            format!("IgnoreUnknown=1;K8S_POD_NAME={name}"),
            "what podman passes"
        );
        let weps = wep_list(&node, &url);
        let wep = weps
            .iter()
            .find(|w| &w.spec.container_id == id)
            .unwrap_or_else(|| panic!("no endpoint for {name}: {weps:?}"));
        assert_eq!(wep.metadata.name, format!("node1-cni-{id}-eth0"));
        assert_eq!(wep.validate(), vec![]);
        assert_eq!(wep.spec.orchestrator, "cni");
        assert!(
            wep.spec.workload.starts_with(&name.replace('_', "-")),
            "{wep:?}"
        );
        assert_eq!(wep.spec.interface_name, format!("cali{}", &id[..11]));
        assert!(node.cali_links().contains(&wep.spec.interface_name));
        ips.push(wep.spec.ip_networks[0].addr().to_string());

        // CHECK as a runtime sends it: podman's own args and cached result.
        let sandbox = podman.inspect(id, "{{.NetworkSettings.SandboxKey}}");
        let args = cni_args(&cache);
        let mut call = Call::new("CHECK", id, Some(&sandbox), "");
        call.cni_args = Some(&args);
        let mut check_conf = plugin.clone();
        check_conf["cniVersion"] = json!("1.0.0");
        check_conf["name"] = json!(podman.network);
        let check = node.run(&call, &with_prev(&check_conf, &cache["result"]));
        assert!(check.ok, "CHECK of {name}: {}", check.stdout);
    }

    let out = podman.ok(&["exec", &ids[0], "ping", "-c", "1", "-W", "2", &ips[1]]);
    assert!(out.contains("1 packets received"), "{out}");

    for id in &ids {
        podman.ok(&["rm", "--force", "--time", "0", id]);
        assert!(!handle_exists(&node, &url, id), "address of {id} left");
    }
    assert!(node.cali_links().is_empty(), "{:?}", node.cali_links());
    assert!(wep_list(&node, &url).is_empty(), "endpoints left");
    assert!(!Path::new(CNI_CACHE)
        .join(format!("{}-{}-eth0", podman.network, ids[0]))
        .exists());
}
