//! The plugin binaries driven as a runtime drives them, for everything that
//! fails or answers before touching the kernel (no root needed).

mod common;

use common::{run_plugin, tortie_bin, Call};
use serde_json::json;

fn conf(version: &str) -> serde_json::Value {
    json!({"cniVersion": version, "name": "net", "type": "tortie",
           "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}})
}

fn run(command: &str, conf: &serde_json::Value) -> common::Outcome {
    run_plugin(
        &tortie_bin(),
        None,
        &Call::new(command, "c1", Some("/var/run/netns/none"), "p"),
        conf,
    )
}

#[test]
fn version_lists_every_supported_spec_version() {
    let o = run("VERSION", &json!({"cniVersion": "1.0.0"}));
    assert!(o.ok, "{}", o.stdout);
    assert_eq!(
        o.json["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn an_unsupported_version_fails_with_code_1_and_a_non_zero_exit() {
    let o = run("ADD", &conf("0.2.0"));
    assert!(!o.ok);
    assert_eq!(o.json["code"], 1, "{}", o.stdout);
    assert_eq!(o.json["msg"], "incompatible CNI versions");
    assert_eq!(o.json["cniVersion"], "0.2.0");
}

#[test]
fn check_is_refused_under_0_3_1() {
    let o = run("CHECK", &conf("0.3.1"));
    assert!(!o.ok);
    assert_eq!(o.json["code"], 1, "{}", o.stdout);
}

#[test]
fn status_and_gc_are_refused_before_1_1_0() {
    for cmd in ["STATUS", "GC"] {
        let o = run(cmd, &conf("1.0.0"));
        assert!(!o.ok);
        assert_eq!(o.json["code"], 1, "{cmd}: {}", o.stdout);
    }
}

#[test]
fn malformed_json_is_a_decode_error_and_a_non_object_an_invalid_config() {
    let o = common::run_plugin_raw(
        &tortie_bin(),
        None,
        &Call::new("ADD", "c1", Some("/x"), "p"),
        b"{\"cniVersion\": \"1.0.0\", \"name\": ",
    );
    assert!(!o.ok);
    assert_eq!(o.json["code"], 6, "{}", o.stdout);
    assert_eq!(
        o.json["cniVersion"], "1.0.0",
        "a config without a readable version is answered as 1.0.0"
    );
    let o = run_plugin(
        &tortie_bin(),
        None,
        &Call::new("ADD", "c1", Some("/x"), "p"),
        &serde_json::Value::Null,
    );
    assert_eq!(o.json["code"], 7, "{}", o.stdout);
}

#[test]
fn a_missing_netns_on_add_is_an_invalid_environment() {
    let o = run_plugin(
        &tortie_bin(),
        None,
        &Call::new("ADD", "c1", None, "p"),
        &conf("1.0.0"),
    );
    assert!(!o.ok);
    assert_eq!(o.json["code"], 4, "{}", o.stdout);
    assert!(o.json["msg"].as_str().unwrap().contains("CNI_NETNS"));
}

#[test]
fn an_unknown_ipam_plugin_is_an_invalid_config() {
    let mut c = conf("1.0.0");
    c["ipam"]["type"] = json!("no-such-ipam");
    let o = run("ADD", &c);
    assert_eq!(o.json["code"], 7, "{}", o.stdout);
    assert!(o.json["msg"].as_str().unwrap().contains("no-such-ipam"));
}

#[test]
fn an_ipam_type_that_is_a_path_is_refused_naming_the_field() {
    for bad in ["../../bin/true", "/bin/true", "..", ".", ""] {
        let mut c = conf("1.0.0");
        c["ipam"]["type"] = json!(bad);
        let o = run("ADD", &c);
        assert!(!o.ok, "{bad:?}");
        assert_eq!(o.json["code"], 7, "{bad:?}: {}", o.stdout);
        assert!(
            o.json["msg"].as_str().unwrap().contains("ipam.type"),
            "{bad:?}: {}",
            o.stdout
        );
    }
}

/// A panic after IPAM: error JSON on stdout (code 110, the config's
/// version), a non-zero exit, and the address given back. The switch
/// exists in debug builds only.
#[test]
#[cfg(debug_assertions)]
fn a_panic_answers_with_cni_error_json_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("host-local");
    let c = json!({"cniVersion": "0.4.0", "name": "net", "type": "tortie",
                   "state_dir": dir.path().join("state"),
                   "ipam": {"type": "host-local", "subnet": "10.1.0.0/24",
                            "dataDir": data}});
    let env = [("TORTIE_CNI_FAIL_AFTER", "ipam:panic")];
    let mut call = Call::new("ADD", "c1", Some("/var/run/netns/none"), "p");
    call.extra_env = &env;
    let o = run_plugin(&tortie_bin(), None, &call, &c);
    assert!(!o.ok, "{}", o.stdout);
    assert_eq!(o.json["code"], 110, "{}", o.stdout);
    assert_eq!(o.json["cniVersion"], "0.4.0");
    assert!(
        o.json["msg"].as_str().unwrap().contains("injected panic"),
        "{}",
        o.stdout
    );
    let left: Vec<_> = std::fs::read_dir(data.join("net"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(left.is_empty(), "the address was not released: {left:?}");
}
