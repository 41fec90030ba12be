//! tortie-node: the per-node agent (see the library's documentation).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use tortie_bgp_speaker::ShutdownMode;
use tortie_datastore::{EtcdTls, OpenOptions, DEFAULT_DATASTORE};
use tortie_node::agent::{self, AgentConfig};
use tortie_node::autodetect::{self, AutodetectMethod, Ip6Setting, IpFamily, NodeIpSetting};
use tortie_node::cleanup::{self, CleanupConfig, DEFAULT_CNI_STATE_DIR};
use tortie_node::logs::{self, LogControl};

/// Whether tortie-node programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DataplaneKind {
    /// felix programs routes, devices and sysctls.
    Linux,
    /// BGP only (a dedicated route reflector).
    None,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Plain text; colours only when stderr is a terminal.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// How BGP sessions end on SIGTERM / SIGINT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StopMode {
    /// A Cease (Administrative Shutdown) NOTIFICATION: peers drop our routes.
    Cease,
    /// Close without a NOTIFICATION: peers keep our routes for the restart
    /// (RFC 4724), for a planned restart or upgrade.
    GracefulRestart,
}

/// Command-line options (flags win over environment).
#[derive(Debug, Parser)]
#[command(
    name = "tortie-node",
    version,
    about = "tortie per-node agent: BGP + felix + status API"
)]
struct Args {
    /// Datastore: sqlite:///path or etcd://h1:2379[,h2:2379].
    #[arg(long, env = "TORTIE_DATASTORE", default_value = DEFAULT_DATASTORE)]
    datastore: String,
    /// CA bundle (PEM) for TLS to etcd.
    #[arg(long, env = "TORTIE_ETCD_CA")]
    etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for TLS to etcd.
    #[arg(long, env = "TORTIE_ETCD_CERT")]
    etcd_cert: Option<PathBuf>,
    /// Client key (PEM) for TLS to etcd.
    #[arg(long, env = "TORTIE_ETCD_KEY")]
    etcd_key: Option<PathBuf>,
    /// This node's name (default: the hostname).
    #[arg(long, env = "TORTIE_NODENAME")]
    node_name: Option<String>,
    /// This node's IP, e.g. 10.0.1.5/24, or bare (10.0.1.5: the prefix
    /// length is taken from the interface holding it). Default: autodetect.
    #[arg(long, env = "TORTIE_NODE_IP")]
    node_ip: Option<NodeIpSetting>,
    /// first-found, interface=REGEX, skip-interface=REGEX, cidr=CIDR[,CIDR], can-reach=IP.
    #[arg(long, env = "TORTIE_IP_AUTODETECT", default_value = "first-found")]
    ip_autodetect: AutodetectMethod,
    /// IPv6 node address (Calico's IP6): none, autodetect, or an IPv6 CIDR.
    #[arg(long, env = "TORTIE_IP6", default_value = "none")]
    ip6: Ip6Setting,
    /// IPv6 autodetection method (Calico's IP6_AUTODETECTION_METHOD), as --ip-autodetect.
    #[arg(long, env = "TORTIE_IP6_AUTODETECT", default_value = "first-found")]
    ip6_autodetect: AutodetectMethod,
    /// Status API socket.
    #[arg(long, env = "TORTIE_CONTROL_SOCKET", default_value = tortie_node::api::DEFAULT_CONTROL_SOCKET)]
    control_socket: PathBuf,
    /// Address of /metrics, /livez, /readyz.
    #[arg(long, env = "TORTIE_HTTP_ADDR", default_value = "127.0.0.1:9099")]
    http_addr: SocketAddr,
    /// tracing filter.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// text (colour only on a terminal) or json.
    #[arg(long, env = "TORTIE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// linux (program the kernel) or none (BGP only).
    #[arg(long, env = "TORTIE_DATAPLANE", value_enum, default_value = "linux")]
    dataplane: DataplaneKind,
    /// BGP port (default: BGPConfiguration listenPort, else 179).
    #[arg(long, env = "TORTIE_BGP_PORT")]
    bgp_port: Option<u16>,
    /// File felix writes the pod MTU to (read by the CNI plugin).
    #[arg(long, env = "TORTIE_MTU_FILE", default_value = "/var/lib/calico/mtu")]
    mtu_file: PathBuf,
    /// How BGP sessions end on SIGTERM / SIGINT.
    #[arg(
        long,
        env = "TORTIE_SHUTDOWN_MODE",
        value_enum,
        default_value = "cease"
    )]
    shutdown_mode: StopMode,
    /// Where BGP password references resolve: secretKeyRef {name, key} is
    /// the file DIR/<name>/<key> (a Kubernetes secret volume's layout).
    #[arg(long, env = "TORTIE_SECRETS_DIR", default_value = tortie_node::secrets::DEFAULT_SECRETS_DIR)]
    secrets_dir: PathBuf,
    /// Take tortie off this node and exit: routes, devices, nftables
    /// tables, MTU file and CNI files (see docs/node.md).
    #[arg(long)]
    cleanup: bool,
    /// With --cleanup: also remove routes of this protocol number inside
    /// tortie's prefixes (e.g. 186, which tortie 0.1 gave BGP routes).
    #[arg(long, requires = "cleanup", value_name = "N")]
    cleanup_protocol: Vec<u8>,
    /// With --cleanup: where the CNI plugins are installed.
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// With --cleanup: where the CNI network configurations are.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// With --cleanup: the CNI plugin's state folder.
    #[arg(long, default_value = DEFAULT_CNI_STATE_DIR)]
    cni_state_dir: PathBuf,
    #[command(flatten)]
    bootstrap: tortie_node::bootstrap::BootstrapArgs,
}

fn hostname() -> anyhow::Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read the hostname; pass --node-name")?;
    Ok(h.trim().to_string())
}

fn options(a: &Args) -> anyhow::Result<OpenOptions> {
    tortie_datastore::DatastoreUrl::parse(&a.datastore)
        .map_err(|e| anyhow::anyhow!("--datastore: {e}"))?;
    let mut options = OpenOptions::default();
    options.etcd.tls = EtcdTls {
        ca: a.etcd_ca.clone(),
        cert: a.etcd_cert.clone(),
        key: a.etcd_key.clone(),
    };
    Ok(options)
}

fn node_ip(a: &Args) -> anyhow::Result<ipnet::IpNet> {
    match a.node_ip {
        Some(s) => Ok(s.resolve(&autodetect::read_interfaces()?)?),
        None => match autodetect::detect(&a.ip_autodetect)? {
            Some(ip) => Ok(ip),
            None => bail!("no IPv4 address found with --ip-autodetect; pass --node-ip CIDR"),
        },
    }
}

fn config(a: Args, logs: LogControl) -> anyhow::Result<AgentConfig> {
    let node_name = match &a.node_name {
        Some(n) => n.clone(),
        None => hostname()?,
    };
    let node_ip = node_ip(&a)?;
    let node_ip6 = match a.ip6 {
        Ip6Setting::None => None,
        Ip6Setting::Address(n) => Some(n),
        Ip6Setting::Autodetect => {
            match autodetect::detect_family(IpFamily::V6, &a.ip6_autodetect)? {
                Some(ip) => Some(ip),
                None => bail!(
                    "--ip6 autodetect: no IPv6 address found with --ip6-autodetect; pass --ip6 CIDR or --ip6 none"
                ),
            }
        }
    };
    let options = options(&a)?;
    Ok(AgentConfig {
        datastore: a.datastore,
        options,
        node_name,
        node_ip,
        node_ip6,
        bgp_port: a.bgp_port,
        control_socket: a.control_socket,
        http_addr: a.http_addr,
        dataplane: a.dataplane == DataplaneKind::Linux,
        mtu_file: a.mtu_file,
        shutdown: match a.shutdown_mode {
            StopMode::Cease => ShutdownMode::Cease,
            StopMode::GracefulRestart => ShutdownMode::GracefulRestart,
        },
        secrets_dir: a.secrets_dir,
        logs: Some(logs),
    })
}

fn cleanup_config(a: Args) -> anyhow::Result<CleanupConfig> {
    let node_name = match &a.node_name {
        Some(n) => n.clone(),
        None => hostname()?,
    };
    let node_ip = match a.node_ip {
        Some(s) => Some(s.resolve(&autodetect::read_interfaces()?)?),
        None => None,
    };
    Ok(CleanupConfig {
        options: options(&a)?,
        datastore: a.datastore,
        node_name,
        node_ip,
        mtu_file: a.mtu_file,
        extra_protocols: a.cleanup_protocol,
        cni_bin_dir: a.cni_bin_dir,
        cni_conf_dir: a.cni_conf_dir,
        cni_state_dir: a.cni_state_dir,
        control_socket: a.control_socket,
    })
}

/// Starts the subscriber; the handle lets BGPConfiguration
/// `logSeverityScreen` change the BGP crates' level at run time.
fn init_logs(level: &str, format: LogFormat) -> LogControl {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(logs::filter(level, None));
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry
            .with(fmt.with_ansi(std::io::stderr().is_terminal()))
            .init(),
        LogFormat::Json => registry.with(fmt.json()).init(),
    }
    LogControl::new(level, handle)
}

fn run_cleanup(a: Args) -> anyhow::Result<()> {
    let cfg = cleanup_config(a)?;
    let report = cleanup::run(&cfg)?;
    for line in cleanup::describe(&report) {
        println!("{line}");
    }
    Ok(())
}

fn run_agent(a: Args, logs: LogControl) -> anyhow::Result<()> {
    let boot = a.bootstrap.clone();
    let cfg = config(a, logs)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let result = rt.block_on(async {
        let (ds, opts) = (&cfg.datastore, &cfg.options);
        tortie_node::bootstrap::run(&boot, ds, opts, &cfg.node_name, cfg.node_ip).await?;
        agent::run(cfg).await.map_err(anyhow::Error::from)
    });
    // Blocking work still running (a datastore call that did not return in
    // time) must not hold the exit back.
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let logs = init_logs(&args.log_level, args.log_format);
    let result = if args.cleanup {
        run_cleanup(args)
    } else {
        run_agent(args, logs)
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tortie-node: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
