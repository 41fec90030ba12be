//! `tortiectl lab` argument checks that need no root: the lab refuses etcd
//! over TLS (its agents reach etcd through a plain relay on the router's
//! address) before it creates anything.

use std::process::Command;

#[test]
fn lab_up_refuses_etcd_over_tls_naming_the_problem() {
    let name = format!("tlsrefused{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_tortiectl"))
        .args(["--datastore", "etcd://127.0.0.1:2379"])
        .args(["--etcd-ca", "/nonexistent/ca.pem"])
        .args(["lab", "up", "--name", &name])
        .env_remove("TORTIE_DATASTORE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("etcd over TLS") && err.contains("10.0.1.1") && err.contains("certificate"),
        "{err}"
    );
    assert!(!std::path::Path::new("/run/tortie-lab").join(&name).exists());
}

#[test]
fn podman_flags_need_the_podman_runtime_and_sane_values() {
    let name = format!("rt{}", std::process::id());
    let cases: [(&[&str], &str); 4] = [
        (
            &["--image", "localhost/tortie:latest"],
            "--image is for --runtime podman",
        ),
        (
            &["--podman-root", "/var/tmp/x"],
            "--podman-root is for --runtime podman",
        ),
        (
            &["--runtime", "podman", "--image=-x"],
            "is not an image reference",
        ),
        (
            &["--runtime", "podman", "--podman-root", "rel"],
            "is not an absolute path",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["lab", "up", "--name", &name];
        args.extend_from_slice(extra);
        let out = tortiectl(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(!std::path::Path::new("/run/tortie-lab").join(&name).exists());
}

fn tortiectl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tortiectl"))
        .args(args)
        .env_remove("TORTIE_DATASTORE")
        .output()
        .unwrap()
}

fn namespaces() -> String {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Absolute names, `..`, `/`, too long, empty, upper case: every lab
/// command refuses them with a usage error before it touches anything —
/// as root, `lab down --name ../../tmp/x` used to remove that folder.
#[test]
fn hostile_lab_names_are_refused_before_anything_is_touched() {
    let victim = tempfile::tempdir().unwrap();
    let keep = victim.path().join("keep");
    std::fs::write(&keep, "precious").unwrap();
    let abs = victim.path().display().to_string();
    let dotdot = format!("../..{abs}");
    let long = "a".repeat(64);
    let names = [abs.as_str(), &dotdot, "..", "a/b", &long, "", "Upper", "-x"];
    for name in names {
        let flag = format!("--name={name}");
        let flag = flag.as_str();
        let commands: [&[&str]; 6] = [
            &["lab", "down", flag],
            &["lab", "up", flag, "--nodes", "1", "--pods-per-node", "0"],
            &["lab", "status", flag],
            &["lab", "ping", flag],
            &["lab", "pod", "delete", "p", flag],
            &["lab", "node", "stop", "n", flag],
        ];
        for args in commands {
            let out = tortiectl(args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains("is not a lab name") && err.contains("DNS label"),
                "{args:?}: {err}"
            );
        }
    }
    for name in ["Upper", "a/b", &long, "-x"] {
        let d = std::path::Path::new("/run/tortie-lab").join(name);
        assert!(!d.exists(), "{}", d.display());
    }
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");
    let ns = namespaces();
    assert!(!ns.contains("Upper-") && !ns.contains(&abs), "{ns}");
}

#[test]
fn a_63_character_dns_label_is_a_lab_name() {
    let name = format!("tt{}{}", std::process::id(), "x".repeat(40));
    let name = &name[..name.len().min(63)];
    let out = tortiectl(&["lab", "status", "--name", name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no lab state"), "{err}");
}

/// Start time (`/proc/PID/stat` field 22) of a running process.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

struct Sleepers(Vec<std::process::Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn running(c: &mut std::process::Child) -> bool {
    c.try_wait().unwrap().is_none()
}

/// `lab down` stops a recorded process only while it still runs the binary
/// the lab started, with the start time recorded at launch: a PID reused
/// by another program, or one without a record, is left running. A state
/// folder that is a link is not followed.
#[test]
#[ignore = "root: writes /run/tortie-lab and runs lab down"]
fn lab_down_stops_only_processes_that_are_still_the_ones_it_started() {
    let name = format!("tt{}pid", std::process::id());
    let dir = std::path::Path::new("/run/tortie-lab").join(&name);
    let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
    let mut s = Sleepers(
        (0..3)
            .map(|_| Command::new(&sleep).arg("300").spawn().unwrap())
            .collect(),
    );
    let pids: Vec<u32> = s.0.iter().map(|c| c.id()).collect();
    let state = serde_json::json!({
        "plan": {
            "name": name, "mode": "bgp", "datastore": format!("sqlite://{}/tortie.db", dir.display()),
            "dir": dir, "router_netns": format!("{name}-router"), "nodes": [],
            "router_node": null, "route_reflectors": [], "pods": [], "relay": null
        },
        "pids": {"node1": pids[0], "node2": pids[1], "node3": pids[2]},
        "pod_ips": {},
        "relay_pid": null,
        "processes": {
            // What the lab recorded: node1 is still that process; node2's
            // PID now runs another binary; node3 has no record.
            pids[0].to_string(): {"exe": sleep, "start_time": start_time(pids[0])},
            pids[1].to_string(): {"exe": "/usr/local/bin/tortie-node", "start_time": start_time(pids[1])},
        }
    });
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
    let out = tortiectl(&["lab", "down", "--name", &name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 processes stopped"));
    assert!(
        err.contains(&pids[1].to_string()) && err.contains(&pids[2].to_string()),
        "{err}"
    );
    assert!(!running(&mut s.0[0]), "the recorded process was stopped");
    assert!(running(&mut s.0[1]), "a reused PID was signalled");
    assert!(running(&mut s.0[2]), "an unrecorded PID was signalled");
    assert!(!dir.exists());

    // A state folder that is a link to elsewhere is refused, not followed.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("keep"), "x").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &dir).unwrap();
    let out = tortiectl(&["lab", "down", "--name", &name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a folder"), "{err}");
    assert!(elsewhere.path().join("keep").exists());
    std::fs::remove_file(&dir).unwrap();
}
