//! The real `tortiectl` binary with BGPFilter: apply, get, delete, and a
//! refused rule field named in the error.

mod common;

const FILTER: &str = "\
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: tor-filter
spec:
  exportV4:
  - action: Accept
    matchOperator: In
    cidr: 77.0.0.0/16
    source: RemotePeers
  importV4:
  - action: Reject
    matchOperator: NotIn
    cidr: 44.0.0.0/16
";

#[test]
fn bgpfilters_apply_get_and_delete_and_refused_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let run = |args: &[&str], stdin: &str| common::run_tortiectl(&url, args, stdin);
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let out = run(&["apply", "-f", "-"], FILTER);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["get", "bgpfilters"], "");
    assert!(text(&out).contains("tor-filter"), "{}", text(&out));
    let out = run(&["get", "bgpfilter", "tor-filter", "-o", "yaml"], "");
    let yaml = text(&out);
    assert!(
        yaml.contains("kind: BGPFilter") && yaml.contains("source: RemotePeers"),
        "{yaml}"
    );
    assert!(yaml.contains("cidr: 44.0.0.0/16"), "{yaml}");

    let bad = FILTER.replace("    source: RemotePeers\n", "    interface: '*.calico'\n");
    let out = run(&["apply", "-f", "-"], &bad);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("BGPFilter(tor-filter).spec.exportV4[0].interface"),
        "{}",
        text(&out)
    );

    let out = run(&["delete", "bgpfilter", "tor-filter"], "");
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["get", "bgpfilters", "tor-filter"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
