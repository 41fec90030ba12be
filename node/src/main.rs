//! tortie-node: the per-node agent (see the library's documentation).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use ipnet::IpNet;
use tortie_datastore::{EtcdTls, OpenOptions, DEFAULT_DATASTORE};
use tortie_node::agent::{self, AgentConfig};
use tortie_node::autodetect::{self, AutodetectMethod, Ip6Setting, IpFamily};

/// Whether tortie-node programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DataplaneKind {
    /// felix programs routes, devices and sysctls.
    Linux,
    /// BGP only (a dedicated route reflector).
    None,
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
    /// This node's IP with prefix length, e.g. 10.0.1.5/24 (default: autodetect).
    #[arg(long, env = "TORTIE_NODE_IP")]
    node_ip: Option<IpNet>,
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
    /// linux (program the kernel) or none (BGP only).
    #[arg(long, env = "TORTIE_DATAPLANE", value_enum, default_value = "linux")]
    dataplane: DataplaneKind,
    /// BGP port (default: BGPConfiguration listenPort, else 179).
    #[arg(long, env = "TORTIE_BGP_PORT")]
    bgp_port: Option<u16>,
    /// File felix writes the pod MTU to (read by the CNI plugin).
    #[arg(long, env = "TORTIE_MTU_FILE", default_value = "/var/lib/calico/mtu")]
    mtu_file: PathBuf,
}

fn hostname() -> anyhow::Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read the hostname; pass --node-name")?;
    Ok(h.trim().to_string())
}

fn config(a: Args) -> anyhow::Result<AgentConfig> {
    let node_name = match a.node_name {
        Some(n) => n,
        None => hostname()?,
    };
    let node_ip = match a.node_ip {
        Some(ip) => ip,
        None => match autodetect::detect(&a.ip_autodetect)? {
            Some(ip) => ip,
            None => bail!("no IPv4 address found with --ip-autodetect; pass --node-ip CIDR"),
        },
    };
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
    tortie_datastore::DatastoreUrl::parse(&a.datastore)
        .map_err(|e| anyhow::anyhow!("--datastore: {e}"))?;
    let mut options = OpenOptions::default();
    options.etcd.tls = EtcdTls {
        ca: a.etcd_ca,
        cert: a.etcd_cert,
        key: a.etcd_key,
    };
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
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = config(args).and_then(|cfg| {
        let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
        rt.block_on(agent::run(cfg)).map_err(anyhow::Error::from)
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tortie-node: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
