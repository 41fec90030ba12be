//! `policy-bench`: the network-policy table at scale and its cost on the
//! packet path.
//!
//! ```text
//! cargo run --release -p tortie-felix-dataplane --example policy-bench -- [POLICIES] [ENDPOINTS] [ROUNDS] [IPERF_SECONDS]
//! ```
//! Defaults: 1000 policies over 200 local endpoints (and as many remote
//! ones), 5 rounds, 5 s of iperf3. Root needed: every measurement uses
//! fresh namespaces made here (named `tt…`, removed at the end).
//!
//! Prints, as medians over the rounds:
//! - compile: input → table (pure), with the table's size;
//! - program: the whole table written into an empty namespace (`nft -f`);
//! - label change of a remote pod → transaction (set elements only) written;
//! - one policy edited → transaction written;
//! - drift checks: `check` (kernel rule dump + sets and maps) and
//!   `check_full` (`nft -j list table`);
//! - iperf3 TCP throughput between two pods with no table, and with a table
//!   where the receiver's ingress runs through `POLICIES` policies (every
//!   new connection walks all of them; established packets are accepted by
//!   the first rule).

#[path = "../tests/common/podnet.rs"]
mod podnet;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use podnet::{From, PodNet};
use tortie_felix::policy::nft::Ruleset;
use tortie_felix::policy::{compile, diff, PolicyConfig, PolicyInput};
use tortie_felix_dataplane::policy::{PolicyProgrammer, TableState};
use tortie_model::k8s::namespace_profile;
use tortie_model::workload_endpoint::WorkloadEndpointSpec;
use tortie_model::{parse_manifest, NetworkPolicy, ObjectMeta, Resource, WorkloadEndpoint};
use tortie_testkit::{unique_prefix, ChildGuard, Netns};

const NAMESPACES: usize = 10;

fn endpoint(i: usize, node: &str) -> WorkloadEndpoint {
    let ns = format!("ns{}", i % NAMESPACES);
    let mut metadata = ObjectMeta::named(format!("{node}-k8s-pod{i}-eth0"));
    metadata.namespace = Some(ns);
    metadata.labels = [
        ("app".to_string(), format!("app{}", (i / NAMESPACES) % 10)),
        ("tier".to_string(), format!("t{}", i % 3)),
    ]
    .into();
    let octets = (i / 250, i % 250);
    let base = if node == "local" { 1 } else { 101 };
    let mut w = WorkloadEndpoint {
        metadata,
        spec: WorkloadEndpointSpec {
            node: node.into(),
            pod: format!("pod{i}"),
            interface_name: format!("cali{i:011x}"),
            ip_networks: vec![
                format!("10.{}.{}.{}/32", base + octets.0, octets.1, 1 + i % 200)
                    .parse()
                    .unwrap(),
            ],
            ..WorkloadEndpointSpec::default()
        },
    };
    w.apply_defaults();
    w
}

/// Kubernetes policy `j` (converted): in namespace `j % 10`, isolating pods
/// of one app and allowing another app, a namespace and a CIDR on a few
/// ports.
fn k8s_policy(j: usize) -> NetworkPolicy {
    let ns = j % NAMESPACES;
    let app = (j / NAMESPACES) % 10;
    let yaml = format!(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: np{j}, namespace: ns{ns}}}
spec:
  podSelector: {{matchLabels: {{app: app{app}}}}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector: {{matchLabels: {{app: app{next}}}}}
        - namespaceSelector: {{matchLabels: {{team: t{team}}}}}
          podSelector: {{matchExpressions: [{{key: tier, operator: In, values: [t0, t1]}}]}}
      ports: [{{port: {port}}}, {{protocol: UDP, port: 53}}]
    - from: [{{ipBlock: {{cidr: 192.168.{j8}.0/24, except: [192.168.{j8}.128/25]}}}}]
  egress:
    - to: [{{podSelector: {{}}}}]
    - to: [{{ipBlock: {{cidr: 0.0.0.0/0}}}}]
      ports: [{{port: 443}}]
"#,
        next = (app + 1) % 10,
        team = j % 3,
        port = 8000 + j % 50,
        j8 = j % 250,
    );
    match parse_manifest(&yaml).unwrap().remove(0).defaulted() {
        Resource::NetworkPolicy(p) => p,
        other => panic!("{}", other.id()),
    }
}

fn input(policies: usize, endpoints: usize) -> PolicyInput {
    let mut i = PolicyInput {
        node_name: "local".into(),
        ..PolicyInput::default()
    };
    for n in 0..endpoints {
        i.endpoints.push(endpoint(n, "local"));
        i.endpoints.push(endpoint(n, "remote"));
    }
    for ns in 0..NAMESPACES {
        let labels = [("team".to_string(), format!("t{}", ns % 3))].into();
        i.profiles
            .push(namespace_profile(&format!("ns{ns}"), &labels));
    }
    i.network_policies = (0..policies).map(k8s_policy).collect();
    i
}

/// CPU milliseconds used so far by this process and by its waited-for
/// children (`/proc/self/stat` utime+stime, cutime+cstime; USER_HZ = 100):
/// the machine these run on is shared, so wall time alone says little.
fn cpu_ms() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14-17 of the line are at 11-14 after the state field.
    ((f[11] + f[12]) * 10.0, (f[13] + f[14]) * 10.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn size(rs: &Ruleset) -> (usize, usize, usize, usize) {
    let rules = rs.chains.values().map(|c| c.rules.len()).sum();
    let elems = rs.sets.values().map(|s| s.elems.len()).sum();
    (rs.chains.len(), rules, rs.sets.len(), elems)
}

fn table_rounds(policies: usize, endpoints: usize, rounds: usize) {
    let cfg = PolicyConfig::default();
    let mut res: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut script_lines = (0, 0);
    for round in 0..rounds {
        let mut inp = input(policies, endpoints);
        let (t, cpu) = (Instant::now(), cpu_ms());
        let c = compile(&inp, &cfg);
        res.entry("compile").or_default().push(ms(t.elapsed()));
        res.entry("compile, CPU")
            .or_default()
            .push(cpu_ms().0 - cpu.0);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let ns = Netns::create(&format!("{}b", unique_prefix("pbn"))).unwrap();
        let mut p = PolicyProgrammer::new(Some(ns.path().as_ref()), "tortie-policy");
        let cpu = cpu_ms();
        let r = p.apply(&c.ruleset).unwrap();
        res.entry("program (nft)").or_default().push(ms(r.elapsed));
        res.entry("program (nft), CPU")
            .or_default()
            .push(cpu_ms().1 - cpu.1);
        let (t, cpu) = (Instant::now(), cpu_ms());
        assert_eq!(p.check().unwrap(), TableState::InSync);
        res.entry("check (rule dump)")
            .or_default()
            .push(ms(t.elapsed()));
        let c1 = cpu_ms();
        res.entry("check (rule dump), CPU")
            .or_default()
            .push(c1.0 - cpu.0 + c1.1 - cpu.1);
        let (t, cpu) = (Instant::now(), cpu_ms());
        assert_eq!(p.check_full().unwrap(), TableState::InSync);
        res.entry("check_full (nft -j)")
            .or_default()
            .push(ms(t.elapsed()));
        let c1 = cpu_ms();
        res.entry("check_full (nft -j), CPU")
            .or_default()
            .push(c1.0 - cpu.0 + c1.1 - cpu.1);

        // A remote pod's label change: compile, diff, write.
        let t = Instant::now();
        let remote = inp
            .endpoints
            .iter_mut()
            .find(|w| w.spec.node == "remote")
            .unwrap();
        remote.metadata.labels.insert("app".into(), "app9".into());
        let after = compile(&inp, &cfg).ruleset;
        let script = diff("tortie-policy", &c.ruleset, &after).unwrap_or_default();
        script_lines.0 = script.lines().count();
        let r = p.apply(&after).unwrap();
        assert!(!r.full, "{r:?}");
        res.entry("label change → written")
            .or_default()
            .push(ms(t.elapsed()));
        res.entry("label change (nft only)")
            .or_default()
            .push(ms(r.elapsed));

        // One policy edited (another port).
        let t = Instant::now();
        let pol = &mut inp.network_policies[policies / 2];
        pol.spec.ingress[0].destination.ports = vec![tortie_model::Port::single(9999)];
        let edited = compile(&inp, &cfg).ruleset;
        script_lines.1 = diff("tortie-policy", &after, &edited)
            .unwrap_or_default()
            .lines()
            .count();
        let r = p.apply(&edited).unwrap();
        assert!(!r.full, "{r:?}");
        res.entry("policy edit → written")
            .or_default()
            .push(ms(t.elapsed()));
        if round == 0 {
            let (chains, rules, sets, elems) = size(&c.ruleset);
            println!(
                "table: {chains} chains, {rules} rules, {sets} sets, {elems} set elements; full script {} lines",
                tortie_felix::policy::full_replace("tortie-policy", &c.ruleset).lines().count()
            );
        }
    }
    println!(
        "label change transaction: {} lines; policy edit transaction: {} lines",
        script_lines.0, script_lines.1
    );
    let compile_ms = median(res["compile"].clone());
    let program_ms = median(res["program (nft)"].clone());
    let cpu = median(res["compile, CPU"].clone()) + median(res["program (nft), CPU"].clone());
    for (k, v) in &res {
        println!(
            "{k:<26} median {:8.1} ms   (runs: {})",
            median(v.clone()),
            fmt(v)
        );
    }
    println!(
        "compile + program: {:.1} ms wall, {cpu:.0} ms CPU, for {policies} policies over {endpoints} endpoints",
        compile_ms + program_ms
    );
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// iperf3 throughput (Gbit/s) from pod 0 to pod 1.
fn iperf(n: &PodNet, secs: u32) -> f64 {
    let mut server = n.pods[1].ns.command("iperf3");
    server
        .args(["-s", "-p", "15201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = ChildGuard::spawn("iperf3 server", &mut server).unwrap();
    let target = n.pods[1].ip.to_string();
    // Start the client once the server listens.
    tortie_testkit::wait_until(
        "iperf3 server listening",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            n.pods[1]
                .ns
                .exec(&["ss", "-Hltn", "sport = :15201"])
                .is_ok_and(|o| !o.stdout.is_empty())
        },
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let started = Instant::now();
    let mut attempts = 0;
    let out = loop {
        attempts += 1;
        let out = n.pods[0]
            .ns
            .command("iperf3")
            .args(["-c", &target, "-p", "15201", "-t", &secs.to_string(), "-J"])
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    match v["end"]["sum_received"]["bits_per_second"].as_f64() {
        Some(bps) => bps / 1e9,
        None => panic!(
            "iperf3 failed after {attempts} attempts in {:?}: {}{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn throughput(policies: usize, rounds: usize, secs: u32) {
    let mut n = PodNet::new("pbi", &[("ns0", "client"), ("ns0", "server")]);
    n.serve(&[80]);
    let mut inp = PolicyInput {
        node_name: "local".into(),
        endpoints: vec![
            n.pods[0].endpoint("local", &[("app", "client")]),
            n.pods[1].endpoint("local", &[("app", "server")]),
        ],
        ..PolicyInput::default()
    };
    // `policies` policies on the server; only the last one allows the client.
    for j in 0..policies {
        let from = if j + 1 == policies {
            "client"
        } else {
            "nobody"
        };
        let yaml = format!(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p{j:04}, namespace: ns0}}\nspec:\n  order: {j}\n  selector: app == 'server'\n  ingress: [{{action: Allow, protocol: TCP, source: {{selector: app == '{from}'}}, destination: {{ports: [15201]}}}}]\n"
        );
        for r in parse_manifest(&yaml).unwrap() {
            if let Resource::NetworkPolicy(p) = r.defaulted() {
                inp.network_policies.push(p);
            }
        }
    }
    let rs = compile(&inp, &PolicyConfig::default()).ruleset;
    let mut p = PolicyProgrammer::new(Some(&n.host_path()), "tortie-policy");
    let (mut none, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        p.remove().unwrap();
        assert!(
            n.probe(From::Outside, n.pods[1].ip, "tcp", 80),
            "no table: open"
        );
        none.push(iperf(&n, secs));
        p.apply(&rs).unwrap();
        assert!(
            !n.probe(From::Outside, n.pods[1].ip, "tcp", 80),
            "the table is enforced"
        );
        with.push(iperf(&n, secs));
    }
    let (a, b) = (median(none.clone()), median(with.clone()));
    println!(
        "iperf3 {secs}s, no table:           median {a:.2} Gbit/s (runs: {})",
        fmt(&none)
    );
    println!(
        "iperf3 {secs}s, {policies} policies:     median {b:.2} Gbit/s (runs: {})",
        fmt(&with)
    );
    println!("ratio with/without: {:.1} %", 100.0 * b / a);
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let policies = args.first().copied().unwrap_or(1000);
    let endpoints = args.get(1).copied().unwrap_or(200);
    let rounds = args.get(2).copied().unwrap_or(5);
    let secs = args.get(3).copied().unwrap_or(5) as u32;
    println!("policy-bench: {policies} policies, {endpoints} local + {endpoints} remote endpoints, {rounds} rounds");
    table_rounds(policies, endpoints, rounds);
    throughput(policies, rounds.min(3), secs);
}
