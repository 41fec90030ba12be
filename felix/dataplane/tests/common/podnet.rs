//! A node namespace with pods on `cali*` veths and an outside host, pods
//! answering TCP and UDP on given ports (a small python3 server each),
//! and probes between them — for the policy kernel tests and benchmarks.
//! Everything lives in namespaces named from one unique prefix and goes
//! (namespaces and every process in them) when the `PodNet` is dropped.
#![allow(dead_code)]

use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

use tortie_model::workload_endpoint::WorkloadEndpointSpec;
use tortie_model::{ObjectMeta, WorkloadEndpoint};
use tortie_testkit::{unique_prefix, wait_until, ChildGuard, Netns};

/// The outside host's address (on the node's `eth0` subnet).
pub const OUTSIDE_IP: &str = "192.0.2.2";

const SERVER: &str = r#"
import socket, sys, threading
def tcp(p):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(128)
    while True:
        c, _ = s.accept()
        try: c.sendall(b"ok")
        finally: c.close()
def udp(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", p))
    while True:
        d, a = s.recvfrom(64); s.sendto(b"ok", a)
for p in map(int, sys.argv[1:]):
    for f in (tcp, udp):
        threading.Thread(target=f, args=(p,), daemon=True).start()
threading.Event().wait()
"#;

const CLIENT: &str = r#"
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if proto == "tcp":
        s = socket.create_connection((host, port), timeout=1)
        ok = s.recv(8) == b"ok"
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
        s.sendto(b"x", (host, port)); ok = s.recvfrom(8)[0] == b"ok"
except OSError:
    ok = False
sys.exit(0 if ok else 1)
"#;

/// One pod.
#[derive(Debug)]
pub struct Pod {
    /// Its network namespace.
    pub ns: Netns,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Host-side interface.
    pub iface: String,
    /// Its address.
    pub ip: IpAddr,
}

impl Pod {
    /// The workload endpoint the CNI plugin would write for it on `node`.
    pub fn endpoint(&self, node: &str, labels: &[(&str, &str)]) -> WorkloadEndpoint {
        let mut metadata = ObjectMeta::named(format!("{node}-k8s-{}-eth0", self.name));
        metadata.namespace = Some(self.namespace.clone());
        metadata.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut w = WorkloadEndpoint {
            metadata,
            spec: WorkloadEndpointSpec {
                node: node.into(),
                pod: self.name.clone(),
                endpoint: "eth0".into(),
                interface_name: self.iface.clone(),
                ip_networks: vec![self.ip.into()],
                ..WorkloadEndpointSpec::default()
            },
        };
        w.apply_defaults();
        w
    }
}

/// Where a probe starts.
#[derive(Debug, Clone, Copy)]
pub enum From {
    /// Pod number `i`.
    Pod(usize),
    /// The outside host.
    Outside,
}

/// The node, its pods and the outside host. Field order is drop order:
/// servers first, then pods, outside and node namespaces.
pub struct PodNet {
    servers: Vec<ChildGuard>,
    /// The pods.
    pub pods: Vec<Pod>,
    /// The outside host.
    pub outside: Netns,
    /// The node.
    pub host: Netns,
}

impl PodNet {
    /// A node with one pod per `(namespace, name)`, at 10.244.1.1, .2, ...
    pub fn new(tag: &str, pods: &[(&str, &str)]) -> PodNet {
        let p = unique_prefix(tag);
        let host = Netns::create(&format!("{p}h")).unwrap();
        let outside = Netns::create(&format!("{p}o")).unwrap();
        host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .unwrap();
        host.veth_to(
            "eth0",
            "192.0.2.1/24",
            &outside,
            "eth0",
            &format!("{OUTSIDE_IP}/24"),
        )
        .unwrap();
        outside
            .ip(&["route", "add", "10.244.0.0/16", "via", "192.0.2.1"])
            .unwrap();
        // As on every real node: proxy ARP answers for the pods' gateway
        // 169.254.1.1 only when the node has a route to it elsewhere.
        host.ip(&["route", "add", "default", "via", OUTSIDE_IP])
            .unwrap();
        let pods = pods
            .iter()
            .enumerate()
            .map(|(i, (ns, name))| add_pod(&host, &p, i, ns, name))
            .collect();
        PodNet {
            servers: Vec::new(),
            pods,
            outside,
            host,
        }
    }

    /// The node's namespace path (for the programmer).
    pub fn host_path(&self) -> std::path::PathBuf {
        self.host.path().into()
    }

    /// Starts a TCP+UDP server on `ports` in every pod and on the outside
    /// host; returns when all answer.
    pub fn serve(&mut self, ports: &[u16]) {
        let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
        let hosts: Vec<&Netns> = self
            .pods
            .iter()
            .map(|p| &p.ns)
            .chain([&self.outside])
            .collect();
        for ns in &hosts {
            let mut cmd = ns.command("python3");
            cmd.arg("-c").arg(SERVER).args(&ports).stdout(Stdio::null());
            self.servers
                .push(ChildGuard::spawn("server", &mut cmd).unwrap());
        }
        for ns in &hosts {
            for port in &ports {
                wait_until(
                    "server listening",
                    Duration::from_secs(10),
                    Duration::from_millis(50),
                    || {
                        client(ns, "tcp", "127.0.0.1", port.parse().unwrap())
                            .wait()
                            .is_ok_and(|s| s.success())
                    },
                )
                .unwrap();
            }
        }
    }

    fn netns_of(&self, from: From) -> &Netns {
        match from {
            From::Pod(i) => &self.pods[i].ns,
            From::Outside => &self.outside,
        }
    }

    /// Runs every probe `(from, to address, "tcp"|"udp", port)` at once;
    /// true where an answer came back within a second.
    pub fn probe_all(&self, probes: &[(From, IpAddr, &str, u16)]) -> Vec<bool> {
        let children: Vec<Child> = probes
            .iter()
            .map(|(from, to, proto, port)| {
                client(self.netns_of(*from), proto, &to.to_string(), *port)
            })
            .collect();
        children
            .into_iter()
            .map(|mut c| c.wait().is_ok_and(|s| s.success()))
            .collect()
    }

    /// One probe.
    pub fn probe(&self, from: From, to: IpAddr, proto: &str, port: u16) -> bool {
        self.probe_all(&[(from, to, proto, port)])[0]
    }

    /// One ping (ICMP echo), one second to answer.
    pub fn ping(&self, from: From, to: IpAddr) -> bool {
        self.netns_of(from)
            .command("ping")
            .args(["-c1", "-W1", &to.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

fn client(ns: &Netns, proto: &str, host: &str, port: u16) -> Child {
    ns.command("python3")
        .arg("-c")
        .arg(CLIENT)
        .args([proto, host, &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Pod `i`: a namespace on a veth `cali…` of the node, address 10.244.1.(i+1)/32,
/// default route via 169.254.1.1 answered by proxy ARP (as the CNI plugin sets it).
fn add_pod(host: &Netns, prefix: &str, i: usize, namespace: &str, name: &str) -> Pod {
    let ns = Netns::create(&format!("{prefix}p{i}")).unwrap();
    let h = tortie_felix::policy::nft::fnv64(prefix.as_bytes()) & 0xffff_ffff;
    let iface = format!("cali{h:08x}{i}");
    let ip: IpAddr = format!("10.244.1.{}", i + 1).parse().unwrap();
    host.ip(&[
        "link",
        "add",
        &iface,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns.name(),
    ])
    .unwrap();
    host.ip(&["link", "set", &iface, "up"]).unwrap();
    host.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.conf.{iface}.proxy_arp=1"),
    ])
    .unwrap();
    // As felix sets it: answer ARP for the gateway at once, not after up to 0.8 s.
    host.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.neigh.{iface}.proxy_delay=0"),
    ])
    .unwrap();
    host.ip(&["route", "add", &format!("{ip}/32"), "dev", &iface])
        .unwrap();
    ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"])
        .unwrap();
    ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    ns.ip(&[
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
        "scope",
        "link",
    ])
    .unwrap();
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])
    .unwrap();
    Pod {
        ns,
        namespace: namespace.into(),
        name: name.into(),
        iface,
        ip,
    }
}
