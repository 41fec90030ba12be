//! BGPPeer and BGPConfiguration fields, each observed on a real BIRD 2
//! peer (or on the node itself where the field is about the node).
//! Namespaces on one bridge, one SQLite datastore:
//!
//! - `na` and `nb` run tortie-node (BGP only) in the node-to-node mesh,
//!   each with a block of pool 10.244.0.0/16;
//! - `t` is a BIRD 2 (AS 65100) that `na` peers with through a BGPPeer.
//!   BIRD knows `na` only by a second address of `na` (`10.83.1.1`, the
//!   source the kernel picks toward BIRD), so the session comes up only
//!   with `sourceAddress: None`.
//!
//! Checked: `listenPort` and `bindMode: NodeIP` (the listener at the node
//! IP and port only); `sourceAddress: None`; `keepaliveTime: 1s` (KEEPALIVEs
//! captured at BIRD's side every second); `maxRestartTime` (the
//! restart time in our graceful-restart capability as BIRD shows it);
//! `keepOriginalNextHop` (nb's block reaches BIRD with nb as next hop, not
//! na as eBGP would have it); `communities` + `prefixAdvertisements`
//! (standard and large communities on na's block in BIRD's `show route
//! all`); `serviceClusterIPs` / `serviceExternalIPs` (the CIDRs reach
//! BIRD); `numAllowedLocalASNumbers` (a route whose AS path holds our AS
//! is dropped until the field is 1); `logSeverityScreen` (the speaker's
//! debug lines appear in the log once it is `Debug`, not before).

mod agent_ns;

use agent_ns::*;
use std::path::Path;

use tortie_datastore::{BlockingStore, OpenOptions};
use tortie_ipam_core::{DatastoreIpamStore, Ipam};
use tortie_testkit::daemons::{BirdProcess, BIRD_SHORT_TIMERS};
use tortie_testkit::{unique_prefix, ChildGuard, Netns};

const PORT: u16 = 17983;
const BIRD_PORT: u16 = 17984;
const TOR: &str = "10.83.0.4";
const NA_ALT: &str = "10.83.1.1";
const DEAD: &str = "10.83.0.99";

fn start_node(ns: &Netns, name: &str, db: &str, dir: &Path) -> ChildGuard {
    let mut cmd = node_command(ns, name, db, dir);
    cmd.args(["--dataplane", "none"]);
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

/// BIRD: one eBGP session to `na` at its second address (multihop: that
/// address is not on BIRD's subnet), hold time 90 s; it originates a
/// control prefix and one whose AS path carries our AS 64512.
fn bird_config(b: &BirdProcess) -> String {
    let mut c = b.config_head(TOR);
    c.push_str("protocol static s4 { ipv4;\n  route 192.0.2.0/24 blackhole;\n  route 203.0.113.0/24 blackhole;\n}\n");
    c.push_str(&format!(
        "protocol bgp peer {{\n  local {TOR} port {BIRD_PORT} as 65100;\n  neighbor {NA_ALT} port {PORT} as 64512;\n  multihop 2;\n  hold time 90; keepalive time 30;\n{BIRD_SHORT_TIMERS}  ipv4 {{ import all; next hop address {TOR};\n    export filter {{ if source != RTS_STATIC then reject; if net = 203.0.113.0/24 then bgp_path.prepend(64512); accept; }};\n  }};\n}}\n"
    ));
    c
}

fn bgppeer(extra: &str) -> String {
    format!("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  node: na\n  peerIP: {TOR}:{BIRD_PORT}\n  asNumber: 65100\n  sourceAddress: None\n  keepaliveTime: 1s\n  maxRestartTime: 5m\n  keepOriginalNextHop: true\n{extra}")
}

/// The lines of BIRD's `show route all` block of `prefix`.
fn route_block(all: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in all.lines() {
        if !l.starts_with(char::is_whitespace) && !l.is_empty() {
            inside = l.starts_with(prefix);
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

#[test]
#[ignore = "root: network namespaces, tortie-node and BIRD processes"]
fn peer_and_configuration_fields_are_seen_by_bird() {
    let p = unique_prefix("fld");
    let sw = Netns::create(&format!("{p}sw")).unwrap();
    sw.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    sw.ip(&["link", "set", "br0", "up"]).unwrap();
    let a = member(&sw, &p, "a", "10.83.0.1/24");
    let b = member(&sw, &p, "b", "10.83.0.2/24");
    let t = member(&sw, &p, "t", "10.83.0.4/24");
    // na's second address, the kernel's source toward BIRD.
    a.ip(&["addr", "add", &format!("{NA_ALT}/32"), "dev", "lo"])
        .unwrap();
    a.ip(&[
        "route",
        "add",
        &format!("{TOR}/32"),
        "dev",
        "eth0",
        "src",
        NA_ALT,
    ])
    .unwrap();
    t.ip(&["route", "add", &format!("{NA_ALT}/32"), "dev", "eth0"])
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = format!("sqlite://{}", d.join("t.db").display());
    let store = BlockingStore::open(&db, &OpenOptions::default()).unwrap();
    apply(&store, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: main\nspec:\n  cidr: 10.244.0.0/16\n");
    // As Calico's documentation shows it, with our port.
    apply(
        &store,
        &format!("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  logSeverityScreen: Info\n  nodeToNodeMeshEnabled: true\n  nodeMeshMaxRestartTime: 120s\n  asNumber: 64512\n  serviceClusterIPs:\n    - cidr: 10.96.0.0/12\n  serviceExternalIPs:\n    - cidr: 104.244.42.129/32\n    - cidr: 172.217.3.0/24\n  listenPort: {PORT}\n  bindMode: NodeIP\n  communities:\n    - name: bgp-large-community\n      value: 64512:300:100\n  prefixAdvertisements:\n    - cidr: 10.244.0.0/16\n      communities:\n        - bgp-large-community\n        - 64512:120\n"),
    );
    apply(&store, &bgppeer(""));
    // A peer nobody answers: the speaker keeps trying to connect.
    apply(&store, &format!("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: dead\nspec:\n  node: na\n  peerIP: {DEAD}\n  asNumber: 65199\n"));

    let mut bird = BirdProcess::new(&t).unwrap();
    let conf = bird_config(&bird);
    bird.launch(&conf).unwrap();
    let (sa, sb) = (d.join("na.sock"), d.join("nb.sock"));
    let _na = start_node(&a, "na", &db, d);
    let _nb = start_node(&b, "nb", &db, d);
    wait("both nodes up", 30, || {
        status(&sa).is_some() && status(&sb).is_some()
    });
    let ipam = Ipam::new(DatastoreIpamStore::new(
        BlockingStore::open(&db, &OpenOptions::default()).unwrap(),
    ));
    let a_block = block_for(&ipam, "na").to_string();
    let b_block = block_for(&ipam, "nb").to_string();

    // listenPort + bindMode NodeIP: one listener, at the node IP.
    let listeners = a
        .exec(&["ss", "-Hltn", &format!("sport = :{PORT}")])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    let local: Vec<&str> = listeners
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(local, [format!("10.83.0.1:{PORT}")], "{listeners}");

    // sourceAddress None: BIRD knows na only by NA_ALT.
    wait("the BIRD session (from na's second address)", 60, || {
        bird.established("peer") && peer(&sa, TOR).is_some_and(|p| p.state == "Established")
    });
    wait("the mesh", 60, || {
        peer(&sa, "10.83.0.2").is_some_and(|p| p.state == "Established")
    });

    let details = bird.birdc(&["show", "protocols", "all", "peer"]).unwrap();
    assert!(
        details.contains("Restart time: 300"),
        "maxRestartTime: {details}"
    );

    // Next hop, communities and service CIDRs as BIRD holds them.
    let all = || {
        bird.birdc(&["show", "route", "all", "protocol", "peer"])
            .unwrap_or_default()
    };
    wait("BIRD has both blocks and the service CIDRs", 60, || {
        let r = all();
        [
            a_block.as_str(),
            b_block.as_str(),
            "10.96.0.0/12",
            "104.244.42.129/32",
            "172.217.3.0/24",
        ]
        .iter()
        .all(|p| r.contains(*p))
    });
    let r = all();
    let nb_route = route_block(&r, &b_block);
    assert!(
        nb_route.contains("BGP.next_hop: 10.83.0.2"),
        "keepOriginalNextHop: {nb_route}"
    );
    let na_route = route_block(&r, &a_block);
    assert!(na_route.contains("BGP.next_hop: 10.83.1.1"), "{na_route}");
    assert!(
        na_route.contains("BGP.community: (64512,120)"),
        "{na_route}"
    );
    assert!(
        na_route.contains("BGP.large_community: (64512, 300, 100)"),
        "{na_route}"
    );

    // keepaliveTime 1s: three KEEPALIVEs (19-byte TCP payloads) from na
    // reach BIRD within 6 s (at the default a third of 90 s, none would).
    let keepalives = t.exec(&[
        "timeout",
        "6",
        "tcpdump",
        "-nni",
        "eth0",
        "-c",
        "3",
        &format!(
            "tcp and src host {NA_ALT} and (ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) == 19"
        ),
    ]);
    assert!(keepalives.is_ok(), "keepaliveTime: {keepalives:?}");

    // numAllowedLocalASNumbers: the route with our AS in its path is
    // dropped while the field is unset.
    wait("the control route in na's RIB", 60, || {
        rib_prefixes(&sa).contains(&"192.0.2.0/24".to_string())
            && status(&sa).is_some_and(|s| s.ready)
    });
    assert!(!rib_prefixes(&sa).contains(&"203.0.113.0/24".to_string()));
    apply(&store, &bgppeer("  numAllowedLocalASNumbers: 1\n"));
    wait("the route with our AS once in its path", 60, || {
        rib_prefixes(&sa).contains(&"203.0.113.0/24".to_string())
    });

    // logSeverityScreen: no speaker debug line at Info, some at Debug.
    wait("a failed connect to the dead peer", 60, || {
        peer(&sa, DEAD).is_some_and(|p| p.last_error.is_some())
    });
    let log = || std::fs::read_to_string(d.join("na.log")).unwrap();
    assert!(!log().contains("connect failed"), "debug line at Info");
    apply(
        &store,
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.na\nspec:\n  logSeverityScreen: Debug\n",
    );
    wait("the speaker's debug lines", 60, || {
        log().contains("connect failed")
    });
}
