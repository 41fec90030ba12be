//! ADD/DEL latency of `tortie` (with host-local, and with tortie-ipam over
//! SQLite writing WorkloadEndpoints) against the reference
//! `bridge` + `host-local` plugins, in one run, alternating rounds.
//!
//! Run as root (creates namespaces `tt…`, removed on exit):
//! `cargo build --release -p tortie-cni --bins --examples &&
//!  target/release/examples/cni-bench [rounds]`
//!
//! `CNI_BENCH_BASELINE=DIR` adds one more plugin: `DIR/tortie` with
//! `tortie-ipam` from DIR (an earlier build), for before/after in one run.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tortie_testkit::{unique_prefix, Netns};

const SEQUENTIAL: usize = 100;
const CONCURRENT: usize = 20;

struct Bench {
    prefix: String,
    host: Netns,
    _underlay: Netns,
    dir: tempfile::TempDir,
    cni_path: String,
}

struct Plugin {
    label: &'static str,
    binary: PathBuf,
    conf: Value,
    /// CNI_PATH for this plugin instead of the bench's.
    cni_path: Option<String>,
}

fn run(plugin: &Plugin, cni_path: &str, cmd: &str, id: &str, netns: &str) -> Duration {
    let cni_path = plugin.cni_path.as_deref().unwrap_or(cni_path);
    let start = Instant::now();
    let mut child = Command::new(&plugin.binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path)
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={id}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    let conf = plugin.conf.to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{} {cmd} {id}: {}",
        plugin.label,
        String::from_utf8_lossy(&out.stdout)
    );
    took
}

impl Bench {
    fn new() -> Self {
        let prefix = unique_prefix("bnch");
        let host = Netns::create(&format!("{prefix}h")).unwrap();
        let underlay = Netns::create(&format!("{prefix}u")).unwrap();
        host.veth_to("up0", "10.98.0.1/30", &underlay, "dn0", "10.98.0.2/30")
            .unwrap();
        host.ip(&["route", "add", "default", "via", "10.98.0.2"])
            .unwrap();
        let ours = std::env::current_exe().unwrap();
        let bin_dir = ours.parent().unwrap().parent().unwrap().to_path_buf();
        Self {
            prefix,
            host,
            _underlay: underlay,
            dir: tempfile::tempdir().unwrap(),
            cni_path: format!("{}:/usr/lib/cni", bin_dir.display()),
        }
    }

    fn plugins(&self) -> Vec<Plugin> {
        let d = self.dir.path();
        let bin_dir = PathBuf::from(self.cni_path.split(':').next().unwrap());
        let mut plugins = vec![
            Plugin {
                label: "bridge+host-local",
                binary: "/usr/lib/cni/bridge".into(),
                conf: json!({"cniVersion": "1.0.0", "name": "ref", "type": "bridge",
                    "bridge": "cni0", "isGateway": true,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.66.0.0/16"}]],
                             "dataDir": d.join("hl-ref")}}),
                cni_path: None,
            },
            Plugin {
                label: "tortie+host-local",
                binary: bin_dir.join("tortie"),
                conf: json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "tortie",
                    "mtu_file": d.join("mtu"), "state_dir": d.join("state"),
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/16"}]],
                             "dataDir": d.join("hl-tortie")}}),
                cni_path: None,
            },
            Plugin {
                label: "tortie+tortie-ipam (sqlite, with WorkloadEndpoint)",
                binary: bin_dir.join("tortie"),
                conf: json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "tortie",
                    "datastore": self.datastore(), "nodename": "bench-node",
                    "mtu_file": d.join("mtu"), "state_dir": d.join("state-ds"),
                    "ipam": {"type": "tortie-ipam"}}),
                cni_path: None,
            },
        ];
        if let Ok(base) = std::env::var("CNI_BENCH_BASELINE") {
            plugins.push(Plugin {
                label: "baseline tortie+tortie-ipam (sqlite, with WorkloadEndpoint)",
                binary: PathBuf::from(&base).join("tortie"),
                conf: json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "tortie",
                    "datastore": self.datastore(), "nodename": "bench-node",
                    "mtu_file": d.join("mtu"), "state_dir": d.join("state-base"),
                    "ipam": {"type": "tortie-ipam"}}),
                cni_path: Some(format!("{base}:/usr/lib/cni")),
            });
        }
        plugins
    }

    fn datastore(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("tortie.db").display())
    }

    /// The IPPool tortie-ipam allocates from.
    fn create_pool(&self) {
        use tortie_datastore::{typed, BlockingStore, OpenOptions};
        let pool = tortie_model::parse_manifest(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: bench\nspec:\n  cidr: 10.79.0.0/16\n  blockSize: 26\n",
        )
        .unwrap();
        let s = BlockingStore::open(&self.datastore(), &OpenOptions::default()).unwrap();
        s.block_on(typed::apply(s.store().as_ref(), pool)).unwrap();
    }

    fn pods(&self, tag: &str, n: usize) -> Vec<Netns> {
        (0..n)
            .map(|i| Netns::create(&format!("{}{tag}{i}", self.prefix)).unwrap())
            .collect()
    }
}

#[derive(Default)]
struct Samples {
    add_seq: Vec<Duration>,
    del_seq: Vec<Duration>,
    add_conc: Vec<Duration>,
    del_conc: Vec<Duration>,
}

fn sequential(b: &Bench, p: &Plugin, s: &mut Samples, round: usize) {
    let pods = b.pods(&format!("s{round}"), SEQUENTIAL);
    let ids: Vec<String> = (0..SEQUENTIAL).map(|i| format!("s{round}x{i}")).collect();
    for (pod, id) in pods.iter().zip(&ids) {
        s.add_seq.push(run(p, &b.cni_path, "ADD", id, &pod.path()));
    }
    for (pod, id) in pods.iter().zip(&ids) {
        s.del_seq.push(run(p, &b.cni_path, "DEL", id, &pod.path()));
    }
}

fn concurrent(b: &Bench, p: &Plugin, s: &mut Samples, round: usize) {
    let pods = b.pods(&format!("c{round}"), CONCURRENT);
    for cmd in ["ADD", "DEL"] {
        let took: Vec<Duration> = std::thread::scope(|sc| {
            let hs: Vec<_> = pods
                .iter()
                .enumerate()
                .map(|(i, pod)| {
                    let path = pod.path();
                    sc.spawn(move || run(p, &b.cni_path, cmd, &format!("c{round}x{i}"), &path))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        if cmd == "ADD" {
            s.add_conc.extend(took);
        } else {
            s.del_conc.extend(took);
        }
    }
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let idx = ((ms.len() as f64 - 1.0) * p).round() as usize;
    ms[idx]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let bench = Bench::new();
    // Child processes inherit the netns of the thread that spawns them: a
    // worker thread enters the bench's host namespace, so plugins run there
    // directly (no `ip netns exec`), and the main thread stays outside (the
    // namespace guards kill every process inside on drop).
    bench.create_pool();
    let plugins = bench.plugins();
    let samples: Vec<Samples> = std::thread::scope(|sc| {
        sc.spawn(|| {
            let ns = std::fs::File::open(bench.host.path()).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let mut samples: Vec<Samples> = plugins.iter().map(|_| Samples::default()).collect();
            for round in 0..rounds {
                for (i, p) in plugins.iter().enumerate() {
                    sequential(&bench, p, &mut samples[i], round * 10 + i);
                    concurrent(&bench, p, &mut samples[i], round * 10 + i);
                }
            }
            samples
        })
        .join()
        .unwrap()
    });
    println!("| plugins | ADD p50 / p99 (100 seq) | DEL p50 / p99 (100 seq) | ADD p50 / p99 (20 conc) | DEL p50 / p99 (20 conc) |");
    println!("|---|---|---|---|---|");
    for (p, s) in plugins.iter().zip(&samples) {
        let f = |v: &[Duration]| format!("{:.1} / {:.1} ms", pct(v, 0.5), pct(v, 0.99));
        println!(
            "| {} | {} | {} | {} | {} |",
            p.label,
            f(&s.add_seq),
            f(&s.del_seq),
            f(&s.add_conc),
            f(&s.del_conc)
        );
    }
    println!("({rounds} alternating rounds, samples pooled)");
}
