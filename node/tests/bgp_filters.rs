//! BGPFilter through tortie-node against a real BIRD 2, in namespaces on
//! one bridge with one SQLite datastore:
//!
//! - `na` (linux dataplane) and `nb` (BGP only) run tortie-node in the
//!   node-to-node mesh, each with a block of pool 10.244.0.0/16; the
//!   `default` BGPConfiguration adds the service CIDR 10.96.0.0/12;
//! - `t` is a BIRD 2 (AS 65100) that `na` peers with through a BGPPeer
//!   whose `filters` name one BGPFilter; BIRD sends 192.0.2.0/24 and
//!   198.51.100.0/24.
//!
//! Checked: the export rule keeps nb's block from BIRD while BIRD has
//! na's block and the service CIDR; the import rule keeps 192.0.2.0/24
//! out of na's Loc-RIB (what `tortiectl bgp rib` shows) and out of na's
//! kernel routing table while 198.51.100.0/24 is in both. Then the filter
//! is edited to the opposite prefixes: everything flips, and neither
//! side's session was reset (BIRD's and our `since` unchanged).

mod agent_ns;

use agent_ns::*;
use std::path::Path;

use tortie_datastore::{BlockingStore, OpenOptions};
use tortie_ipam_core::{DatastoreIpamStore, Ipam};
use tortie_testkit::daemons::{BirdProcess, BIRD_SHORT_TIMERS};
use tortie_testkit::{unique_prefix, ChildGuard, Netns};

const PORT: u16 = 17991;
const BIRD_PORT: u16 = 17992;
const NA: &str = "10.84.0.1";
const TOR: &str = "10.84.0.4";

fn start_node(ns: &Netns, name: &str, db: &str, dir: &Path, dataplane: &str) -> ChildGuard {
    let mut cmd = node_command(ns, name, db, dir);
    cmd.args(["--dataplane", dataplane])
        .args(["--http-addr", "127.0.0.1:19991"]);
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

/// BIRD: one eBGP session to `na`; it sends two static prefixes and takes all.
fn bird_config(b: &BirdProcess) -> String {
    let mut c = b.config_head(TOR);
    c.push_str("protocol static s4 { ipv4;\n  route 192.0.2.0/24 blackhole;\n  route 198.51.100.0/24 blackhole;\n}\n");
    c.push_str(&format!(
        "protocol bgp peer {{\n  local {TOR} port {BIRD_PORT} as 65100;\n  neighbor {NA} port {PORT} as 64512;\n{BIRD_SHORT_TIMERS}  ipv4 {{ import all; export where source = RTS_STATIC; }};\n}}\n"
    ));
    c
}

/// The BGPFilter: export rejects `no_export`, import rejects `no_import`.
fn filter(no_export: &str, no_import: &str) -> String {
    format!("apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: tor-filter\nspec:\n  exportV4:\n  - action: Reject\n    matchOperator: Equal\n    cidr: {no_export}\n  importV4:\n  - action: Reject\n    matchOperator: In\n    cidr: {no_import}\n    prefixLength:\n      max: 24\n")
}

/// BIRD's `show protocols` line of its session (state and since).
fn bird_session(bird: &BirdProcess) -> String {
    let out = bird.birdc(&["show", "protocols", "peer"]).unwrap();
    out.lines()
        .find(|l| l.starts_with("peer"))
        .unwrap_or_default()
        .to_string()
}

fn bird_routes(bird: &BirdProcess) -> String {
    bird.birdc(&["show", "route", "protocol", "peer"])
        .unwrap_or_default()
}

fn kernel_route(ns: &Netns, prefix: &str) -> String {
    ns.exec(&["ip", "route", "show", prefix])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
#[ignore = "root: network namespaces, tortie-node and BIRD processes"]
fn a_bgpfilter_filters_both_ways_and_an_edit_flips_it_without_a_reset() {
    let p = unique_prefix("flt");
    let sw = Netns::create(&format!("{p}sw")).unwrap();
    sw.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    sw.ip(&["link", "set", "br0", "up"]).unwrap();
    let a = member(&sw, &p, "a", &format!("{NA}/24"));
    let b = member(&sw, &p, "b", "10.84.0.2/24");
    let t = member(&sw, &p, "t", &format!("{TOR}/24"));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = format!("sqlite://{}", d.join("t.db").display());
    let store = BlockingStore::open(&db, &OpenOptions::default()).unwrap();
    apply(&store, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: main\nspec:\n  cidr: 10.244.0.0/16\n");
    apply(&store, &format!("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: 64512\n  listenPort: {PORT}\n  serviceClusterIPs:\n  - cidr: 10.96.0.0/12\n"));
    let ipam = Ipam::new(DatastoreIpamStore::new(
        BlockingStore::open(&db, &OpenOptions::default()).unwrap(),
    ));

    let mut bird = BirdProcess::new(&t).unwrap();
    bird.launch(&bird_config(&bird)).unwrap();
    let (sa, sb) = (d.join("na.sock"), d.join("nb.sock"));
    let _na = start_node(&a, "na", &db, d, "linux");
    let _nb = start_node(&b, "nb", &db, d, "none");
    wait("both nodes up", 30, || {
        status(&sa).is_some() && status(&sb).is_some()
    });
    let a_block = block_for(&ipam, "na").to_string();
    let b_block = block_for(&ipam, "nb").to_string();
    apply(&store, &filter(&b_block, "192.0.2.0/24"));
    apply(&store, &format!("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  node: na\n  peerIP: {TOR}:{BIRD_PORT}\n  asNumber: 65100\n  filters:\n  - tor-filter\n"));

    wait("the BIRD session and the mesh", 60, || {
        bird.established("peer")
            && peer(&sa, TOR).is_some_and(|p| p.state == "Established")
            && peer(&sa, "10.84.0.2").is_some_and(|p| p.state == "Established")
    });
    // Export: na's block and the service CIDR, not nb's block.
    wait("na's block and the service CIDR at BIRD", 60, || {
        let r = bird_routes(&bird);
        r.contains(&a_block) && r.contains("10.96.0.0/12")
    });
    wait("nb's block in na's RIB", 60, || {
        rib_prefixes(&sa).contains(&b_block)
    });
    // Import: 198.51.100.0/24 in the RIB and the kernel, 192.0.2.0/24 in neither.
    wait("198.51.100.0/24 in na's RIB and FIB", 60, || {
        rib_prefixes(&sa).contains(&"198.51.100.0/24".to_string())
            && kernel_route(&a, "198.51.100.0/24").contains(&format!("via {TOR}"))
    });
    assert!(
        !bird_routes(&bird).contains(&b_block),
        "export filter: {}",
        bird_routes(&bird)
    );
    assert!(!rib_prefixes(&sa).contains(&"192.0.2.0/24".to_string()));
    assert_eq!(kernel_route(&a, "192.0.2.0/24"), "");
    let bird_before = bird_session(&bird);
    let ours_before = peer(&sa, TOR).unwrap().since;

    // The edit flips both rules; the session stays.
    apply(&store, &filter(&a_block, "198.51.100.0/24"));
    wait("nb's block at BIRD, na's gone", 60, || {
        let r = bird_routes(&bird);
        r.contains(&b_block) && !r.contains(&a_block) && r.contains("10.96.0.0/12")
    });
    wait(
        "192.0.2.0/24 in (ROUTE-REFRESH), 198.51.100.0/24 out",
        60,
        || {
            let rib = rib_prefixes(&sa);
            rib.contains(&"192.0.2.0/24".to_string())
                && !rib.contains(&"198.51.100.0/24".to_string())
                && kernel_route(&a, "192.0.2.0/24").contains(&format!("via {TOR}"))
                && kernel_route(&a, "198.51.100.0/24").is_empty()
        },
    );
    assert_eq!(bird_session(&bird), bird_before, "BIRD's session was reset");
    let after = peer(&sa, TOR).unwrap();
    assert_eq!(after.state, "Established");
    assert_eq!(after.since, ours_before, "our session was reset");

    // Taking the filter off the peer: everything again, still no reset.
    apply(&store, &format!("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  node: na\n  peerIP: {TOR}:{BIRD_PORT}\n  asNumber: 65100\n"));
    wait("both blocks at BIRD, both prefixes in na's RIB", 60, || {
        let r = bird_routes(&bird);
        let rib = rib_prefixes(&sa);
        r.contains(&a_block)
            && r.contains(&b_block)
            && rib.contains(&"192.0.2.0/24".to_string())
            && rib.contains(&"198.51.100.0/24".to_string())
    });
    assert_eq!(bird_session(&bird), bird_before, "BIRD's session was reset");
    assert_eq!(peer(&sa, TOR).unwrap().since, ours_before);
}
