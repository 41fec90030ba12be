//! Pure-RIB measurements (no sockets): per-route memory with 1,000,000
//! routes from one peer, time to process 100,000 announcements, and the
//! Adj-RIB-Out work for 200 route reflector clients with 20,000 prefixes.
//! Run: `cargo bench -p tortie-bgp-rib --bench rib` (prints a Markdown table);
//! `cargo bench -p tortie-bgp-rib --bench rib -- NAME` runs one measure
//! (`announcements`, `fan_out`, `memory`), e.g. under `perf record`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use tortie_bgp_rib::{
    DownKind, ImportScope, LocalAddrs, PeerInfo, PeerRole, PoolConfig, Rib, RibConfig,
};
use tortie_bgp_wire::{
    encode_announcements, AsPath, DecodeContext, Nlri, Origin, PathAttributes, Prefix, UpdateMsg,
};

const ASN: u32 = 64512;

/// Resident set size of this process in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn update(
    next_hop: Ipv4Addr,
    as_path: &[u32],
    prefixes: impl Iterator<Item = Prefix>,
) -> UpdateMsg {
    UpdateMsg {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(as_path.iter().copied())),
            next_hop: Some(next_hop),
            local_pref: Some(100),
            ..Default::default()
        },
        nlri: prefixes.map(Nlri::new).collect(),
        ..Default::default()
    }
}

fn host(i: u32, len: u8) -> Prefix {
    Prefix::new(
        IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + (i << (32 - len)))),
        len,
    )
    .unwrap()
}

fn external_peer(addr: Ipv4Addr) -> PeerInfo {
    let mut p = PeerInfo::new(IpAddr::V4(addr), 65000, addr, ASN);
    p.import = ImportScope::External;
    p
}

/// Feeds `n` /32s from one eBGP peer, 1,000 per UPDATE; returns (seconds, RIB).
fn ingest(n: u32) -> (f64, Rib) {
    let mut rib = Rib::new(
        RibConfig::new(ASN, "10.0.0.1".parse().unwrap()),
        Duration::ZERO,
    );
    let peer: Ipv4Addr = "192.168.0.2".parse().unwrap();
    rib.peer_up(external_peer(peer), Duration::ZERO).unwrap();
    let start = Instant::now();
    for chunk in 0..n.div_ceil(1000) {
        let msg = update(
            peer,
            &[65000],
            (chunk * 1000..((chunk + 1) * 1000).min(n)).map(|i| host(i, 32)),
        );
        let out = rib.update(IpAddr::V4(peer), &msg, Duration::ZERO).unwrap();
        assert_eq!(out.fib.len(), msg.nlri.len());
    }
    (start.elapsed().as_secs_f64(), rib)
}

fn memory() {
    let n = 1_000_000;
    let before = rss();
    let (secs, rib) = ingest(n);
    let after = rss();
    assert_eq!(rib.prefix_count(), n as usize);
    println!(
        "| 1,000,000 /32 from one eBGP peer | RSS growth {:.1} B/route; structures {:.1} B/route | ingest {:.2} s ({:.0} routes/s) |",
        (after - before) as f64 / f64::from(n),
        rib.approx_bytes() as f64 / f64::from(n),
        secs,
        f64::from(n) / secs
    );
    let mut rib = rib;
    let start = Instant::now();
    let out = rib
        .peer_down(
            "192.168.0.2".parse().unwrap(),
            DownKind::Hard,
            Duration::ZERO,
        )
        .unwrap();
    println!(
        "| hard peer down with 1,000,000 routes | {:.0} ms | {} FIB removals |",
        start.elapsed().as_secs_f64() * 1e3,
        out.fib.len()
    );
}

fn announcements() {
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(ingest(100_000).0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "| 100,000 announcements, one peer, 1,000 per UPDATE | median of 5: {:.1} ms | min {:.1} ms, max {:.1} ms |",
        times[2] * 1e3,
        times[0] * 1e3,
        times[4] * 1e3
    );
}

fn client(i: u32) -> PeerInfo {
    let addr = Ipv4Addr::from(0x0a01_0000 + i);
    let mut p = PeerInfo::new(IpAddr::V4(addr), ASN, addr, ASN);
    p.role = PeerRole::IbgpClient;
    p.local = LocalAddrs {
        v4: Some("10.0.0.1".parse().unwrap()),
        v6: None,
    };
    p
}

fn reflector() -> Rib {
    let mut cfg = RibConfig::new(ASN, "10.0.0.1".parse().unwrap());
    cfg.cluster_id = Some("1.1.1.1".parse().unwrap());
    cfg.policy.pools.push(PoolConfig {
        cidr: "11.0.0.0/8".parse().unwrap(),
        disable_bgp_export: false,
    });
    Rib::new(cfg, Duration::ZERO)
}

/// 200 clients up, then each announces 100 /26s: the RIB computes what every
/// client must be sent, once per update group; then every batch is encoded once.
fn fan_out_live() {
    let mut rib = reflector();
    for i in 0..200 {
        rib.peer_up(client(i), Duration::ZERO).unwrap();
    }
    let ctx = DecodeContext::four_octet();
    let start = Instant::now();
    let (mut batches, mut receivers, mut bytes) = (0, 0, 0usize);
    for i in 0..200u32 {
        let addr = Ipv4Addr::from(0x0a01_0000 + i);
        let msg = update(addr, &[], (i * 100..(i + 1) * 100).map(|k| host(k, 26)));
        let out = rib.update(IpAddr::V4(addr), &msg, Duration::ZERO).unwrap();
        for b in &out.updates {
            batches += 1;
            receivers += b.peers.len();
            let mut wire = Vec::new();
            for a in &b.announce {
                encode_announcements(&a.attrs, &a.nlri, &ctx, &mut wire).unwrap();
            }
            bytes += wire.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| RR: 200 clients announce 20,000 /26 (100 each), reflected to the other 199 | {:.1} ms incl. encoding | {batches} batches encoded once each for {receivers} receivers, {:.2} MB formatted |",
        secs * 1e3,
        bytes as f64 / 1e6
    );
}

/// The same 20,000 prefixes to 200 clients that come up afterwards.
fn fan_out_initial() {
    let mut rib = reflector();
    let src: Ipv4Addr = "10.2.0.1".parse().unwrap();
    let mut c = client(0);
    c.addr = IpAddr::V4(src);
    rib.peer_up(c, Duration::ZERO).unwrap();
    for chunk in 0..20u32 {
        let msg = update(
            src,
            &[],
            (chunk * 1000..(chunk + 1) * 1000).map(|k| host(k, 26)),
        );
        rib.update(IpAddr::V4(src), &msg, Duration::ZERO).unwrap();
    }
    let start = Instant::now();
    let mut sent = 0;
    for i in 1..=200 {
        let out = rib.peer_up(client(i), Duration::ZERO).unwrap();
        sent += out
            .updates
            .iter()
            .map(|b| b.announce.iter().map(|a| a.nlri.len()).sum::<usize>())
            .sum::<usize>();
    }
    println!(
        "| RR: initial Adj-RIB-Out of 200 clients coming up, 20,000 prefixes each | {:.1} ms | {sent} NLRI computed |",
        start.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    println!("| measure | result | detail |");
    println!("|---|---|---|");
    if run("announcements") {
        announcements();
    }
    if run("fan_out") {
        fan_out_live();
        fan_out_initial();
    }
    if run("memory") {
        memory();
    }
}
