//! The `install-cni` binary against temporary "host" folders, as the
//! DaemonSet's init container runs it: the plugins and the configuration
//! land there, a rerun writes nothing, a changed input rewrites only what
//! it changes, the host's own portmap is kept, and bad input fails naming
//! the variable without writing anything. No root needed.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An image's plugin folder (the real plugins, or small stand-ins where
/// the test does not run them, plus a stand-in portmap) and an empty host.
struct Host {
    _dir: tempfile::TempDir,
    source: PathBuf,
    bin: PathBuf,
    net: PathBuf,
}

impl Host {
    /// With stand-in plugins (the debug builds are large to copy).
    fn new() -> Self {
        let host = Self::empty();
        for name in ["tortie", "tortie-ipam"] {
            fs::write(host.source.join(name), format!("#!/bin/sh\necho {name}\n")).unwrap();
            fs::set_permissions(host.source.join(name), fs::Permissions::from_mode(0o755)).unwrap();
        }
        host
    }

    /// With the real plugins.
    fn with_real_plugins() -> Self {
        let host = Self::empty();
        for (name, exe) in [
            ("tortie", env!("CARGO_BIN_EXE_tortie")),
            ("tortie-ipam", env!("CARGO_BIN_EXE_tortie-ipam")),
        ] {
            fs::copy(exe, host.source.join(name)).unwrap();
        }
        host
    }

    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("image-opt-cni-bin");
        fs::create_dir(&source).unwrap();
        fs::write(source.join("portmap"), b"#!/bin/sh\necho image-portmap\n").unwrap();
        fs::set_permissions(source.join("portmap"), fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            bin: dir.path().join("host/opt/cni/bin"),
            net: dir.path().join("host/etc/cni/net.d"),
            source,
            _dir: dir,
        }
    }

    fn run(&self, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_install-cni"));
        cmd.env_clear()
            .env("TORTIE_CNI_SOURCE_DIR", &self.source)
            .env("TORTIE_CNI_BIN_DIR", &self.bin)
            .env("TORTIE_CNI_NET_DIR", &self.net);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn run_ok(&self, env: &[(&str, &str)]) -> String {
        let out = self.run(env);
        assert!(out.status.success(), "install-cni failed: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn conf(&self) -> PathBuf {
        self.net.join("10-tortie.conflist")
    }

    /// (inode, mtime in ns) of every file on the host, to prove nothing was rewritten.
    fn stamps(&self) -> Vec<(String, u64, i64)> {
        let mut v = Vec::new();
        for d in [&self.bin, &self.net] {
            for e in fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                v.push((
                    e.path().display().to_string(),
                    m.ino(),
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                ));
            }
        }
        v.sort();
        v
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const ETCD: (&str, &str) = ("TORTIE_DATASTORE", "etcd://10.0.0.1:2379");

fn conflist(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn installs_plugins_and_configuration_then_a_rerun_writes_nothing() {
    let host = Host::with_real_plugins();
    let first = host.run_ok(&[
        ETCD,
        ("TORTIE_NODENAME", "node-1"),
        ("TORTIE_CNI_MTU", "1400"),
    ]);
    let expected: Vec<String> = [
        host.bin.join("tortie"),
        host.bin.join("tortie-ipam"),
        host.bin.join("portmap"),
        host.conf(),
    ]
    .iter()
    .map(|p| format!("install-cni: installed {}", p.display()))
    .collect();
    assert_eq!(first.lines().collect::<Vec<_>>(), expected);
    for name in ["tortie", "tortie-ipam"] {
        let installed = host.bin.join(name);
        assert_eq!(
            fs::read(&installed).unwrap(),
            fs::read(host.source.join(name)).unwrap()
        );
        assert_eq!(
            fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }
    let v = conflist(&host.conf());
    assert_eq!(v["plugins"][0]["type"], "tortie");
    assert_eq!(v["plugins"][0]["datastore"], "etcd://10.0.0.1:2379");
    assert_eq!(v["plugins"][0]["nodename"], "node-1");
    assert_eq!(v["plugins"][0]["mtu"], 1400);
    assert_eq!(v["plugins"][1]["type"], "portmap");

    // The installed plugin runs: VERSION as a runtime asks it.
    let out = Command::new(host.bin.join("tortie"))
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1.0.0"));

    let before = host.stamps();
    let second = host.run_ok(&[
        ETCD,
        ("TORTIE_NODENAME", "node-1"),
        ("TORTIE_CNI_MTU", "1400"),
    ]);
    assert!(
        !second.contains("installed") && !second.contains("updated"),
        "{second}"
    );
    assert_eq!(
        host.stamps(),
        before,
        "a rerun with the same input rewrote a file"
    );
}

#[test]
fn a_changed_input_rewrites_only_the_configuration() {
    let host = Host::new();
    host.run_ok(&[ETCD]);
    let bin_before: Vec<_> = host
        .stamps()
        .into_iter()
        .filter(|s| !s.0.ends_with(".conflist"))
        .collect();
    let out = host.run_ok(&[ETCD, ("TORTIE_CNI_MTU", "9000")]);
    assert!(
        out.contains("updated") && out.contains("10-tortie.conflist"),
        "{out}"
    );
    assert_eq!(conflist(&host.conf())["plugins"][0]["mtu"], 9000);
    let bin_after: Vec<_> = host
        .stamps()
        .into_iter()
        .filter(|s| !s.0.ends_with(".conflist"))
        .collect();
    assert_eq!(bin_after, bin_before, "the plugins were rewritten");
}

#[test]
fn a_different_plugin_on_the_host_is_replaced_and_the_hosts_portmap_kept() {
    let host = Host::new();
    fs::create_dir_all(&host.bin).unwrap();
    fs::write(host.bin.join("tortie"), b"old build").unwrap();
    fs::write(host.bin.join("portmap"), b"the host's own portmap").unwrap();
    let out = host.run_ok(&[ETCD]);
    assert!(
        out.contains(&format!("updated {}", host.bin.join("tortie").display())),
        "{out}"
    );
    assert!(out.contains("kept the host's"), "{out}");
    assert_eq!(
        fs::read(host.bin.join("tortie")).unwrap(),
        fs::read(host.source.join("tortie")).unwrap()
    );
    assert_eq!(
        fs::read(host.bin.join("portmap")).unwrap(),
        b"the host's own portmap"
    );
    let leftovers: Vec<_> = fs::read_dir(&host.bin)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn bad_environment_fails_naming_the_variable_and_writes_nothing() {
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("TORTIE_DATASTORE", "postgres://db")],
        &[ETCD, ("TORTIE_CNI_MTU", "20")],
        &[
            ETCD,
            ("TORTIE_ETCD_CERT", "/etc/tortie/secrets/etcd/tls.crt"),
        ],
    ];
    let names = [
        "TORTIE_DATASTORE",
        "TORTIE_DATASTORE",
        "TORTIE_CNI_MTU",
        "TORTIE_ETCD_CERT",
    ];
    for (env, var) in cases.iter().zip(names) {
        let host = Host::new();
        let out = host.run(env);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("install-cni: ") && err.contains(var),
            "{err}"
        );
        assert!(
            !host.bin.exists() && !host.net.exists(),
            "{env:?} wrote files"
        );
    }
}

#[test]
fn a_missing_plugin_in_the_image_fails_before_writing() {
    let host = Host::new();
    fs::remove_file(host.source.join("tortie-ipam")).unwrap();
    let out = host.run(&[ETCD]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tortie-ipam"),
        "{}",
        text(&out)
    );
    assert!(!host.bin.exists());
}

#[test]
fn no_portmap_on_the_host_nor_in_the_image_fails_before_writing() {
    let host = Host::new();
    fs::remove_file(host.source.join("portmap")).unwrap();
    let out = host.run(&[ETCD]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("portmap"),
        "{}",
        text(&out)
    );
    assert!(!host.bin.exists() && !host.net.exists());

    // With the host's own portmap the image needs none.
    fs::create_dir_all(&host.bin).unwrap();
    fs::write(host.bin.join("portmap"), b"the host's").unwrap();
    let out = host.run_ok(&[ETCD]);
    assert!(out.contains("kept the host's"), "{out}");
}

#[test]
fn a_configuration_that_sorts_first_is_warned_about() {
    let host = Host::new();
    fs::create_dir_all(&host.net).unwrap();
    fs::write(host.net.join("10-calico.conflist"), b"{}").unwrap();
    let out = host.run(&[ETCD]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("10-calico.conflist"),
        "{err}"
    );
}

#[test]
fn arguments_other_than_help_and_version_are_usage_errors() {
    let exe = env!("CARGO_BIN_EXE_install-cni");
    let help = Command::new(exe).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("TORTIE_CNI_MTU"));
    let bad = Command::new(exe).arg("--bin-dir").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
