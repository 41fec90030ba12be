//! End to end, the lab on the container image: `scripts/build-image.sh`
//! builds the image (from the binaries this test run built, `--binaries`)
//! into a podman storage of the test's own; `tortiectl lab up --runtime
//! podman --image localhost/tortie:latest` runs install-cni and then
//! tortie-node from it in a container per node, joined to the node's
//! namespace; the pods are wired with the plugins and the conflist
//! install-cni put into each node's CNI folders. Checks every session
//! Established, the full ping matrix, a Kubernetes NetworkPolicy enforced
//! by the agent in its container (`lab pod add` in a namespace, `lab
//! probe`), and that `lab down` leaves no container and no namespace of
//! the lab. Needs root, podman and runc.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Lab};

/// A podman storage of the test's own, unmounted and removed when dropped
/// (after the lab, which is declared later and so dropped first).
struct Storage {
    dir: tempfile::TempDir,
}

impl Storage {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt-podman-lab.")
            .tempdir_in("/var/tmp")
            .unwrap();
        let conf = dir.path().join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\npids_limit = 0\n",
        )
        .unwrap();
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `podman --root --runroot ARGS`.
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .arg("--cgroup-manager=cgroupfs")
            .args(args)
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .output()
            .unwrap()
    }

    /// `podman --root --runroot ARGS`, which must succeed; its stdout.
    fn podman(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every container in the storage, running or not.
    fn containers(&self) -> Vec<String> {
        self.podman(&["ps", "-a", "--no-trunc", "--format", "{{.ID}}"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // Whatever a failed test left, in this storage only.
        let _ = self.run(&["rm", "--all", "--force", "--time=0"]);
        // The storage's overlay mounts, deepest first, before the folder goes.
        let mounts = Command::new("findmnt")
            .args(["-rn", "-o", "TARGET"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let prefix = format!("{}/", self.dir.path().display());
        let mut ours: Vec<&str> = mounts.lines().filter(|m| m.starts_with(&prefix)).collect();
        ours.sort_unstable_by(|a, b| b.cmp(a));
        for m in ours {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_tortie-node"))
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        dir.join("tortie-cni").exists() && dir.join("tortiectl").exists(),
        "build first: cargo build -p tortiectl -p tortie-cni -p tortie-node"
    );
    dir
}

#[test]
#[ignore = "root: podman, network namespaces, a lab whose agents run in containers"]
fn a_podman_lab_runs_the_image_and_every_pod_reaches_every_pod() {
    let storage = Storage::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-image.sh");
    let built = Command::new("bash")
        .arg(&script)
        .arg("--root")
        .arg(storage.root())
        .arg("--runroot")
        .arg(storage.runroot())
        .arg("--binaries")
        .arg(bin_dir())
        .env(
            "CONTAINERS_CONF",
            storage.dir.path().join("containers.conf"),
        )
        .env_remove("TORTIE_IMAGE")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-image.sh: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(storage.containers().is_empty());

    let lab = Lab::new("lpod");
    let (root, runroot) = (storage.root(), storage.runroot());
    lab.up(&[
        "--runtime",
        "podman",
        "--image",
        "localhost/tortie:latest",
        "--podman-root",
        root.to_str().unwrap(),
        "--podman-runroot",
        runroot.to_str().unwrap(),
        "--nodes",
        "2",
        "--pods-per-node",
        "1",
        "--mode",
        "bgp",
    ]);

    let v = lab.status();
    assert_eq!(v["runtime"], "podman", "{v:#}");
    assert_eq!(v["image"], "localhost/tortie:latest", "{v:#}");
    // node1, node2 and the router: each agent a running container of the
    // image, none a process of the lab.
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{v:#}");
    let mut ids = Vec::new();
    for n in nodes {
        assert!(n["pid"].is_null(), "{n}");
        let id = n["container"].as_str().unwrap_or_else(|| panic!("{n}"));
        let f = "{{.State.Running}} {{.ImageName}} {{.HostConfig.NetworkMode}}";
        let got = storage.podman(&["inspect", "--format", f, id]);
        let netns = n["netns"].as_str().unwrap();
        assert_eq!(
            got.trim(),
            format!("true localhost/tortie:latest ns:/run/netns/{netns}"),
            "{n}"
        );
        ids.push(id.to_string());
    }
    ids.sort();
    let mut all = storage.containers();
    all.sort();
    assert_eq!(
        all, ids,
        "only the agents' containers exist (install-cni's removed)"
    );

    // install-cni from the image put the plugins and the conflist into
    // each node's folders, and the pods were wired with them.
    let dir = Path::new("/run/tortie-lab").join(&lab.name);
    for node in ["node1", "node2"] {
        let conflist = dir.join(node).join("etc-cni-net.d/10-tortie.conflist");
        let c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&conflist).unwrap()).unwrap();
        assert_eq!(c["plugins"][0]["nodename"], node, "{c:#}");
        for b in ["tortie", "tortie-ipam"] {
            assert!(dir.join(node).join("opt-cni-bin").join(b).is_file());
        }
    }
    // The agent's log, through podman's k8s-file driver, in the lab's folder.
    let log = std::fs::read_to_string(dir.join("node1.log")).unwrap();
    assert!(log.contains("tortie"), "node1.log: {log}");
    for p in lab.pods() {
        let state = dir.join(format!("cni-{}", p.node));
        assert!(
            state.is_dir(),
            "{}: the plugin from the conflist kept its state in {}",
            p.name,
            state.display()
        );
    }

    // Every BGP session Established, every FIB in sync, every pod reached.
    lab.wait_all_settled(Duration::from_secs(60));
    for n in lab.nodes() {
        let s = n.status.unwrap();
        assert_eq!(s.peers.len(), 2, "{}: {:?}", n.name, s.peers);
    }
    lab.assert_full_ping_matrix(2);

    // Network policy through the agent in the container (the image's
    // `nft`): a pod added in namespace shop, then a Kubernetes policy that
    // lets it be reached on TCP 80 only.
    lab.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    lab.ctl_ok(&[
        "lab",
        "pod",
        "add",
        "web",
        "--node",
        "node2",
        "--namespace",
        "shop",
        "--labels",
        "app=web",
    ]);
    let reach = |port: &str| -> Result<bool, String> {
        let out = lab.ctl(&[
            "lab",
            "probe",
            "default/node1-pod1",
            "shop/web",
            "--port",
            port,
        ]);
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    };
    wait_for(
        "shop/web reachable on 80 and 81",
        Duration::from_secs(30),
        || match (reach("80")?, reach("81")?) {
            (true, true) => Ok(()),
            other => Err(format!("80, 81: {other:?}")),
        },
    );
    lab.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-80, namespace: shop}\n\
         spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - ports: [{port: 80}]\n",
    );
    wait_for(
        "shop/web reachable on 80 only",
        Duration::from_secs(30),
        || match (reach("80")?, reach("81")?) {
            (true, false) => Ok(()),
            other => Err(format!("80, 81: {other:?}")),
        },
    );
    let node2_ns = lab.node("node2").netns;
    let table = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node2_ns,
            "nft",
            "list",
            "table",
            "inet",
            "tortie-policy",
        ])
        .output()
        .unwrap();
    assert!(
        table.status.success(),
        "no inet tortie-policy in {node2_ns}"
    );

    // `lab node stop` stops that node's container (it stays recorded).
    lab.ctl_ok(&["lab", "node", "stop", "node2"]);
    let node2 = lab.node("node2");
    assert!(node2.status.is_none(), "node2 still answers");
    let id2 = nodes.iter().find(|n| n["name"] == "node2").unwrap()["container"]
        .as_str()
        .unwrap();
    let running = storage.podman(&["inspect", "--format", "{{.State.Running}}", id2]);
    assert_eq!(running.trim(), "false");

    // lab down removes exactly the recorded containers and the namespaces.
    lab.ctl_ok(&["lab", "down"]);
    assert!(
        storage.containers().is_empty(),
        "{:?}",
        storage.containers()
    );
    let ns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !ns.lines().any(|l| l.starts_with(&format!("{}-", lab.name))),
        "{ns}"
    );
    assert!(!dir.exists());
}
