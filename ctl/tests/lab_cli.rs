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
