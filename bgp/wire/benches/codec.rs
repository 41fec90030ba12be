//! Decode and encode throughput of full-size UPDATEs carrying IPv4 /32 and /26
//! NLRI, in prefixes per second on one core.
//!
//! Run: `cargo bench -p tortie-bgp-wire --bench codec`
//!
//! Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time,
//! so that other work on a shared 2-core machine does not count against us.

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nix::time::{clock_gettime, ClockId};
use tortie_bgp_wire::{
    decode, encode_announcements, AsPath, Community, DecodeContext, Family, Message, Nlri, Origin,
    PathAttributes, Prefix,
};

fn attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([64512, 64513])),
        next_hop: Some(Ipv4Addr::new(10, 0, 1, 5)),
        med: Some(0),
        communities: vec![Community::new(64512, 100)],
        ..Default::default()
    }
}

fn prefixes(n: u32, len: u8, add_path: bool) -> Vec<Nlri> {
    (0..n)
        .map(|i| {
            let p = Prefix::new(
                Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i << (32 - len))).into(),
                len,
            )
            .unwrap();
            Nlri {
                path_id: add_path.then_some(i),
                prefix: p,
            }
        })
        .collect()
}

/// The first full-size UPDATE the encoder produces for these prefixes, and how many it carries.
fn full_update(len: u8, ctx: &DecodeContext) -> (Vec<u8>, usize) {
    let add_path = ctx.has_add_path(Family::IPV4_UNICAST);
    let mut out = Vec::new();
    encode_announcements(&attrs(), &prefixes(2000, len, add_path), ctx, &mut out).unwrap();
    let (msg, used) = decode(&out, ctx).unwrap().unwrap();
    let Message::Update(u) = msg else {
        unreachable!()
    };
    (out[..used].to_vec(), u.nlri.len())
}

/// Thread CPU time in nanoseconds.
struct CpuTime;

fn thread_cpu_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanos
    }
}

/// Formats CPU nanoseconds as µs and throughput as millions of prefixes per CPU second.
struct CpuNanos;

impl ValueFormatter for CpuNanos {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e3);
        "µs(cpu)"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let (Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n)) = *t;
        let n = n as f64;
        values.iter_mut().for_each(|v| *v = n * 1e9 / *v / 1e6);
        "Mprefix/s(cpu)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns(cpu)"
    }
}

fn bench_decode(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("decode_update");
    let plain = DecodeContext::four_octet();
    let add_path = DecodeContext {
        add_path: vec![Family::IPV4_UNICAST],
        ..DecodeContext::four_octet()
    };
    for (name, len, ctx) in [
        ("v4_32", 32, &plain),
        ("v4_26", 26, &plain),
        ("v4_32_add_path", 32, &add_path),
    ] {
        let (bytes, n) = full_update(len, ctx);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(name, |b| b.iter(|| decode(black_box(&bytes), ctx).unwrap()));
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("encode_update");
    let ctx = DecodeContext::four_octet();
    let a = attrs();
    for (name, len) in [("v4_32", 32u8), ("v4_26", 26)] {
        let (_, n) = full_update(len, &ctx);
        let nlri = prefixes(n as u32, len, false);
        let mut out = Vec::with_capacity(8192);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode_announcements(black_box(&a), black_box(&nlri), &ctx, &mut out).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench_decode, bench_encode
}
criterion_main!(benches);
