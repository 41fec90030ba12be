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
