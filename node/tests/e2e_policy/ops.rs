//! The agent's side of policy, read as an operator reads it: the table in
//! the kernel (`nft -j list table inet tortie-policy` in the node's
//! namespace), the agent's `/metrics` and `/readyz` (127.0.0.1:9099 in the
//! node's namespace, as `lab up` starts it), and a real failure of the
//! program: another process holds `inet tortie-policy` as an **owned**
//! table (`flags owner`, kernel ≥ 5.12), so the kernel refuses every change
//! the agent makes to it (EPERM) until that process exits, when the kernel
//! removes the table with it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tortie_testkit::ChildGuard;

/// How long the agent has to react (program, fail, recover).
const REACT: Duration = Duration::from_secs(20);
const EVERY: Duration = Duration::from_millis(50);

/// `nft ARGS` in `netns`: its stdout, or what it said.
fn try_nft(netns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "nft"])
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `nft ARGS` in `netns`, which must succeed; its stdout.
pub fn nft(netns: &str, args: &[&str]) -> String {
    try_nft(netns, args).unwrap_or_else(|e| panic!("{e}"))
}

/// What the kernel holds in `netns`'s policy table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Rules (every chain).
    pub rules: usize,
    /// Named sets (maps not counted).
    pub sets: usize,
    /// The table carries `flags owner` (someone else's).
    pub owned: bool,
}

/// The policy table of `netns` as the kernel holds it.
pub fn table(netns: &str) -> Table {
    try_table(netns).unwrap_or_else(|e| panic!("{e}"))
}

/// As [`table`]; an error when there is no such table.
pub fn try_table(netns: &str) -> Result<Table, String> {
    // nft 1.0.6 cannot print an owned table as JSON: read the text first.
    let text = try_nft(netns, &["-a", "list", "table", "inet", "tortie-policy"])?;
    if text.lines().any(|l| l.trim() == "flags owner") {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("# handle "))
            .filter(|l| {
                !["table ", "chain ", "set ", "map "]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .count();
        return Ok(Table {
            rules,
            sets: 0,
            owned: true,
        });
    }
    let text = try_nft(netns, &["-j", "list", "table", "inet", "tortie-policy"])?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let objs = v["nftables"].as_array().unwrap();
    let count = |k: &str| objs.iter().filter(|o| o.get(k).is_some()).count();
    Ok(Table {
        rules: count("rule"),
        sets: count("set"),
        owned: false,
    })
}

/// `GET path` from the agent in `netns`: status code and body.
fn get(netns: &str, path: &str) -> Option<(u16, String)> {
    let ns = PathBuf::from(format!("/run/netns/{netns}"));
    let req = format!("GET {path} HTTP/1.1\r\n\r\n");
    let text = tortie_felix_dataplane::netns::in_netns(Some(&ns), move || {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9099").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .ok()
    .flatten()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((code, body.to_string()))
}

/// `/readyz`'s status code (0 when the agent does not answer).
pub fn readyz(netns: &str) -> u16 {
    get(netns, "/readyz").map_or(0, |r| r.0)
}

/// The agent's `tortie_policy_*` samples (name with labels → value).
pub fn policy_metrics(netns: &str) -> BTreeMap<String, f64> {
    let (code, body) = get(netns, "/metrics").expect("the agent answers /metrics");
    assert_eq!(code, 200);
    body.lines()
        .filter(|l| l.starts_with("tortie_policy_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// One sample; panics naming it when absent.
pub fn metric(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name).unwrap_or_else(|| panic!("no {name} in {m:#?}"))
}

/// The gauges must equal what the kernel holds, the agent be in sync.
fn gauges_match_kernel(netns: &str, endpoints: usize) -> Result<(), String> {
    let m = policy_metrics(netns);
    let t = try_table(netns)?;
    let want = [
        ("tortie_policy_rules", t.rules as f64),
        ("tortie_policy_sets", t.sets as f64),
        ("tortie_policy_endpoints", endpoints as f64),
        ("tortie_policy_in_sync", 1.0),
    ];
    let off: Vec<String> = want
        .iter()
        .filter(|(k, v)| metric(&m, k) != *v)
        .map(|(k, v)| format!("{k} = {}, kernel/expected {v}", metric(&m, k)))
        .collect();
    if off.is_empty() {
        Ok(())
    } else {
        Err(off.join("; "))
    }
}

/// Runs `change` (an apply whose enforcement the caller waits for) and
/// checks that node `netns`'s metrics followed it: one or more programs
/// more, timed in the histogram, no error, and the rule and set gauges
/// equal to the kernel's table, which grew.
pub fn metrics_follow(netns: &str, endpoints: usize, change: impl FnOnce()) {
    let before = policy_metrics(netns);
    let table_before = table(netns);
    change();
    let mut last = String::new();
    let r = tortie_testkit::wait_until(
        "metrics follow",
        REACT,
        EVERY,
        || match gauges_match_kernel(netns, endpoints) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        },
    );
    assert!(r.is_ok(), "{r:?}: {last}");
    let after = policy_metrics(netns);
    let grew = |k: &str| metric(&after, k) > metric(&before, k);
    let same = |k: &str| metric(&after, k) == metric(&before, k);
    assert!(
        grew("tortie_policy_programs_total"),
        "{before:?}\n{after:?}"
    );
    assert!(grew("tortie_policy_program_seconds_count"), "{after:?}");
    assert!(grew("tortie_policy_program_seconds_sum"), "{after:?}");
    assert!(grew("tortie_policy_program_seconds_bucket{le=\"+Inf\"}"));
    assert!(same("tortie_policy_errors_total"), "{before:?}\n{after:?}");
    assert!(grew("tortie_policy_rules"), "{before:?}\n{after:?}");
    let table_after = table(netns);
    assert!(table_after.rules > table_before.rules);
    assert!(table_after.sets >= table_before.sets);
}

/// A process holding `inet tortie-policy` in a namespace as its own
/// (`nft -i` keeps its netlink socket open); dropping it ends the process,
/// and the kernel deletes the table.
pub struct TableOwner {
    _stdin: ChildStdin,
    _child: ChildGuard,
}

impl TableOwner {
    /// Replaces the agent's table by an owned empty one, in one transaction.
    pub fn take(netns: &str) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "nft", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let guard = ChildGuard::adopt("nft -i", child);
        stdin
            .write_all(
                b"delete table inet tortie-policy; add table inet tortie-policy { flags owner; }\n",
            )
            .unwrap();
        stdin.flush().unwrap();
        let r = tortie_testkit::wait_until("the owned table", REACT, EVERY, || {
            try_table(netns).is_ok_and(|t| t.owned)
        });
        assert!(r.is_ok(), "{r:?}: {:?}", try_table(netns));
        Self {
            _stdin: stdin,
            _child: guard,
        }
    }
}

/// While another process owns the table the agent's programs fail:
/// `/readyz` answers 503, `tortie_policy_in_sync` is 0 and
/// `tortie_policy_errors_total` grows, and the table stays the other
/// process's. Once it exits, the agent programs its table again: 200, in
/// sync, the same rules as before.
pub fn readiness_follows_a_refused_program(netns: &str, endpoints: usize) {
    let ready = tortie_testkit::wait_until("ready", REACT, EVERY, || readyz(netns) == 200);
    assert!(ready.is_ok(), "{ready:?}");
    let before = policy_metrics(netns);
    let rules = table(netns).rules;
    let owner = TableOwner::take(netns);
    let r = tortie_testkit::wait_until("503 while programs fail", REACT, EVERY, || {
        let m = policy_metrics(netns);
        readyz(netns) == 503
            && metric(&m, "tortie_policy_in_sync") == 0.0
            && metric(&m, "tortie_policy_errors_total")
                > metric(&before, "tortie_policy_errors_total")
    });
    assert!(r.is_ok(), "{r:?}: {:?}", policy_metrics(netns));
    let t = table(netns);
    assert!(
        t.owned && t.rules == 0,
        "the kernel refused the agent: {t:?}"
    );
    drop(owner);
    let mut last = String::new();
    let r = tortie_testkit::wait_until("ready again", REACT, EVERY, || {
        let g = gauges_match_kernel(netns, endpoints);
        last = format!("readyz {}, {g:?}", readyz(netns));
        readyz(netns) == 200 && g.is_ok() && try_table(netns).is_ok_and(|t| t.rules == rules)
    });
    assert!(r.is_ok(), "{r:?}: {last}");
}
