//! First-start settings a node's manifest carries, applied once before the
//! agent starts (as calico-node's startup does):
//!
//! - **the default IPv4 pool** (calico-node's `CALICO_IPV4POOL_CIDR`,
//!   `_BLOCK_SIZE`, `_IPIP`, `_VXLAN`, `_NAT_OUTGOING`): when
//!   `--ipv4pool-cidr` is given and the datastore holds no IPPool at all,
//!   the IPPool `default-ipv4-ippool` is created. Every node of a
//!   DaemonSet starts with the same settings; the create is
//!   all-or-nothing on one name, so the first node creates it and the
//!   others find it. An existing pool of any name is left alone.
//! - **a route reflector's cluster id** (`--route-reflector-cluster-id`):
//!   set as this node's `spec.bgp.routeReflectorClusterID` when the Node has
//!   none (its first start, creating the Node if needed). A cluster id
//!   already on the Node — set by an operator with `tortiectl` — is never
//!   overwritten.
//!
//! With neither setting nothing is read or written. The decisions are pure
//! functions ([`default_pool`], [`cluster_id_change`]); [`run`] does the
//! datastore work.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use tortie_datastore::typed::{self, TypedError};
use tortie_datastore::{OpenOptions, Store, StoreError};
use tortie_model::{EncapMode, IpPool, Kind, Node, NodeBgpSpec, Resource};

/// Name of the pool created from `--ipv4pool-cidr` (calico-node's).
pub const DEFAULT_POOL_NAME: &str = "default-ipv4-ippool";

/// The bootstrap options of `tortie-node` (flags win over environment).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct BootstrapArgs {
    /// Create the IPPool default-ipv4-ippool with this CIDR when the
    /// datastore has no IPPool (calico-node's CALICO_IPV4POOL_CIDR).
    #[arg(long, env = "TORTIE_IPV4POOL_CIDR", value_parser = parse_cidr)]
    pub ipv4pool_cidr: Option<Ipv4Net>,
    /// Block size of that pool (default 26).
    #[arg(long, env = "TORTIE_IPV4POOL_BLOCK_SIZE")]
    pub ipv4pool_block_size: Option<u8>,
    /// ipipMode of that pool: Never (default), Always, CrossSubnet.
    #[arg(long, env = "TORTIE_IPV4POOL_IPIP", value_parser = parse_encap)]
    pub ipv4pool_ipip: Option<EncapMode>,
    /// vxlanMode of that pool: Never (default), Always, CrossSubnet.
    #[arg(long, env = "TORTIE_IPV4POOL_VXLAN", value_parser = parse_encap)]
    pub ipv4pool_vxlan: Option<EncapMode>,
    /// natOutgoing of that pool: true (default, as calico-node) or false.
    #[arg(long, env = "TORTIE_IPV4POOL_NAT_OUTGOING")]
    pub ipv4pool_nat_outgoing: Option<bool>,
    /// Set this Node's routeReflectorClusterID when it has none (a
    /// dedicated route reflector's first start); never overwrites one.
    #[arg(long, env = "TORTIE_ROUTE_REFLECTOR_CLUSTER_ID")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
}

fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 CIDR (e.g. 10.244.0.0/16)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set: write the network address, {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Calico's spellings: `Never`/`Off`, `Always`, `CrossSubnet`/`Cross-Subnet`.
fn parse_encap(s: &str) -> Result<EncapMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "never" | "off" => Ok(EncapMode::Never),
        "always" => Ok(EncapMode::Always),
        "crosssubnet" | "cross-subnet" => Ok(EncapMode::CrossSubnet),
        _ => Err(format!("{s:?} is not Never, Always or CrossSubnet")),
    }
}

/// Why the bootstrap failed (the agent does not start).
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The pool options make an invalid IPPool.
    #[error("the default IPv4 pool options are invalid:\n{0}")]
    InvalidPool(String),
    /// The datastore could not be opened.
    #[error("datastore: {0}")]
    Open(#[from] StoreError),
    /// A read or write failed.
    #[error("datastore: {0}")]
    Store(#[from] TypedError),
}

/// The option (flag and variable) that sets each IPPool field, for errors.
const POOL_OPTIONS: [(&str, &str); 5] = [
    ("spec.cidr", "--ipv4pool-cidr / TORTIE_IPV4POOL_CIDR"),
    (
        "spec.blockSize",
        "--ipv4pool-block-size / TORTIE_IPV4POOL_BLOCK_SIZE",
    ),
    ("spec.ipipMode", "--ipv4pool-ipip / TORTIE_IPV4POOL_IPIP"),
    ("spec.vxlanMode", "--ipv4pool-vxlan / TORTIE_IPV4POOL_VXLAN"),
    (
        "spec.natOutgoing",
        "--ipv4pool-nat-outgoing / TORTIE_IPV4POOL_NAT_OUTGOING",
    ),
];

/// The pool to create when the datastore has none (`None` without
/// `--ipv4pool-cidr`), validated as `tortiectl create` would; errors name
/// the option.
pub fn default_pool(args: &BootstrapArgs) -> Result<Option<IpPool>, BootstrapError> {
    let Some(cidr) = args.ipv4pool_cidr else {
        return Ok(None);
    };
    let mut pool = IpPool::new(DEFAULT_POOL_NAME, IpNet::V4(cidr));
    pool.spec.block_size = args.ipv4pool_block_size;
    pool.spec.ipip_mode = args.ipv4pool_ipip;
    pool.spec.vxlan_mode = args.ipv4pool_vxlan;
    pool.spec.nat_outgoing = args.ipv4pool_nat_outgoing.unwrap_or(true);
    let errors = Resource::IpPool(pool.clone()).defaulted().validate();
    if errors.is_empty() {
        return Ok(Some(pool));
    }
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            let option = POOL_OPTIONS
                .iter()
                .find(|(field, _)| e.path.ends_with(field))
                .map_or("", |(_, o)| *o);
            format!("{option}: {e}")
        })
        .collect();
    Err(BootstrapError::InvalidPool(lines.join("\n")))
}

/// What to do with this node's Node for the cluster id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterIdChange {
    /// The Node is missing: create it with the cluster id.
    Create(Node),
    /// The Node has no cluster id: write it (compare-and-swap on the read).
    Set(Node),
    /// The Node already has this cluster id.
    AlreadySet,
    /// The Node has another cluster id, which is kept.
    KeepOther(Ipv4Addr),
}

/// The change `--route-reflector-cluster-id want` calls for on `existing`.
pub fn cluster_id_change(
    existing: Option<&Node>,
    name: &str,
    node_ip: IpNet,
    want: Ipv4Addr,
) -> ClusterIdChange {
    let Some(node) = existing else {
        let mut node = Node::new(name.to_string());
        node.spec.bgp = Some(NodeBgpSpec {
            ipv4_address: Some(node_ip),
            route_reflector_cluster_id: Some(want),
            ..NodeBgpSpec::default()
        });
        return ClusterIdChange::Create(node);
    };
    match node
        .spec
        .bgp
        .as_ref()
        .and_then(|b| b.route_reflector_cluster_id)
    {
        Some(have) if have == want => ClusterIdChange::AlreadySet,
        Some(have) => ClusterIdChange::KeepOther(have),
        None => {
            let mut node = node.clone();
            let bgp = node.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
            bgp.route_reflector_cluster_id = Some(want);
            if bgp.ipv4_address.is_none() && bgp.ipv6_address.is_none() {
                bgp.ipv4_address = Some(node_ip);
            }
            ClusterIdChange::Set(node)
        }
    }
}

/// Applies the bootstrap settings for node `node_name` (address
/// `node_ip`) on the datastore `url`. Does nothing without settings.
pub async fn run(
    args: &BootstrapArgs,
    url: &str,
    options: &OpenOptions,
    node_name: &str,
    node_ip: IpNet,
) -> Result<(), BootstrapError> {
    let pool = default_pool(args)?;
    if pool.is_none() && args.route_reflector_cluster_id.is_none() {
        return Ok(());
    }
    let store = tortie_datastore::open(url, options).await?;
    if let Some(pool) = pool {
        ensure_pool(store.as_ref(), pool).await?;
    }
    if let Some(want) = args.route_reflector_cluster_id {
        ensure_cluster_id(store.as_ref(), node_name, node_ip, want).await?;
    }
    Ok(())
}

async fn ensure_pool(store: &dyn Store, pool: IpPool) -> Result<(), BootstrapError> {
    let existing = typed::list(store, Kind::IpPool, None).await?;
    if !existing.is_empty() {
        tracing::info!(
            pools = existing.len(),
            "IPPools exist: not creating {DEFAULT_POOL_NAME}"
        );
        return Ok(());
    }
    let cidr = pool.spec.cidr;
    match typed::create(store, vec![Resource::IpPool(pool)]).await {
        Ok(_) => {
            tracing::info!(%cidr, "created IPPool {DEFAULT_POOL_NAME} (no IPPool existed)");
            Ok(())
        }
        Err(TypedError::AlreadyExists { .. }) => {
            tracing::info!("IPPool {DEFAULT_POOL_NAME} was just created by another node");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn ensure_cluster_id(
    store: &dyn Store,
    name: &str,
    node_ip: IpNet,
    want: Ipv4Addr,
) -> Result<(), BootstrapError> {
    // A concurrent writer of our Node (an operator's tortiectl) makes the
    // compare-and-swap fail; read again and decide again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let existing = match typed::get(store, Kind::Node, None, name).await {
            Ok(Resource::Node(n)) => Some(n),
            Ok(_) | Err(TypedError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let written = match cluster_id_change(existing.as_ref(), name, node_ip, want) {
            ClusterIdChange::AlreadySet => return Ok(()),
            ClusterIdChange::KeepOther(have) => {
                tracing::warn!(
                    node = name,
                    current = %have,
                    requested = %want,
                    "Node already has routeReflectorClusterID {have}: keeping it (the option applies on first start only)"
                );
                return Ok(());
            }
            ClusterIdChange::Create(node) => typed::create(store, vec![Resource::Node(node)]).await,
            ClusterIdChange::Set(node) => typed::replace(store, vec![Resource::Node(node)]).await,
        };
        match written {
            Ok(_) => {
                tracing::info!(node = name, cluster_id = %want, "set routeReflectorClusterID");
                return Ok(());
            }
            Err(TypedError::Conflict { .. } | TypedError::AlreadyExists { .. }) if attempt < 5 => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        b: BootstrapArgs,
    }

    fn args(a: &[&str]) -> Result<BootstrapArgs, clap::Error> {
        let mut v = vec!["tortie-node"];
        v.extend_from_slice(a);
        Cli::try_parse_from(v).map(|c| c.b)
    }

    fn ip() -> IpNet {
        "10.0.1.5/24".parse().unwrap()
    }

    #[test]
    fn no_cidr_means_no_pool() {
        assert_eq!(default_pool(&BootstrapArgs::default()).unwrap(), None);
    }

    #[test]
    fn the_pool_takes_calico_node_defaults() {
        let a = args(&["--ipv4pool-cidr", "10.244.0.0/16"]).unwrap();
        let p = default_pool(&a).unwrap().unwrap();
        assert_eq!(p.metadata.name, "default-ipv4-ippool");
        assert_eq!(p.spec.cidr.to_string(), "10.244.0.0/16");
        assert_eq!(p.spec.block_size(), 26);
        assert_eq!(p.spec.ipip_mode(), EncapMode::Never);
        assert_eq!(p.spec.vxlan_mode(), EncapMode::Never);
        assert!(p.spec.nat_outgoing);
    }

    #[test]
    fn every_pool_option_reaches_the_pool() {
        let a = args(&[
            "--ipv4pool-cidr",
            "10.96.0.0/12",
            "--ipv4pool-block-size",
            "24",
            "--ipv4pool-vxlan",
            "CrossSubnet",
            "--ipv4pool-ipip",
            "never",
            "--ipv4pool-nat-outgoing",
            "false",
        ])
        .unwrap();
        let p = default_pool(&a).unwrap().unwrap();
        assert_eq!(p.spec.block_size, Some(24));
        assert_eq!(p.spec.vxlan_mode, Some(EncapMode::CrossSubnet));
        assert_eq!(p.spec.ipip_mode, Some(EncapMode::Never));
        assert!(!p.spec.nat_outgoing);
    }

    #[test]
    fn bad_values_are_refused_with_the_option_named() {
        let e = args(&["--ipv4pool-cidr", "10.244.1.0/16"]).unwrap_err();
        assert!(e.to_string().contains("10.244.0.0/16"), "{e}");
        let e = args(&["--ipv4pool-cidr", "fd00::/48"]).unwrap_err();
        assert!(e.to_string().contains("not an IPv4 CIDR"), "{e}");
        let e = args(&["--ipv4pool-ipip", "sometimes"]).unwrap_err();
        assert!(e.to_string().contains("CrossSubnet"), "{e}");

        let both = args(&[
            "--ipv4pool-cidr",
            "10.244.0.0/16",
            "--ipv4pool-ipip",
            "Always",
            "--ipv4pool-vxlan",
            "Always",
        ])
        .unwrap();
        let e = default_pool(&both).unwrap_err().to_string();
        assert!(
            e.contains("TORTIE_IPV4POOL_IPIP") && e.contains("vxlanMode"),
            "{e}"
        );

        let small = args(&[
            "--ipv4pool-cidr",
            "10.244.0.0/16",
            "--ipv4pool-block-size",
            "19",
        ])
        .unwrap();
        let e = default_pool(&small).unwrap_err().to_string();
        assert!(
            e.contains("TORTIE_IPV4POOL_BLOCK_SIZE") && e.contains("19"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_node_is_created_with_the_cluster_id() {
        let want: Ipv4Addr = "244.0.0.1".parse().unwrap();
        let ClusterIdChange::Create(n) = cluster_id_change(None, "rr1", ip(), want) else {
            panic!("expected Create");
        };
        let bgp = n.spec.bgp.unwrap();
        assert_eq!(bgp.route_reflector_cluster_id, Some(want));
        assert_eq!(bgp.ipv4_address, Some(ip()));
        assert_eq!(n.metadata.name, "rr1");
    }

    #[test]
    fn a_node_without_a_cluster_id_gets_it_and_keeps_the_rest() {
        let mut node = Node::new("rr1".to_string());
        node.metadata
            .labels
            .insert("route-reflector".into(), "true".into());
        node.spec.bgp = Some(NodeBgpSpec {
            ipv4_address: Some("10.9.9.9/16".parse().unwrap()),
            ..NodeBgpSpec::default()
        });
        let want: Ipv4Addr = "244.0.0.1".parse().unwrap();
        let ClusterIdChange::Set(n) = cluster_id_change(Some(&node), "rr1", ip(), want) else {
            panic!("expected Set");
        };
        let bgp = n.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.route_reflector_cluster_id, Some(want));
        assert_eq!(bgp.ipv4_address.unwrap().to_string(), "10.9.9.9/16");
        assert_eq!(n.metadata.labels, node.metadata.labels);
    }

    #[test]
    fn an_existing_cluster_id_is_never_overwritten() {
        let mut node = Node::new("rr1".to_string());
        let have: Ipv4Addr = "244.0.0.7".parse().unwrap();
        node.spec.bgp = Some(NodeBgpSpec {
            ipv4_address: Some(ip()),
            route_reflector_cluster_id: Some(have),
            ..NodeBgpSpec::default()
        });
        let other: Ipv4Addr = "244.0.0.1".parse().unwrap();
        assert_eq!(
            cluster_id_change(Some(&node), "rr1", ip(), other),
            ClusterIdChange::KeepOther(have)
        );
        assert_eq!(
            cluster_id_change(Some(&node), "rr1", ip(), have),
            ClusterIdChange::AlreadySet
        );
    }
}
