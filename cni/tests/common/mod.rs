//! Shared harness: a "node" (host namespace with an uplink to an underlay
//! namespace), pods as namespaces, and the plugin run exactly as a runtime
//! runs it (environment + config on stdin) inside the node's namespace.
#![allow(dead_code)]

pub mod store;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use tortie_testkit::{unique_prefix, Netns};

/// The plugin binary under test.
pub fn tortie_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tortie"))
}

/// The IPAM plugin binary under test.
pub fn tortie_ipam_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tortie-ipam"))
}

/// A CNI_PATH holding our plugins and the reference ones.
pub fn cni_path() -> String {
    let ours = tortie_bin().parent().unwrap().display().to_string();
    format!("{ours}:/usr/lib/cni")
}

/// What a plugin printed and how it exited.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub json: Value,
    pub stdout: String,
}

/// One plugin run's parameters.
pub struct Call<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: Option<&'a str>,
    pub pod: &'a str,
    pub ifname: &'a str,
    pub extra_env: &'a [(&'a str, &'a str)],
    /// `CNI_ARGS` as given (`Some("")`: none at all); `None`: Kubernetes
    /// args for pod `default/<pod>`.
    pub cni_args: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn new(
        command: &'a str,
        container_id: &'a str,
        netns: Option<&'a str>,
        pod: &'a str,
    ) -> Self {
        Self {
            command,
            container_id,
            netns,
            pod,
            ifname: "eth0",
            extra_env: &[],
            cni_args: None,
        }
    }

    /// A command about the whole network (STATUS, GC): no container, no
    /// interface, no CNI_ARGS, as a runtime sends it.
    pub fn network(command: &'a str) -> Self {
        Self {
            command,
            container_id: "",
            netns: None,
            pod: "",
            ifname: "",
            extra_env: &[],
            cni_args: None,
        }
    }
}

/// Runs `bin` in namespace `host` (or the current one when None) like a runtime does.
pub fn run_plugin(bin: &Path, host: Option<&str>, call: &Call<'_>, conf: &Value) -> Outcome {
    run_plugin_raw(bin, host, call, conf.to_string().as_bytes())
}

/// Like [`run_plugin`] with arbitrary stdin bytes.
pub fn run_plugin_raw(bin: &Path, host: Option<&str>, call: &Call<'_>, stdin: &[u8]) -> Outcome {
    let mut cmd = match host {
        Some(h) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", h]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", call.command)
        .env("CNI_PATH", cni_path());
    if !call.container_id.is_empty() {
        cmd.env("CNI_CONTAINERID", call.container_id)
            .env("CNI_IFNAME", call.ifname);
        match call.cni_args {
            None => {
                cmd.env(
                    "CNI_ARGS",
                    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}", call.pod, call.container_id),
                );
            }
            Some("") => {}
            Some(args) => {
                cmd.env("CNI_ARGS", args);
            }
        }
    }
    if let Some(ns) = call.netns {
        cmd.env("CNI_NETNS", ns);
    }
    for (k, v) in call.extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Outcome {
        ok: out.status.success(),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
    }
}

/// A node: host namespace with an uplink veth to an underlay namespace and a
/// default route over it (proxy ARP only answers for routable targets).
pub struct Node {
    pub prefix: String,
    pub host: Netns,
    pub underlay: Netns,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new(tag: &str) -> Self {
        let prefix = unique_prefix(tag);
        let host = Netns::create(&format!("{prefix}h")).unwrap();
        let underlay = Netns::create(&format!("{prefix}u")).unwrap();
        host.veth_to("up0", "10.98.0.1/30", &underlay, "dn0", "10.98.0.2/30")
            .unwrap();
        host.ip(&["route", "add", "default", "via", "10.98.0.2"])
            .unwrap();
        Self {
            prefix,
            host,
            underlay,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A pod namespace named `<prefix><name>`.
    pub fn pod(&self, name: &str) -> Netns {
        Netns::create(&format!("{}{}", self.prefix, name)).unwrap()
    }

    /// A tortie config with host-local IPAM over `subnet`, state under the temp dir.
    pub fn conf(&self, version: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "k8s-pod-network",
            "type": "tortie",
            "mtu": 0,
            "mtu_file": self.dir.path().join("mtu"),
            "state_dir": self.dir.path().join("state"),
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet}]],
                "dataDir": self.dir.path().join("host-local"),
            }
        })
    }

    /// Runs the tortie plugin in this node's host namespace.
    pub fn run(&self, call: &Call<'_>, conf: &Value) -> Outcome {
        run_plugin(&tortie_bin(), Some(self.host.name()), call, conf)
    }

    /// Files host-local keeps for allocated addresses.
    pub fn host_local_allocations(&self) -> Vec<String> {
        let d = self.dir.path().join("host-local/k8s-pod-network");
        std::fs::read_dir(d)
            .map(|e| {
                e.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_digit()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of `cali*` links in the host namespace.
    pub fn cali_links(&self) -> Vec<String> {
        self.host
            .ip_out(&["-o", "link", "show"])
            .unwrap()
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .filter(|n| n.starts_with("cali"))
            .collect()
    }
}

/// The pod address (without prefix length) of an ADD result.
pub fn pod_ip(result: &Value) -> String {
    let a = result["ips"][0]["address"]
        .as_str()
        .expect("ips[0].address");
    a.split('/').next().unwrap().to_string()
}

/// `conf` with `prevResult` set.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}
