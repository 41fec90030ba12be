//! The real `tortiectl` binary against a temporary SQLite datastore (plain
//! `cargo test`) and against a real etcd (ignored: the full suite runs it).

mod common;

use std::process::{Command, Output};

use tortie_testkit::etcd::Etcd;

/// A datastore for one test and a way to run tortiectl on it.
struct Ctl {
    url: String,
    dir: tempfile::TempDir,
    _etcd: Option<Etcd>,
}

impl Ctl {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: tortiectl creates it.
        let url = format!(
            "sqlite://{}",
            dir.path().join("new/dir/tortie.db").display()
        );
        Self {
            url,
            dir,
            _etcd: None,
        }
    }

    fn etcd() -> Self {
        let etcd = Etcd::start().expect("start etcd");
        Self {
            url: etcd.url(),
            dir: tempfile::tempdir().unwrap(),
            _etcd: Some(etcd),
        }
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        common::run_tortiectl(&self.url, args, stdin)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs and expects exit code `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "tortiectl {args:?}: {}",
            text(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const POOLS: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.244.0.0/16
  ipipMode: Always
  nodeSelector: all()
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-b
spec:
  cidr: 10.245.0.0/16
";

const NODE: &str = "\
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node1
  labels:
    rack: r1
spec:
  bgp:
    ipv4Address: 10.0.1.5/24
    asNumber: 64512
";

mod cases {
    use super::*;

    pub fn create_then_get_prints_an_aligned_table(c: &Ctl) {
        let f = c.file("pools.yaml", POOLS);
        let out = c.expect(0, &["create", "-f", &f]);
        assert_eq!(out.trim(), "Successfully created 2 'IPPool' resource(s)");
        // pool-b gets the default nodeSelector all(), as Calico fills it.
        let table = c.expect(0, &["get", "ippools"]);
        assert_eq!(
            table,
            "NAME     CIDR            SELECTOR\n\
             pool-a   10.244.0.0/16   all()\n\
             pool-b   10.245.0.0/16   all()\n"
        );
        let wide = c.expect(0, &["get", "ippools", "pool-a", "-o", "wide"]);
        assert_eq!(
            wide,
            "NAME     CIDR            NAT     IPIPMODE   VXLANMODE   DISABLED   DISABLEBGPEXPORT   SELECTOR\n\
             pool-a   10.244.0.0/16   false   Always     Never       false      false              all()\n"
        );
    }

    pub fn create_is_all_or_none_when_one_resource_exists(c: &Ctl) {
        let f = c.file("pools.yaml", POOLS);
        let one = c.file("one.yaml", POOLS.split("---").next().unwrap());
        c.expect(0, &["create", "-f", &one]);
        let out = c.run(&["create", "-f", &f]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            stderr(&out).contains("already exists: IPPool(pool-a)"),
            "{}",
            text(&out)
        );
        let none = c.run(&["get", "ippools", "pool-b"]);
        assert_eq!(
            none.status.code(),
            Some(1),
            "pool-b must not be written: {}",
            text(&none)
        );
    }

    pub fn invalid_manifests_report_every_problem_one_per_line_and_write_nothing(c: &Ctl) {
        let bad = POOLS
            .replace("10.244.0.0/16", "10.244.0.1/16")
            .replace("10.245.0.0/16\n", "10.245.0.0/16\n  blockSize: 40\n");
        let f = c.file("bad.yaml", &bad);
        let out = c.run(&["apply", "-f", &f]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "one line per problem: {err}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("pool-a") && l.contains("cidr")),
            "{err}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("pool-b") && l.contains("blockSize")),
            "{err}"
        );
        assert_eq!(
            c.expect(0, &["get", "ippools"]).lines().count(),
            1,
            "only the header"
        );
    }

    /// A FelixConfiguration field tortie does not implement is refused by
    /// name (never stored and ignored); the fields it honours apply.
    pub fn unimplemented_felix_fields_are_refused_by_name(c: &Ctl) {
        let head = "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n";
        let f = c.file(
            "felix-bad.yaml",
            &format!("{head}  routeRefreshInterval: 30s\n  chainInsertMode: Append\n  wireguardEnabled: true\n"),
        );
        let out = c.run(&["apply", "-f", &f]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = stderr(&out);
        for field in ["spec.chainInsertMode", "spec.wireguardEnabled"] {
            assert!(
                err.lines()
                    .any(|l| l.contains(field) && l.contains("not supported by tortie")),
                "{field}: {err}"
            );
        }
        assert_eq!(
            c.expect(0, &["get", "felixconfigs"]).lines().count(),
            1,
            "nothing stored"
        );
        let ok = c.file(
            "felix-ok.yaml",
            &format!("{head}  routeRefreshInterval: 30s\n  wireguardEnabled: false\n"),
        );
        c.expect(0, &["apply", "-f", &ok]);
        assert!(c.expect(0, &["get", "felixconfigs"]).contains("default"));
    }

    pub fn apply_creates_then_updates_and_replace_needs_an_existing_resource(c: &Ctl) {
        let n = c.file("node.yaml", NODE);
        let missing = c.run(&["replace", "-f", &n]);
        assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
        assert!(
            stderr(&missing).contains("does not exist: Node(node1)"),
            "{}",
            text(&missing)
        );
        c.expect(0, &["apply", "-f", &n]);
        let changed = c.file("node2.yaml", &NODE.replace("64512", "64513"));
        assert_eq!(
            c.expect(0, &["apply", "-f", &changed]).trim(),
            "Successfully applied 1 'Node' resource(s)"
        );
        assert!(c
            .expect(0, &["get", "nodes", "-o", "wide"])
            .contains("64513"));
        c.expect(0, &["replace", "-f", &n]);
        assert!(c
            .expect(0, &["get", "nodes", "node1", "-o", "wide"])
            .contains("64512"));
    }

    pub fn get_output_applies_back_and_a_stale_resource_version_conflicts(c: &Ctl) {
        c.run_with_stdin(&["create", "-f", "-"], NODE);
        let yaml = c.expect(0, &["get", "node", "node1", "-o", "yaml"]);
        assert!(yaml.contains("resourceVersion:"), "{yaml}");
        let saved = c.file("saved.yaml", &yaml);
        c.expect(0, &["replace", "-f", &saved]);
        let out = c.run(&["replace", "-f", &saved]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "the saved version is stale now: {}",
            text(&out)
        );
        assert!(stderr(&out).contains("conflict"), "{}", text(&out));
        let json = c.expect(0, &["get", "nodes", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "NodeList");
        assert_eq!(v["items"][0]["metadata"]["name"], "node1");
    }

    pub fn delete_by_file_and_by_name(c: &Ctl) {
        let f = c.file("pools.yaml", POOLS);
        c.expect(0, &["create", "-f", &f]);
        let out = c.expect(0, &["delete", "ippool", "pool-a"]);
        assert_eq!(out.trim(), "Successfully deleted 1 'IPPool' resource(s)");
        let again = c.run(&["delete", "-f", &f]);
        assert_eq!(
            again.status.code(),
            Some(1),
            "pool-a is gone: {}",
            text(&again)
        );
        assert!(
            c.expect(0, &["get", "ippools"]).contains("pool-b"),
            "all-or-none keeps pool-b"
        );
        let b = c.file("b.yaml", POOLS.split("---").nth(1).unwrap());
        c.expect(0, &["delete", "-f", &b]);
        assert_eq!(c.expect(0, &["get", "ippools"]).lines().count(), 1);
    }

    pub fn label_sets_overwrites_and_removes(c: &Ctl) {
        c.run_with_stdin(&["create", "-f", "-"], NODE);
        c.expect(0, &["label", "nodes", "node1", "zone=z1"]);
        let out = c.run(&["label", "nodes", "node1", "rack=r2"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(stderr(&out).contains("--overwrite"), "{}", text(&out));
        c.expect(0, &["label", "nodes", "node1", "rack=r2", "--overwrite"]);
        c.expect(0, &["label", "nodes", "node1", "zone-"]);
        let json = c.expect(0, &["get", "nodes", "node1", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["metadata"]["labels"], serde_json::json!({"rack": "r2"}));
        assert_eq!(
            c.run(&["label", "nodes", "nope", "a=b"]).status.code(),
            Some(1)
        );
    }

    pub fn usage_errors_exit_two(c: &Ctl) {
        assert_eq!(c.run(&[]).status.code(), Some(2));
        let out = c.run(&["get", "pods"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            stderr(&out).contains("ippools"),
            "names the valid kinds: {}",
            text(&out)
        );
        assert_eq!(c.run(&["delete"]).status.code(), Some(2));
        assert_eq!(
            c.run(&["get", "ippools", "-o", "xml"]).status.code(),
            Some(2)
        );
        assert_eq!(
            c.run(&["--datastore", "mysql://x", "get", "nodes"])
                .status
                .code(),
            Some(2)
        );
    }
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { super::cases::$case(&super::Ctl::sqlite()); } )*
        }
        mod etcd {
            $(
                #[test]
                #[ignore = "root: starts a real etcd server (full suite)"]
                fn $case() { super::cases::$case(&super::Ctl::etcd()); }
            )*
        }
    };
}

both_backends!(
    create_then_get_prints_an_aligned_table,
    create_is_all_or_none_when_one_resource_exists,
    invalid_manifests_report_every_problem_one_per_line_and_write_nothing,
    unimplemented_felix_fields_are_refused_by_name,
    apply_creates_then_updates_and_replace_needs_an_existing_resource,
    get_output_applies_back_and_a_stale_resource_version_conflicts,
    delete_by_file_and_by_name,
    label_sets_overwrites_and_removes,
    usage_errors_exit_two,
);

#[test]
#[ignore = "root: starts a real etcd server with TLS (full suite)"]
fn etcd_tls_flags_and_environment_reach_a_tls_etcd() {
    let etcd = Etcd::start_tls().expect("start etcd with TLS");
    let tls = etcd.tls_files().unwrap().clone();
    let c = Ctl {
        url: etcd.url(),
        dir: tempfile::tempdir().unwrap(),
        _etcd: Some(etcd),
    };
    let f = c.file("node.yaml", NODE);
    let ca = tls.ca.display().to_string();
    let cert = tls.cert.display().to_string();
    let key = tls.key.display().to_string();
    let out = c.expect(
        0,
        &[
            "create",
            "-f",
            &f,
            "--etcd-ca",
            &ca,
            "--etcd-cert",
            &cert,
            "--etcd-key",
            &key,
        ],
    );
    assert!(out.contains("Successfully created"), "{out}");
    let listed = Command::new(env!("CARGO_BIN_EXE_tortiectl"))
        .args(["get", "nodes"])
        .env("TORTIE_DATASTORE", &c.url)
        .env("TORTIE_ETCD_CA", &ca)
        .env("TORTIE_ETCD_CERT", &cert)
        .env("TORTIE_ETCD_KEY", &key)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("node1"),
        "{}",
        text(&listed)
    );
    assert_eq!(
        c.run(&["get", "nodes"]).status.code(),
        Some(1),
        "no TLS flags: fails"
    );
}
