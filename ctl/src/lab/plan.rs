//! The lab's layout, computed before anything is created: namespaces,
//! addresses, node names, pool and CNI configuration, and for an etcd
//! datastore the relay that lets the namespaces reach it. Pure.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tortie_datastore::DatastoreUrl;

/// How pods of different nodes reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plain routing learned over BGP (the router namespace runs tortie-node too).
    Bgp,
    /// IPIP between subnets (needs the ipip kernel module).
    IpipCrosssubnet,
    /// VXLAN between all nodes.
    Vxlan,
    /// VXLAN between subnets, plain routing within one.
    VxlanCrosssubnet,
}

impl Mode {
    /// The IPPool's `ipipMode` and `vxlanMode`.
    pub fn pool_modes(self) -> (&'static str, &'static str) {
        match self {
            Mode::Bgp => ("Never", "Never"),
            Mode::IpipCrosssubnet => ("CrossSubnet", "Never"),
            Mode::Vxlan => ("Never", "Always"),
            Mode::VxlanCrosssubnet => ("Never", "CrossSubnet"),
        }
    }

    /// Pod MTU for a 1500-byte underlay.
    pub fn pod_mtu(self) -> u32 {
        match self {
            Mode::Bgp => 1500,
            Mode::IpipCrosssubnet => 1480,
            Mode::Vxlan | Mode::VxlanCrosssubnet => 1450,
        }
    }

    /// The router takes part in BGP only when nothing encapsulates.
    pub fn router_runs_bgp(self) -> bool {
        self == Mode::Bgp
    }
}

/// How each lab node runs its agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// `tortie-node` from tortiectl's own folder, a process in the node's namespace.
    #[default]
    Process,
    /// `tortie-node` from the image in a podman container that joins the
    /// node's namespace, after install-cni from the same image (as the
    /// DaemonSet runs them).
    Podman,
}

/// What `--runtime podman` runs and where podman keeps its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodmanPlan {
    /// The image (`localhost/tortie:latest`).
    pub image: String,
    /// podman `--root` (`None`: podman's own storage).
    pub root: Option<PathBuf>,
    /// podman `--runroot`.
    pub runroot: Option<PathBuf>,
    /// The `CONTAINERS_CONF` every podman call of the lab gets: the
    /// caller's, or one of the lab's own in its folder.
    pub containers_conf: PathBuf,
}

/// Where the lab puts its state.
pub const STATE_ROOT: &str = "/run/tortie-lab";

/// The pool every lab uses.
pub const POOL_CIDR: &str = "10.244.0.0/16";

/// One node of the lab (or the router when it runs tortie-node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// Node name in the datastore (`node1`, ..., `router`).
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Its underlay subnet (1 or 2).
    pub subnet: u8,
    /// Its IP with prefix length.
    pub ip: String,
    /// Router-side veth name.
    pub router_if: String,
    /// Control socket.
    pub control_socket: PathBuf,
    /// Log file.
    pub log: PathBuf,
    /// MTU file felix writes.
    pub mtu_file: PathBuf,
}

fn default_namespace() -> String {
    "default".into()
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPlan {
    /// Pod name, unique in its namespace (`node1-pod1` for those of `lab up`).
    pub name: String,
    /// Its Kubernetes namespace (`default` for those of `lab up`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Its labels (given to the CNI plugin as `args.cni.labels`).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its namespace.
    pub netns: String,
    /// Its node's name.
    pub node: String,
    /// Its node's namespace (where the CNI plugin runs).
    pub node_netns: String,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Lab name (namespace prefix).
    pub name: String,
    /// Mode.
    pub mode: Mode,
    /// Datastore URL.
    pub datastore: String,
    /// State directory.
    pub dir: PathBuf,
    /// Router namespace.
    pub router_netns: String,
    /// Nodes.
    pub nodes: Vec<NodePlan>,
    /// The router as a BGP node (BGP mode only).
    pub router_node: Option<NodePlan>,
    /// Dedicated route reflectors (BGP only, no dataplane).
    #[serde(default)]
    pub route_reflectors: Vec<NodePlan>,
    /// Pods.
    pub pods: Vec<PodPlan>,
    /// The relay that carries the agents' and the CNI plugin's etcd
    /// connections from the router namespace to the host (etcd only).
    #[serde(default)]
    pub relay: Option<RelayPlan>,
    /// How the nodes run their agents.
    #[serde(default)]
    pub runtime: Runtime,
    /// The image and storage of `--runtime podman`.
    #[serde(default)]
    pub podman: Option<PodmanPlan>,
}

impl Plan {
    /// The datastore URL as seen from inside the lab's namespaces (the
    /// relay's when there is one): what tortie-node and the CNI plugin get.
    /// tortiectl on the host uses [`Plan::datastore`].
    pub fn agent_datastore(&self) -> &str {
        self.relay.as_ref().map_or(&self.datastore, |r| &r.url)
    }

    /// The SQLite file of a lab on its own datastore.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self.datastore.strip_prefix("sqlite://").map(PathBuf::from)
    }
}

/// The router's address on subnet 1, which every node and route reflector
/// reaches (directly or through its default route).
pub const ROUTER_IP: &str = "10.0.1.1";

/// Ports the router namespace uses itself (BGP), never given to the relay.
const RESERVED_PORTS: [u16; 1] = [179];

/// One listening address of the relay and the host endpoint it forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRoute {
    /// `10.0.1.1:port` inside the router namespace.
    pub listen: String,
    /// The etcd endpoint as the host reaches it (`host:port`).
    pub target: String,
}

/// The etcd relay: listens in the router namespace, connects from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayPlan {
    /// The namespace it listens in (the router's).
    pub netns: String,
    /// One route per etcd endpoint, in the URL's order.
    pub routes: Vec<RelayRoute>,
    /// The datastore URL through the relay (`etcd://10.0.1.1:port,...`).
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
}

/// The relay for datastore `url`: `None` unless it is an etcd URL. Each
/// endpoint keeps its port on [`ROUTER_IP`] unless an earlier endpoint
/// (or BGP) took it, then the next free one.
pub fn relay_plan(url: &str, router_netns: &str, dir: &Path) -> Option<RelayPlan> {
    let Ok(DatastoreUrl::Etcd(endpoints)) = DatastoreUrl::parse(url) else {
        return None;
    };
    let mut used: Vec<u16> = RESERVED_PORTS.to_vec();
    let routes: Vec<RelayRoute> = endpoints
        .iter()
        .map(|e| {
            let mut port = e
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .unwrap_or(2379);
            while port == 0 || used.contains(&port) {
                port = port.wrapping_add(1);
            }
            used.push(port);
            RelayRoute {
                listen: format!("{ROUTER_IP}:{port}"),
                target: e.clone(),
            }
        })
        .collect();
    let listen: Vec<&str> = routes.iter().map(|r| r.listen.as_str()).collect();
    Some(RelayPlan {
        netns: router_netns.to_string(),
        url: format!("etcd://{}", listen.join(",")),
        routes,
        log: dir.join("relay.log"),
    })
}

/// The host folders of a node of a `--runtime podman` lab, mounted into
/// its containers where the DaemonSet mounts the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDirs {
    /// → `/host/opt/cni/bin` of install-cni: the plugins the lab runs.
    pub cni_bin: PathBuf,
    /// → `/host/etc/cni/net.d` of install-cni: the conflist the lab uses.
    pub cni_net: PathBuf,
    /// → `/var/lib/calico` of the agent (its MTU file).
    pub calico: PathBuf,
    /// → `/run/tortie` of the agent (its control socket).
    pub run: PathBuf,
    /// → `/run/xtables.lock` of the agent.
    pub xtables_lock: PathBuf,
}

/// The host folders of node `node` of the lab in `dir`.
pub fn host_dirs(dir: &Path, node: &str) -> HostDirs {
    let d = dir.join(node);
    HostDirs {
        cni_bin: d.join("opt-cni-bin"),
        cni_net: d.join("etc-cni-net.d"),
        calico: d.join("calico"),
        run: d.join("run"),
        xtables_lock: d.join("xtables.lock"),
    }
}

fn node_plan(
    dir: &Path,
    runtime: Runtime,
    name: &str,
    netns: String,
    subnet: u8,
    host: u16,
) -> NodePlan {
    let (control_socket, mtu_file) = match runtime {
        Runtime::Process => (
            dir.join(format!("{name}.sock")),
            dir.join(format!("{name}.mtu")),
        ),
        Runtime::Podman => {
            let h = host_dirs(dir, name);
            (h.run.join("node.sock"), h.calico.join("mtu"))
        }
    };
    NodePlan {
        name: name.to_string(),
        netns,
        subnet,
        ip: format!("10.0.{subnet}.{host}/24"),
        router_if: format!("r-{name}"),
        control_socket,
        log: dir.join(format!("{name}.log")),
        mtu_file,
    }
}

/// The state directory of lab `name`.
pub fn state_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

/// What `lab up` was asked for.
#[derive(Debug, Clone)]
pub struct LabSpec<'a> {
    /// Lab name.
    pub name: &'a str,
    /// Mode.
    pub mode: Mode,
    /// Number of nodes.
    pub nodes: u8,
    /// Pods per node.
    pub pods: u8,
    /// Dedicated route reflectors (0: node-to-node mesh).
    pub route_reflectors: u8,
    /// Datastore URL (`None`: SQLite in the state directory).
    pub datastore: Option<&'a str>,
    /// The image and storage for `--runtime podman` (`None`: processes).
    pub podman: Option<PodmanPlan>,
}

/// Lays out the nodes (the first half on subnet 1, the rest on subnet 2)
/// with their pods, and the route reflectors (subnet 1, from .241).
pub fn plan(spec: &LabSpec<'_>) -> Plan {
    let (name, mode, nodes, pods, datastore) =
        (spec.name, spec.mode, spec.nodes, spec.pods, spec.datastore);
    let dir = state_dir(name);
    let runtime = if spec.podman.is_some() {
        Runtime::Podman
    } else {
        Runtime::Process
    };
    let node_at =
        |name: &str, netns, subnet, host| node_plan(&dir, runtime, name, netns, subnet, host);
    let first_half = nodes.div_ceil(2);
    let node_plans: Vec<NodePlan> = (1..=nodes)
        .map(|i| {
            let subnet = if i <= first_half { 1 } else { 2 };
            let n = format!("node{i}");
            node_at(&n, format!("{name}-{n}"), subnet, 10 + u16::from(i))
        })
        .collect();
    let route_reflectors = (1..=spec.route_reflectors)
        .map(|k| {
            let n = format!("rr{k}");
            node_at(&n, format!("{name}-{n}"), 1, 240 + u16::from(k))
        })
        .collect();
    let router_node = mode
        .router_runs_bgp()
        .then(|| node_at("router", format!("{name}-router"), 1, 1));
    let pod_plans = node_plans
        .iter()
        .flat_map(|n| {
            (1..=pods).map(move |j| PodPlan {
                name: format!("{}-pod{j}", n.name),
                namespace: default_namespace(),
                labels: Default::default(),
                netns: format!("{name}-{}-pod{j}", n.name),
                node: n.name.clone(),
                node_netns: n.netns.clone(),
            })
        })
        .collect();
    // A container gets the database's folder mounted at the same path.
    let db = match runtime {
        Runtime::Process => dir.join("tortie.db"),
        Runtime::Podman => dir.join("db").join("tortie.db"),
    };
    let datastore = datastore.map_or_else(|| format!("sqlite://{}", db.display()), str::to_string);
    let router_netns = format!("{name}-router");
    Plan {
        name: name.to_string(),
        mode,
        relay: relay_plan(&datastore, &router_netns, &dir),
        datastore,
        router_netns,
        dir,
        nodes: node_plans,
        router_node,
        route_reflectors,
        pods: pod_plans,
        runtime,
        podman: spec.podman.clone(),
    }
}

/// The cluster ID of the lab's route reflectors.
pub const RR_CLUSTER_ID: &str = "224.0.0.1";

/// The resources the lab applies: BGP configuration and the pool; with
/// route reflectors, their Node resources (labelled, with the cluster ID)
/// and the BGPPeer that peers every node with them instead of the mesh.
pub fn manifest(plan: &Plan) -> String {
    let (ipip, vxlan) = plan.mode.pool_modes();
    let mesh = plan.route_reflectors.is_empty();
    let mut rr = String::new();
    for n in &plan.route_reflectors {
        rr.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {}\n  labels:\n    route-reflector: \"true\"\nspec:\n  bgp:\n    ipv4Address: {}\n    routeReflectorClusterID: {RR_CLUSTER_ID}\n",
            n.name, n.ip
        ));
    }
    if !mesh {
        rr.push_str("---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer-with-route-reflectors\nspec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n");
    }
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: 64512\n  nodeToNodeMeshEnabled: {mesh}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: lab-pool\nspec:\n  cidr: {POOL_CIDR}\n  blockSize: 26\n  ipipMode: {ipip}\n  vxlanMode: {vxlan}\n  natOutgoing: false\n{rr}"
    )
}

/// The CNI network configuration for a pod on `node`.
impl PodPlan {
    /// `NAMESPACE/NAME`, as `lab status`, `lab ping` and `lab probe` show it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The CNI configuration for `pod` on `node`: the node's, with the pod's
/// labels as `args.cni.labels` (the CNI conventions a runtime follows).
/// A plugin configuration with the pod's labels as a runtime passes them
/// (`args.cni.labels`).
pub fn with_pod_args(mut conf: serde_json::Value, pod: &PodPlan) -> serde_json::Value {
    if !pod.labels.is_empty() {
        let labels: Vec<serde_json::Value> = pod
            .labels
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        conf["args"] = serde_json::json!({"cni": {"labels": labels}});
    }
    conf
}

pub fn cni_conf(plan: &Plan, node: &NodePlan) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "tortie",
        "datastore": plan.agent_datastore(),
        "nodename": node.name,
        "mtu": plan.mode.pod_mtu(),
        "mtu_file": node.mtu_file,
        "state_dir": plan.dir.join(format!("cni-{}", node.name)),
        "ipam": {"type": "tortie-ipam"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        name: &str,
        mode: Mode,
        nodes: u8,
        pods: u8,
        ds: Option<&'static str>,
    ) -> LabSpec<'static> {
        LabSpec {
            name: Box::leak(name.to_string().into_boxed_str()),
            mode,
            nodes,
            pods,
            route_reflectors: 0,
            datastore: ds,
            podman: None,
        }
    }

    #[test]
    fn nodes_split_over_two_subnets() {
        let p = plan(&spec("tortie", Mode::VxlanCrosssubnet, 3, 2, None));
        let ips: Vec<&str> = p.nodes.iter().map(|n| n.ip.as_str()).collect();
        assert_eq!(ips, ["10.0.1.11/24", "10.0.1.12/24", "10.0.2.13/24"]);
        assert_eq!(p.nodes[0].netns, "tortie-node1");
        assert_eq!(p.pods.len(), 6);
        assert_eq!(p.pods[5].netns, "tortie-node3-pod2");
        assert_eq!(p.datastore, "sqlite:///run/tortie-lab/tortie/tortie.db");
        assert!(p.router_node.is_none());
    }

    #[test]
    fn bgp_mode_makes_the_router_a_bgp_node() {
        let p = plan(&spec("lab", Mode::Bgp, 2, 1, Some("etcd://127.0.0.1:2379")));
        let r = p.router_node.clone().unwrap();
        assert_eq!(
            (r.netns.as_str(), r.ip.as_str()),
            ("lab-router", "10.0.1.1/24")
        );
        assert_eq!(p.datastore, "etcd://127.0.0.1:2379");
        let relay = p.relay.as_ref().unwrap();
        assert_eq!(relay.netns, "lab-router");
        assert_eq!(
            relay.routes,
            [RelayRoute {
                listen: "10.0.1.1:2379".into(),
                target: "127.0.0.1:2379".into()
            }]
        );
        assert_eq!(p.agent_datastore(), "etcd://10.0.1.1:2379");
        assert_eq!(
            cni_conf(&p, &p.nodes[0])["datastore"],
            "etcd://10.0.1.1:2379"
        );
    }

    #[test]
    fn sqlite_labs_have_no_relay() {
        let p = plan(&spec("t", Mode::Bgp, 1, 1, None));
        assert!(p.relay.is_none());
        assert_eq!(p.agent_datastore(), p.datastore);
        assert_eq!(cni_conf(&p, &p.nodes[0])["datastore"], p.datastore.as_str());
    }

    #[test]
    fn every_etcd_endpoint_gets_its_own_relay_port() {
        let url = "etcd://127.0.0.1:2379,localhost:2379,[::1]:179,h:22";
        let r = relay_plan(url, "t-router", Path::new("/run/tortie-lab/t")).unwrap();
        let listen: Vec<&str> = r.routes.iter().map(|r| r.listen.as_str()).collect();
        assert_eq!(
            listen,
            [
                "10.0.1.1:2379",
                "10.0.1.1:2380",
                "10.0.1.1:180",
                "10.0.1.1:22"
            ]
        );
        let targets: Vec<&str> = r.routes.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(
            targets,
            ["127.0.0.1:2379", "localhost:2379", "[::1]:179", "h:22"]
        );
        assert_eq!(
            r.url,
            "etcd://10.0.1.1:2379,10.0.1.1:2380,10.0.1.1:180,10.0.1.1:22"
        );
        assert!(DatastoreUrl::parse(&r.url).is_ok());
    }

    #[test]
    fn a_plan_saved_before_relays_existed_still_loads() {
        let p = plan(&spec("t", Mode::Bgp, 1, 1, None));
        let mut v = serde_json::to_value(&p).unwrap();
        v.as_object_mut().unwrap().remove("relay");
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn router_side_interface_names_fit_in_15_bytes() {
        let p = plan(&spec("averyveryverylongname", Mode::Bgp, 200, 1, None));
        assert!(p.nodes.iter().all(|n| n.router_if.len() <= 15));
        let mut names: Vec<_> = p.nodes.iter().map(|n| &n.router_if).collect();
        names.dedup();
        assert_eq!(names.len(), 200);
    }

    #[test]
    fn the_manifest_sets_the_pool_modes() {
        let m = manifest(&plan(&spec("t", Mode::VxlanCrosssubnet, 2, 1, None)));
        assert!(m.contains("vxlanMode: CrossSubnet"));
        assert!(m.contains("nodeToNodeMeshEnabled: true"));
        assert!(tortie_model::parse_manifest(&m).is_ok());
    }

    #[test]
    fn route_reflectors_replace_the_mesh() {
        let mut s = spec("t", Mode::Bgp, 2, 1, None);
        s.route_reflectors = 2;
        let p = plan(&s);
        assert_eq!(p.route_reflectors[1].ip, "10.0.1.242/24");
        let m = manifest(&p);
        assert!(m.contains("nodeToNodeMeshEnabled: false"));
        let r = tortie_model::parse_manifest(&m).unwrap();
        assert_eq!(r.len(), 5, "{m}");
    }
}
