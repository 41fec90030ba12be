//! Many route reflector clients in one process, for the reflection fan-out
//! benchmark (`benches/fanout.sh`): one iBGP session per source address,
//! each client announces its own /26s once every session is up, then
//! counts the prefixes reflected to it.
//!
//! ```text
//! rrclients RR_ADDR:PORT FIRST_SOURCE CLIENTS PREFIXES_PER_CLIENT
//! ```
//! Sources are FIRST_SOURCE + i (they must exist on an interface). Prints
//! the time from the first announcement until every client holds all
//! other clients' prefixes.

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Barrier;
use tortie_bgp_wire::{
    check, encode, encode_announcements, parse, AsPath, Capability, DecodeContext, Family, Message,
    Nlri, OpenMsg, Origin, PathAttributes, Prefix,
};

const ASN: u32 = 65001;

struct Args {
    rr: SocketAddr,
    first: Ipv4Addr,
    clients: u32,
    per_client: u32,
}

fn args() -> anyhow::Result<Args> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 4 {
        bail!("usage: rrclients RR_ADDR:PORT FIRST_SOURCE CLIENTS PREFIXES_PER_CLIENT");
    }
    Ok(Args {
        rr: a[0].parse().context("RR_ADDR:PORT")?,
        first: a[1].parse().context("FIRST_SOURCE")?,
        clients: a[2].parse().context("CLIENTS")?,
        per_client: a[3].parse().context("PREFIXES_PER_CLIENT")?,
    })
}

async fn read(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    ctx: &DecodeContext,
) -> anyhow::Result<Message> {
    loop {
        if let Some(len) = check(buf, ctx)? {
            let m = parse(&buf[..len], ctx)?;
            buf.advance(len);
            return Ok(m);
        }
        if s.read_buf(buf).await? == 0 {
            bail!("connection closed");
        }
    }
}

/// The /26s of client `i`: 10.(100 + i / 256).(i % 256).0/26-style blocks.
fn prefixes(i: u32, n: u32) -> Vec<Nlri> {
    (0..n)
        .map(|k| {
            let idx = i * n + k;
            let addr = Ipv4Addr::from(0x0A00_0000u32 + idx * 64);
            Nlri::new(Prefix::new(addr.into(), 26).expect("valid /26"))
        })
        .collect()
}

/// Connects and exchanges OPEN/KEEPALIVE; a refused or closed attempt (BIRD
/// closes connections while its protocols are still starting) is retried
/// for up to 30 s.
async fn establish(
    a: &Args,
    src: Ipv4Addr,
    ctx: &DecodeContext,
) -> anyhow::Result<(TcpStream, BytesMut)> {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match handshake(a, src, ctx).await {
            Ok(x) => return Ok(x),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

async fn handshake(
    a: &Args,
    src: Ipv4Addr,
    ctx: &DecodeContext,
) -> anyhow::Result<(TcpStream, BytesMut)> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src.into(), 0))?;
    let mut s = sock.connect(a.rr).await.context("connect")?;
    let mut out = Vec::new();
    // BIRD refuses a session without the multiprotocol capability of its channel.
    let caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::FourOctetAs(ASN),
    ];
    encode(
        &Message::Open(OpenMsg::new(ASN, 240, src, caps)),
        ctx,
        &mut out,
    )?;
    encode(&Message::Keepalive, ctx, &mut out)?;
    s.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(1 << 16);
    loop {
        match read(&mut s, &mut buf, ctx).await? {
            Message::Keepalive => return Ok((s, buf)),
            Message::Notification(n) => bail!("{src}: NOTIFICATION {n:?}"),
            _ => {}
        }
    }
}

async fn client(a: Arc<Args>, i: u32, start: Arc<Barrier>) -> anyhow::Result<()> {
    let src = Ipv4Addr::from(u32::from(a.first) + i);
    let ctx = DecodeContext::four_octet();
    let (mut s, mut buf) = establish(&a, src, &ctx).await?;
    let mut out = Vec::new();
    start.wait().await;
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(src),
        local_pref: Some(100),
        ..Default::default()
    };
    out.clear();
    encode_announcements(&attrs, &prefixes(i, a.per_client), &ctx, &mut out)?;
    s.write_all(&out).await?;
    let want = ((a.clients - 1) * a.per_client) as usize;
    let mut have: HashSet<Prefix> = HashSet::with_capacity(want);
    while have.len() < want {
        match read(&mut s, &mut buf, &ctx).await? {
            Message::Update(u) => {
                for n in &u.withdrawn {
                    have.remove(&n.prefix);
                }
                have.extend(u.nlri.iter().map(|n| n.prefix));
            }
            Message::Notification(n) => bail!("client {i}: NOTIFICATION {n:?}"),
            _ => {}
        }
    }
    // Stay up (keepalives are not needed: hold time 240 s) until everyone is done.
    start.wait().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Arc::new(args()?);
    let start = Arc::new(Barrier::new(a.clients as usize + 1));
    let mut tasks = Vec::new();
    for i in 0..a.clients {
        tasks.push(tokio::spawn(client(a.clone(), i, start.clone())));
    }
    start.wait().await;
    let t0 = Instant::now();
    start.wait().await;
    let elapsed = t0.elapsed();
    for t in tasks {
        t.await??;
    }
    println!(
        "{} clients x {} prefixes: all reflected in {:.3} s",
        a.clients,
        a.per_client,
        elapsed.as_secs_f64()
    );
    Ok(())
}
