//! `felix-bench`: route install, no-op resync and repair latency, with BIRD 2's
//! kernel protocol and `ip -batch` installing the same routes in the same run.
//!
//! ```text
//! cargo run --release -p tortie-felix-dataplane --example felix-bench -- [ROUTES] [ROUNDS]
//! ```
//! Root needed: every measurement uses a fresh namespace made here.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::RouteNetlinkMessage;
use tortie_felix::{NextHop, Reconciler, RouteKey, RouteScope, RouteSpec};
use tortie_felix_dataplane::nl::NlSocket;
use tortie_felix_dataplane::routes::{delete_msg, NetlinkRoutes};
use tortie_testkit::{unique_prefix, ChildGuard, Netns};

fn dst(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x1400_0000 + i) // 20.0.0.0 + i
}

fn routes(n: u32) -> BTreeMap<RouteKey, RouteSpec> {
    let nh = NextHop::via(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    (0..n)
        .map(|i| {
            let key = RouteKey {
                table: 254,
                dst: IpNet::V4(Ipv4Net::new(dst(i), 32).unwrap()),
            };
            (
                key,
                RouteSpec::unicast(80, RouteScope::Universe, vec![nh.clone()]),
            )
        })
        .collect()
}

fn node(tag: &str) -> Netns {
    let ns = Netns::create(&format!("{}{tag}", unique_prefix("bn"))).unwrap();
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ])
    .unwrap();
    ns.ip(&["addr", "add", "10.0.0.1/16", "dev", "veth0"])
        .unwrap();
    ns.ip(&["link", "set", "veth0", "up"]).unwrap();
    ns.ip(&["link", "set", "veth1", "up"]).unwrap();
    ns
}

fn count(sock: &mut NlSocket, proto: u8) -> usize {
    let mut req = RouteMessage::default();
    req.header.address_family = netlink_packet_route::AddressFamily::Inet;
    req.header.protocol = proto.into();
    req.header.table = 254;
    sock.dump(RouteNetlinkMessage::GetRoute(req))
        .map(|v| v.len())
        .unwrap_or(0)
}

struct TortieRun {
    install: f64,
    resync: f64,
    dump: f64,
    raw_dump: f64,
    repair_ms: Vec<f64>,
}

fn tortie(n: u32) -> TortieRun {
    let ns = node("t");
    let path = ns.path();
    let dp = NetlinkRoutes::open(Some(Path::new(&path)), 254, &[80, 84]).unwrap();
    let mut r = Reconciler::new(dp, Duration::from_secs(3600));
    r.set_ownership(tortie_felix::Ownership::new(
        [80, 84],
        vec!["20.0.0.0/8".parse().unwrap()],
    ));
    let t = Instant::now();
    r.set_desired(routes(n));
    let rep = r.apply(Instant::now()).unwrap();
    let install = t.elapsed().as_secs_f64();
    assert_eq!((rep.replaced, rep.failed), (n as usize, 0));
    r.request_resync();
    let t = Instant::now();
    let rep = r.apply(Instant::now()).unwrap();
    let resync = t.elapsed().as_secs_f64();
    assert!(rep.resynced && rep.replaced == 0);
    let t = Instant::now();
    let dumped = tortie_felix::RouteDataplane::dump_routes(r.dataplane_mut()).unwrap();
    let dump = t.elapsed().as_secs_f64();
    assert_eq!(dumped.len(), n as usize);
    // The kernel's share: the same filtered dump, messages counted, not parsed.
    let mut sock = NlSocket::open(Some(Path::new(&path))).unwrap();
    let mut req = RouteMessage::default();
    req.header.address_family = netlink_packet_route::AddressFamily::Inet;
    req.header.protocol = 80.into();
    req.header.table = 254;
    let t = Instant::now();
    let mut msgs = 0usize;
    sock.dump_raw(RouteNetlinkMessage::GetRoute(req), |item| {
        if let tortie_felix_dataplane::nl::DumpItem::Message(_) = item {
            msgs += 1;
        }
    })
    .unwrap();
    let raw_dump = t.elapsed().as_secs_f64();
    assert_eq!(msgs, n as usize);
    let repair_ms = repair(&ns, n);
    TortieRun {
        install,
        resync,
        dump,
        raw_dump,
        repair_ms,
    }
}

/// Deletes one of our routes 100 times from outside and times until felix has put it back.
fn repair(ns: &Netns, n: u32) -> Vec<f64> {
    let path = ns.path();
    let p = Path::new(&path);
    let cfg = tortie_felix::FelixConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let mtu_file = dir.path().join("mtu").to_string_lossy().into_owned();
    let mut f =
        tortie_felix_dataplane::FelixDataplane::open(tortie_felix_dataplane::DataplaneOptions {
            config: tortie_felix::FelixConfig { mtu_file, ..cfg },
            netns: Some(p.to_path_buf()),
            resync_interval: Duration::from_secs(3600),
            ipip: tortie_felix_dataplane::IpipSupport::Skip,
            nat: tortie_felix_dataplane::NatSupport::Skip,
        })
        .unwrap();
    let mut d = tortie_felix::DesiredState {
        routes: routes(n),
        ..Default::default()
    };
    d.mtus.pod = 1500;
    f.set_desired(d);
    f.apply(Instant::now()).unwrap();
    let (monitors, events) = f.watch(4096).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let th = std::thread::spawn(move || {
        f.run(&events, &s2);
        drop(monitors);
    });
    let mut sock = NlSocket::open(Some(p)).unwrap();
    let mut events = NlSocket::open_groups(Some(p), &[7]).unwrap(); // RTNLGRP_IPV4_ROUTE
    let mut out = Vec::new();
    for i in 0..100 {
        let key = RouteKey {
            table: 254,
            dst: IpNet::V4(Ipv4Net::new(dst(i * 997 % n), 32).unwrap()),
        };
        let t = Instant::now();
        sock.request(RouteNetlinkMessage::DelRoute(delete_msg(&key, 80)), 0)
            .unwrap();
        // The route's RTM_DELROUTE must come first, then felix's RTM_NEWROUTE.
        let is_key = |r: &RouteMessage| {
            r.attributes.iter().any(|a| {
                matches!(a, netlink_packet_route::route::RouteAttribute::Destination(
                    netlink_packet_route::route::RouteAddress::Inet(d)) if IpNet::from(IpAddr::V4(*d)) == key.dst)
            })
        };
        let mut deleted = false;
        'wait: loop {
            for m in events.recv_events().unwrap() {
                match m {
                    RouteNetlinkMessage::DelRoute(r) if is_key(&r) => deleted = true,
                    RouteNetlinkMessage::NewRoute(r) if deleted && is_key(&r) => break 'wait,
                    _ => {}
                }
            }
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    th.join().unwrap();
    out
}

fn ip_batch(n: u32) -> f64 {
    let ns = node("i");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for i in 0..n {
        writeln!(file, "route add {}/32 via 10.0.0.2 proto 80", dst(i)).unwrap();
    }
    let t = Instant::now();
    let ok = Command::new("ip")
        .args(["-n", ns.name(), "-batch"])
        .arg(file.path())
        .status()
        .unwrap();
    assert!(ok.success());
    t.elapsed().as_secs_f64()
}

/// BIRD 2: a static protocol with the routes, exported by the kernel protocol.
/// Returns (start → all in kernel, first route → all in kernel).
fn bird(n: u32) -> (f64, f64) {
    let ns = node("b");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bird.conf");
    let mut c =
        String::from("router id 10.0.0.1;\nprotocol device {}\nprotocol static st { ipv4;\n");
    for i in 0..n {
        c.push_str(&format!("route {}/32 via 10.0.0.2;\n", dst(i)));
    }
    c.push_str("}\nprotocol kernel { ipv4 { export all; }; learn off; scan time 3600; }\n");
    std::fs::write(&conf, c).unwrap();
    let mut sock = NlSocket::open(Some(Path::new(&ns.path()))).unwrap();
    let t0 = Instant::now();
    let _bird = ChildGuard::spawn(
        "bird",
        ns.command("bird")
            .args(["-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(dir.path().join("ctl"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let mut first = None;
    loop {
        let c = count(&mut sock, 12);
        if c > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if c >= n as usize {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "bird did not install the routes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let end = Instant::now();
    (
        (end - t0).as_secs_f64(),
        (end - first.unwrap_or(t0)).as_secs_f64(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(100_000, |s| s.parse().unwrap());
    let rounds: usize = args.next().map_or(3, |s| s.parse().unwrap());
    let (mut ti, mut tr, mut rep, mut ib, mut bs, mut bf) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let t = tortie(n);
        let i = ip_batch(n);
        let (b_start, b_first) = bird(n);
        println!(
            "round {round}: tortie install {:.3} s, resync {:.1} ms (dump+parse {:.1} ms, kernel dump alone {:.1} ms), repair p50 {:.3} ms | ip -batch {:.3} s | bird start->all {:.3} s, first->all {:.3} s",
            t.install, t.resync * 1e3, t.dump * 1e3, t.raw_dump * 1e3, median(t.repair_ms.clone()), i, b_start, b_first
        );
        ti.push(t.install);
        tr.push(t.resync);
        rep.extend(t.repair_ms);
        ib.push(i);
        bs.push(b_start);
        bf.push(b_first);
    }
    let mut r = rep.clone();
    r.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("routes {n}, rounds {rounds} (medians)");
    println!("tortie install        {:.3} s", median(ti));
    println!("tortie no-op resync   {:.1} ms", median(tr) * 1e3);
    println!(
        "tortie repair         p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} samples)",
        r[r.len() / 2],
        r[r.len() * 9 / 10],
        r[(r.len() * 99).div_ceil(100) - 1],
        r[r.len() - 1],
        r.len()
    );
    println!("ip -batch install     {:.3} s", median(ib));
    println!(
        "BIRD 2 kernel proto   {:.3} s first route -> all ({:.3} s from process start)",
        median(bf),
        median(bs)
    );
}
