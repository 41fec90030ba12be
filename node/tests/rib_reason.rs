//! `tortiectl bgp rib` shows why a path won, end to end through the
//! binaries (issue 17): two BIRD 2 peers send tortie-node paths for the
//! same prefixes that differ in one attribute each, and `tortiectl bgp rib
//! -o json` (and the table) must show the winner with the selection step
//! that chose it, as the RIB recorded it.
//!
//! Layout: namespace `<p>n` runs tortie-node (BGP only, AS 64512) on bridge
//! `br0` (10.82.0.1/24); `<p>b` and `<p>c` each run one BIRD (10.82.0.2
//! and 10.82.0.3, iBGP, AS 64512), plugged into the bridge; both are
//! global BGPPeers. What each BIRD sends:
//!
//! | prefix | from .2 | from .3 | winner, reason |
//! |---|---|---|---|
//! | 10.2.0.0/24 | LOCAL_PREF 200 | LOCAL_PREF 100 | .2, `local_pref` |
//! | 10.3.0.0/24 | AS_PATH `65010` | empty AS_PATH | .3, `as_path_length` |
//! | 10.4.0.0/24 | same | same | .2 (lower BGP Identifier), `router_id` |

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tortie_datastore::{typed, BlockingStore, OpenOptions};
use tortie_testkit::daemons::{BirdProcess, BIRD_SHORT_TIMERS};
use tortie_testkit::{unique_prefix, wait_until, ChildGuard, Netns};

const NODE: &str = "10.82.0.1";
const PORT: u16 = 17983;
const WAIT: Duration = Duration::from_secs(30);

/// What one BIRD exports (see the module table).
struct BirdRoutes {
    addr: &'static str,
    local_pref_10_2: u32,
    prepend_10_3: bool,
}

fn bird_config(b: &BirdProcess, r: &BirdRoutes) -> String {
    let mut c = b.config_head(r.addr);
    c.push_str("protocol static s4 { ipv4;\n");
    for p in ["10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"] {
        let _ = writeln!(c, "  route {p} blackhole;");
    }
    c.push_str("}\nprotocol bgp node {\n");
    let _ = writeln!(c, "  local {} port {PORT} as 64512;", r.addr);
    let _ = writeln!(c, "  neighbor {NODE} port {PORT} as 64512;");
    c.push_str("  hold time 9; keepalive time 3; direct;\n");
    c.push_str(BIRD_SHORT_TIMERS);
    c.push_str("  ipv4 { import none; export filter {\n");
    c.push_str("    if source != RTS_STATIC then reject;\n");
    let _ = writeln!(
        c,
        "    if net = 10.2.0.0/24 then bgp_local_pref = {};",
        r.local_pref_10_2
    );
    if r.prepend_10_3 {
        c.push_str("    if net = 10.3.0.0/24 then bgp_path.prepend(65010);\n");
    }
    let _ = writeln!(c, "    accept;\n  }};\n  next hop address {}; }};", r.addr);
    c.push_str("}\n");
    c
}

fn apply(store: &BlockingStore, yaml: &str) {
    let r = tortie_model::parse_manifest(yaml).unwrap();
    store
        .block_on(typed::apply(store.store().as_ref(), r))
        .unwrap();
}

fn bgp_peer(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n  peerIP: {ip}:{PORT}\n  asNumber: 64512\n"
    )
}

/// `tortiectl`, built next to tortie-node.
fn tortiectl() -> PathBuf {
    let node = PathBuf::from(env!("CARGO_BIN_EXE_tortie-node"));
    let ctl = node.parent().unwrap().join("tortiectl");
    assert!(
        ctl.exists(),
        "{} is missing: build with `cargo build -p tortiectl` first",
        ctl.display()
    );
    ctl
}

/// `tortiectl bgp rib [-o json] --control-socket SOCK` output.
fn bgp_rib(sock: &std::path::Path, json: bool) -> Result<String, String> {
    let mut cmd = Command::new(tortiectl());
    cmd.args(["bgp", "rib", "--afi", "ipv4"]);
    if json {
        cmd.args(["-o", "json"]);
    }
    let out = cmd
        .arg("--control-socket")
        .arg(sock)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The row of `prefix` in `bgp rib -o json`, once it has a path from each BIRD.
fn row_with_both_paths(rows: &Value, prefix: &str) -> Option<Value> {
    let row = rows.as_array()?.iter().find(|r| r["prefix"] == prefix)?;
    (row["paths"].as_array()?.len() == 2).then(|| row.clone())
}

#[test]
#[ignore = "root: network namespaces, two BIRDs, a tortie-node process and tortiectl"]
fn bgp_rib_shows_the_winning_path_and_why_it_won() {
    tortiectl();
    let p = unique_prefix("rrs");
    let n = Netns::create(&format!("{p}n")).unwrap();
    n.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    n.ip(&["addr", "add", &format!("{NODE}/24"), "dev", "br0"])
        .unwrap();
    n.ip(&["link", "set", "br0", "up"]).unwrap();
    let routes = [
        BirdRoutes {
            addr: "10.82.0.2",
            local_pref_10_2: 200,
            prepend_10_3: true,
        },
        BirdRoutes {
            addr: "10.82.0.3",
            local_pref_10_2: 100,
            prepend_10_3: false,
        },
    ];
    let mut birds = Vec::new();
    for (tag, r) in ["b", "c"].into_iter().zip(&routes) {
        let ns = Netns::create(&format!("{p}{tag}")).unwrap();
        ns.plug_into_bridge(
            "eth0",
            &format!("{}/24", r.addr),
            n.name(),
            "br0",
            &format!("v{tag}"),
        )
        .unwrap();
        let mut bird = BirdProcess::new(&ns).unwrap();
        let config = bird_config(&bird, r);
        bird.launch(&config).unwrap();
        birds.push((bird, ns));
    }

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = BlockingStore::open(&db, &OpenOptions::default()).unwrap();
    apply(&store, &bgp_peer("bird-b", routes[0].addr));
    apply(&store, &bgp_peer("bird-c", routes[1].addr));
    let sock = dir.path().join("n1.sock");
    let mut cmd = n.command(env!("CARGO_BIN_EXE_tortie-node"));
    cmd.args(["--datastore", &db, "--node-name", "n1"])
        .args(["--dataplane", "none", "--ip-autodetect", "interface=br0"])
        .args(["--bgp-port", &PORT.to_string()])
        .arg("--control-socket")
        .arg(&sock)
        .env_remove("TORTIE_NODE_IP")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _node = ChildGuard::spawn("tortie-node", &mut cmd).unwrap();

    let mut last = Value::Null;
    wait_until(
        "both paths of every prefix in bgp rib",
        WAIT,
        Duration::from_millis(50),
        || {
            let Ok(text) = bgp_rib(&sock, true) else {
                return false;
            };
            last = serde_json::from_str(&text).unwrap_or(Value::Null);
            ["10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"]
                .iter()
                .all(|p| row_with_both_paths(&last, p).is_some())
        },
    )
    .unwrap_or_else(|e| {
        let logs: Vec<String> = birds.iter().map(|(b, _)| b.log()).collect();
        panic!("{e}: {last:#}\n{}", logs.join("\n"))
    });

    for (prefix, winner, loser, reason) in [
        ("10.2.0.0/24", "10.82.0.2", "10.82.0.3", "local_pref"),
        ("10.3.0.0/24", "10.82.0.3", "10.82.0.2", "as_path_length"),
        ("10.4.0.0/24", "10.82.0.2", "10.82.0.3", "router_id"),
    ] {
        let row = row_with_both_paths(&last, prefix).unwrap();
        let (best, other) = (&row["paths"][0], &row["paths"][1]);
        assert_eq!(best["peer"], winner, "{prefix}: {row:#}");
        assert_eq!(best["next_hop"], winner, "{prefix}: {row:#}");
        assert_eq!(best["best"], true, "{prefix}: {row:#}");
        assert_eq!(best["reason"], reason, "{prefix}: {row:#}");
        assert_eq!(best["origin"], "igp", "{prefix}: {row:#}");
        assert_eq!(other["peer"], loser, "{prefix}: {row:#}");
        assert_eq!(other["best"], false, "{prefix}: {row:#}");
        assert_eq!(other["reason"], Value::Null, "{prefix}: {row:#}");
    }
    let lp = |i: usize| last_row(&last, "10.2.0.0/24")["paths"][i]["local_pref"].clone();
    assert_eq!((lp(0), lp(1)), (Value::from(200), Value::from(100)));
    let path = |i: usize| last_row(&last, "10.3.0.0/24")["paths"][i]["as_path"].clone();
    assert_eq!(
        (path(0), path(1)),
        (serde_json::json!([]), serde_json::json!([65010]))
    );

    // The table: the REASON column holds the same words on the best rows.
    let table = bgp_rib(&sock, false).unwrap();
    assert!(
        table.lines().nth(1).is_some_and(|h| h.contains("REASON")),
        "{table}"
    );
    for (prefix, winner, reason) in [
        ("10.2.0.0/24", "10.82.0.2", "local_pref"),
        ("10.3.0.0/24", "10.82.0.3", "as_path_length"),
        ("10.4.0.0/24", "10.82.0.2", "router_id"),
    ] {
        let best = table
            .lines()
            .find(|l| l.contains(prefix) && l.contains(" * "))
            .unwrap_or_else(|| panic!("no best row of {prefix}:\n{table}"));
        let cells: Vec<&str> = best.split('|').map(str::trim).collect();
        assert_eq!((cells[3], cells[8]), (winner, reason), "{table}");
    }
}

fn last_row<'a>(rows: &'a Value, prefix: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == prefix)
        .unwrap()
}
