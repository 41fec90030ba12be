//! `tortie-cni` (the image's one binary) behaves exactly as `tortie`,
//! `tortie-ipam` and `install-cni` when run under their names: same
//! VERSION answer, same error JSON and exit code, same install-cni output.
//! No root needed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn linked_as(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tortie-cni"), &p).unwrap();
    p
}

fn run(exe: &Path, env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(exe)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn each_name_answers_as_its_own_binary() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 2] = [
        ("tortie", env!("CARGO_BIN_EXE_tortie")),
        ("tortie-ipam", env!("CARGO_BIN_EXE_tortie-ipam")),
    ];
    let version = [("CNI_COMMAND", "VERSION")];
    let bad_add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/none"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ];
    for (name, own) in cases {
        let multi = linked_as(dir.path(), name);
        for (env, stdin) in [
            (&version[..], ""),
            (&bad_add[..], "{\"cniVersion\": \"1.0.0\", \"name\": \"n\""),
            (
                &bad_add[..],
                "{\"cniVersion\": \"9.9.9\", \"name\": \"n\", \"type\": \"tortie\"}",
            ),
        ] {
            let a = run(&multi, env, stdin);
            let b = run(Path::new(own), env, stdin);
            assert_eq!(a.status.code(), b.status.code(), "{name} {env:?}");
            assert_eq!(a.stdout, b.stdout, "{name} {env:?}");
            assert!(!a.stdout.is_empty());
        }
    }
}

#[test]
fn install_cni_by_name_and_unknown_names_refused() {
    let dir = tempfile::tempdir().unwrap();
    let multi = linked_as(dir.path(), "install-cni");
    let out = Command::new(&multi).arg("--version").output().unwrap();
    let own = Command::new(env!("CARGO_BIN_EXE_install-cni"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, own.stdout);

    let out = Command::new(&multi).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TORTIE_DATASTORE"));

    let out = Command::new(env!("CARGO_BIN_EXE_tortie-cni"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tortie-ipam"));
}
