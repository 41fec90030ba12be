//! The real `tortiectl` binary with the policy kinds: Calico policies,
//! network sets and profiles, Kubernetes NetworkPolicy and Namespace
//! converted on apply, and workload endpoint labels changed at run time.

mod common;

use std::process::Output;

struct Ctl {
    url: String,
    _dir: tempfile::TempDir,
}

impl Ctl {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Self { url, _dir: dir }
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        common::run_tortiectl(&self.url, args, stdin)
    }

    /// Runs, expects exit code `code`, returns stdout.
    fn expect(&self, code: i32, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(code),
            "tortiectl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

const KUBERNETES: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: web}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: db}
  ingress:
    - from:
        - podSelector:
            matchLabels: {app: frontend}
      ports:
        - port: 5432
";

const CALICO: &str = "\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-blocked}
spec:
  order: 10
  selector: all()
  ingress:
    - action: Deny
      source: {selector: blocked == 'true'}
    - action: Pass
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: partners, labels: {kind: partner}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: legacy, namespace: shop}
spec: {nets: [203.0.113.0/24]}
";

const WEP: &str = "\
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-db-eth0
  namespace: shop
  labels: {app: db}
spec:
  node: node1
  pod: db
  endpoint: eth0
  interfaceName: cali0123456789a
  ipNetworks: [10.244.1.5/32]
  profiles: [kns.shop]
  ports:
    - {name: pg, protocol: TCP, port: 5432}
";

#[test]
fn kubernetes_policies_and_namespaces_are_stored_as_calico_converts_them() {
    let c = Ctl::new();
    let out = c.expect(0, &["apply", "-f", "-"], KUBERNETES);
    assert_eq!(out.trim(), "Successfully applied 2 resource(s)");
    let table = c.expect(
        0,
        &["get", "networkpolicies", "-n", "shop", "-o", "wide"],
        "",
    );
    assert_eq!(
        table,
        "NAME                         ORDER   SELECTOR\n\
         knp.default.allow-frontend   1000    projectcalico.org/orchestrator == 'k8s' && app == 'db'\n"
    );
    let json = c.expect(0, &["get", "profile", "kns.shop", "-o", "json"], "");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["spec"]["labelsToApply"]["pcns.team"], "web");
    assert_eq!(
        v["spec"]["labelsToApply"]["pcns.projectcalico.org/name"],
        "shop"
    );
    // The stored (converted) policy applies back unchanged.
    let yaml = c.expect(
        0,
        &[
            "get",
            "policy",
            "knp.default.allow-frontend",
            "-n",
            "shop",
            "-o",
            "yaml",
        ],
        "",
    );
    assert!(yaml.contains("types:\n  - Ingress"), "{yaml}");
    c.expect(0, &["apply", "-f", "-"], &yaml);
    // Deleting with the Kubernetes manifest deletes what it was converted to.
    c.expect(0, &["delete", "-f", "-"], KUBERNETES);
    assert_eq!(c.expect(0, &["get", "np", "-A"], "").lines().count(), 1);
    assert_eq!(c.expect(0, &["get", "profiles"], "").lines().count(), 1);
}

#[test]
fn calico_policy_kinds_apply_list_and_delete() {
    let c = Ctl::new();
    c.expect(0, &["apply", "-f", "-"], CALICO);
    assert_eq!(
        c.expect(0, &["get", "gnp", "-o", "wide"], ""),
        "NAME           ORDER   SELECTOR\ndeny-blocked   10      all()\n"
    );
    assert_eq!(
        c.expect(0, &["get", "globalnetworksets", "-o", "wide"], ""),
        "NAME       NETS\npartners   198.51.100.0/24\n"
    );
    assert_eq!(
        c.expect(0, &["get", "networksets", "-A"], ""),
        "NAMESPACE   NAME\nshop        legacy\n"
    );
    c.expect(0, &["delete", "gnp", "deny-blocked"], "");
    c.expect(0, &["delete", "netset", "legacy", "-n", "shop"], "");
    assert_eq!(c.expect(0, &["get", "gnp"], "").lines().count(), 1);
}

#[test]
fn invalid_policies_report_every_field_and_write_nothing() {
    let c = Ctl::new();
    let bad = KUBERNETES.replace("port: 5432", "port: 5432\n          endPort: 10")
        + "---\n"
        + &CALICO.replace("action: Pass", "action: Pass\n      http: {methods: [GET]}");
    let out = c.run(&["apply", "-f", "-"], &bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one line per problem: {err}");
    assert!(
        lines[0].contains(
            "NetworkPolicy.networking.k8s.io(shop/allow-frontend).spec.ingress[0].ports[0].endPort"
        ),
        "{err}"
    );
    assert!(
        lines[1].contains("GlobalNetworkPolicy(deny-blocked).spec.ingress[1].http")
            && lines[1].contains("not supported by tortie"),
        "{err}"
    );
    assert_eq!(c.expect(0, &["get", "profiles"], "").lines().count(), 1);
}

#[test]
fn workload_endpoint_labels_change_at_run_time() {
    let c = Ctl::new();
    c.expect(0, &["apply", "-f", "-"], WEP);
    c.expect(
        0,
        &[
            "label",
            "workloadendpoint",
            "node1-k8s-db-eth0",
            "-n",
            "shop",
            "tier=gold",
        ],
        "",
    );
    let json = c.expect(
        0,
        &[
            "get",
            "wep",
            "node1-k8s-db-eth0",
            "-n",
            "shop",
            "-o",
            "json",
        ],
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let labels = &v["metadata"]["labels"];
    assert_eq!(labels["tier"], "gold");
    assert_eq!(labels["app"], "db");
    assert_eq!(labels["projectcalico.org/namespace"], "shop");
    assert_eq!(v["spec"]["profiles"][0], "kns.shop");
    assert_eq!(v["spec"]["ports"][0]["name"], "pg");
    let out = c.run(
        &[
            "label",
            "wep",
            "node1-k8s-db-eth0",
            "-n",
            "shop",
            "pcns.team=x",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "reserved prefix refused");
}
