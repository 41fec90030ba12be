//! `tortie-node --cleanup`: takes tortie off this node. Reads the datastore
//! for what tortie owns here (pools, the Node's addresses, the protocol
//! numbers of its FelixConfiguration), then removes felix's kernel state
//! (`tortie_felix_dataplane::cleanup`: routes of our numbers inside our
//! prefixes, the VXLAN device, our tunl0 address, the nftables tables, the
//! MTU file) and the CNI files a tortie installation puts on a node: the
//! `tortie` and `tortie-ipam` plugins, network configurations whose
//! plugins include `"type": "tortie"`, and the plugin's state folder (only
//! when no pod is attached any more). Everything else stays, and is listed
//! when it carries one of our numbers.
//!
//! Refuses while a tortie-node answers on the control socket (it would put
//! everything back).

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_felix::owned_prefixes;
use tortie_felix_dataplane::cleanup::{cleanup, CleanupPlan, CleanupReport};
use tortie_model::{Kind, Resource};

use crate::feed::{felix_input, FeedContext};
use crate::felixcfg::{effective, DataplaneSettings};
use crate::snapshot::{node_addr, Snapshot};

/// The CNI plugin's state folder (its default `state_dir`).
pub const DEFAULT_CNI_STATE_DIR: &str = "/var/lib/tortie/cni";

/// What the clean-up needs.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// Datastore URL.
    pub datastore: String,
    /// Backend options.
    pub options: OpenOptions,
    /// This node's name.
    pub node_name: String,
    /// This node's IP (else the Node resource's).
    pub node_ip: Option<IpNet>,
    /// felix's MTU file.
    pub mtu_file: PathBuf,
    /// Route protocol numbers to remove besides the configured ones (e.g. 186 of tortie 0.1).
    pub extra_protocols: Vec<u8>,
    /// Where the CNI plugins are installed.
    pub cni_bin_dir: PathBuf,
    /// Where the CNI network configurations are.
    pub cni_conf_dir: PathBuf,
    /// The CNI plugin's state folder.
    pub cni_state_dir: PathBuf,
    /// The control socket of a running tortie-node.
    pub control_socket: PathBuf,
}

/// Why the clean-up stopped.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The agent still runs.
    #[error("tortie-node is running (its control socket {0} answers): stop it first, or it puts everything back")]
    AgentRunning(PathBuf),
    /// The datastore could not be read.
    #[error("cannot read what tortie owns from the datastore {url}: {why}")]
    Datastore {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// The kernel state could not be removed.
    #[error(transparent)]
    Kernel(#[from] tortie_felix_dataplane::FelixError),
    /// A file could not be removed.
    #[error("cannot remove {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What the clean-up did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The kernel part.
    pub kernel: CleanupReport,
    /// CNI files removed.
    pub cni_removed: Vec<PathBuf>,
    /// Pods still attached (the state folder was kept).
    pub pods_attached: usize,
}

/// The Nodes, IP pools and FelixConfigurations: what says what tortie owns here.
fn read_snapshot(cfg: &CleanupConfig) -> Result<Snapshot, CleanupError> {
    let err = |why: String| CleanupError::Datastore {
        url: cfg.datastore.clone(),
        why,
    };
    let store =
        BlockingStore::open(&cfg.datastore, &cfg.options).map_err(|e| err(e.to_string()))?;
    let mut snap = Snapshot::default();
    for kind in [Kind::Node, Kind::IpPool, Kind::FelixConfiguration] {
        let all = store
            .block_on(typed::list(store.store().as_ref(), kind, None))
            .map_err(|e| err(e.to_string()))?;
        for r in all {
            match r {
                Resource::Node(n) => snap.nodes.push(n),
                Resource::IpPool(p) => snap.pools.push(p),
                Resource::FelixConfiguration(f) => snap.felix_configs.push(f),
                _ => {}
            }
        }
    }
    Ok(snap)
}

/// The kernel plan: our numbers (configured and extra) and our prefixes.
fn plan(cfg: &CleanupConfig, snap: &Snapshot) -> CleanupPlan {
    let node_ip = cfg.node_ip.or_else(|| {
        let n = snap.node(&cfg.node_name)?;
        let ip = node_addr(n)?;
        let len = if ip.is_ipv4() { 32 } else { 128 };
        IpNet::new(ip, len).ok()
    });
    let settings = DataplaneSettings::from_spec(&effective(&snap.felix_configs, &cfg.node_name));
    let config = crate::dataplane::felix_config(&cfg.mtu_file, &settings);
    let mut protocols = config.protocols().to_vec();
    protocols.extend(&cfg.extra_protocols);
    let prefixes = match node_ip {
        Some(ip) => {
            let ctx = FeedContext {
                me: &cfg.node_name,
                node_ip: ip,
                connected: &[],
            };
            owned_prefixes(&felix_input(snap, ctx, &Default::default()))
        }
        None => snap.pools.iter().map(|p| p.spec.cidr.trunc()).collect(),
    };
    CleanupPlan {
        config,
        netns: None,
        protocols,
        prefixes,
        nat: crate::dataplane::nft_present(),
    }
}

/// True if `conf` is a CNI network configuration that uses tortie's plugin.
fn is_tortie_conf(conf: &serde_json::Value) -> bool {
    let is_tortie = |p: &serde_json::Value| p["type"].as_str() == Some("tortie");
    is_tortie(conf)
        || conf["plugins"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(is_tortie))
}

fn remove(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), CleanupError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            out.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CleanupError::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn remove_cni_files(cfg: &CleanupConfig, report: &mut Report) -> Result<(), CleanupError> {
    for bin in ["tortie", "tortie-ipam"] {
        remove(&cfg.cni_bin_dir.join(bin), &mut report.cni_removed)?;
    }
    let confs = std::fs::read_dir(&cfg.cni_conf_dir)
        .into_iter()
        .flatten()
        .flatten();
    for entry in confs {
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("conf" | "conflist" | "json")) || !path.is_file() {
            continue;
        }
        let conf = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if conf.as_ref().is_some_and(is_tortie_conf) {
            remove(&path, &mut report.cni_removed)?;
        }
    }
    let attachments = cfg.cni_state_dir.join("attachments");
    report.pods_attached = std::fs::read_dir(&attachments)
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    if report.pods_attached == 0 && cfg.cni_state_dir.is_dir() {
        std::fs::remove_dir_all(&cfg.cni_state_dir).map_err(|source| CleanupError::File {
            path: cfg.cni_state_dir.clone(),
            source,
        })?;
        report.cni_removed.push(cfg.cni_state_dir.clone());
    }
    Ok(())
}

/// Runs the clean-up.
pub fn run(cfg: &CleanupConfig) -> Result<Report, CleanupError> {
    let status = tortie_node_api::query(&cfg.control_socket, &tortie_node_api::Request::Status);
    if status.is_ok() {
        return Err(CleanupError::AgentRunning(cfg.control_socket.clone()));
    }
    let snap = read_snapshot(cfg)?;
    let plan = plan(cfg, &snap);
    tracing::info!(protocols = ?plan.protocols, prefixes = ?plan.prefixes, "removing tortie's kernel state");
    let mut report = Report {
        kernel: cleanup(&plan)?,
        ..Report::default()
    };
    remove_cni_files(cfg, &mut report)?;
    Ok(report)
}

/// The report in words, one line per item.
pub fn describe(r: &Report) -> Vec<String> {
    let k = &r.kernel;
    let mut out = vec![format!("removed {} routes", k.routes_removed)];
    if k.vxlan_removed {
        out.push("removed the VXLAN device".into());
    }
    if k.tunl0_addresses_removed > 0 {
        out.push(format!(
            "removed {} address(es) from tunl0 (the device stays: the kernel's)",
            k.tunl0_addresses_removed
        ));
    }
    if k.nat_removed {
        out.push("removed the nftables tables".into());
    }
    if k.mtu_file_removed {
        out.push("removed the MTU file".into());
    }
    for p in &r.cni_removed {
        out.push(format!("removed {}", p.display()));
    }
    if r.pods_attached > 0 {
        out.push(format!(
            "kept the CNI state folder: {} pod(s) still attached (delete them first)",
            r.pods_attached
        ));
    }
    for dst in &k.routes_left {
        out.push(format!(
            "left {dst}: it carries one of our protocol numbers but lies outside tortie's prefixes"
        ));
    }
    out.push(
        "left the sysctls (ip_forward stays on: other programs on the node rely on it)".into(),
    );
    out
}
