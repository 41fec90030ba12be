//! Many route reflector clients in one process, for the reflection fan-out
//! benchmark (`benches/fanout.sh`): one iBGP session per source address,
//! each client only connects (never listens, as monitoring tools and test
//! harnesses do), announces its own /26s once every session is up, then
//! counts the prefixes reflected to it.
//!
//! ```text
//! rrclients RR_ADDR:PORT FIRST_SOURCE CLIENTS PREFIXES_PER_CLIENT [SETTLE_SECONDS]
//! ```
//! With SETTLE_SECONDS the announcements wait that long after every
//! session is up (FRR, for one, delays the first UPDATEs to new peers by
//! its coalesce time, up to 10 s).
//! Sources are FIRST_SOURCE + i (they must exist on an interface). A
//! refused or closed attempt, or one unanswered for 5 s, is retried after
//! 100 ms, for up to 60 s.
//! Prints one line of `key=value`: `setup` (from the start until every
//! session is up), `failed` (attempts that did not reach Established),
//! `reflect` (from the first announcement until every client holds all
//! other clients' prefixes) and `total` (start to the end), in seconds.

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tortie_bgp_wire::{
    check, encode, encode_announcements, parse, AsPath, Capability, DecodeContext, Family, Message,
    Nlri, OpenMsg, Origin, PathAttributes, Prefix,
};

const ASN: u32 = 65001;

struct Args {
    /// Attempts that did not reach Established, over all clients.
    failed: AtomicU64,
    rr: SocketAddr,
    first: Ipv4Addr,
    clients: u32,
    per_client: u32,
    settle: std::time::Duration,
}

fn args() -> anyhow::Result<Args> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if !(4..=5).contains(&a.len()) {
        bail!("usage: rrclients RR_ADDR:PORT FIRST_SOURCE CLIENTS PREFIXES_PER_CLIENT [SETTLE_SECONDS]");
    }
    let settle: f64 = a
        .get(4)
        .map_or(Ok(0.0), |s| s.parse())
        .context("SETTLE_SECONDS")?;
    Ok(Args {
        failed: AtomicU64::new(0),
        rr: a[0].parse().context("RR_ADDR:PORT")?,
        first: a[1].parse().context("FIRST_SOURCE")?,
        clients: a[2].parse().context("CLIENTS")?,
        per_client: a[3].parse().context("PREFIXES_PER_CLIENT")?,
        settle: std::time::Duration::from_secs_f64(settle),
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

/// Connects and exchanges OPEN/KEEPALIVE; a refused, closed or unanswered
/// attempt (BIRD closes connections while its protocols are still
/// starting) is counted and retried for up to 60 s.
async fn establish(
    a: &Args,
    src: Ipv4Addr,
    ctx: &DecodeContext,
) -> anyhow::Result<(TcpStream, BytesMut)> {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // An attempt the RR neither answers nor closes (BIRD may leave a
        // connection in its accept queue) is given up after 5 s.
        let attempt =
            tokio::time::timeout(std::time::Duration::from_secs(5), handshake(a, src, ctx));
        match attempt
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in 5 s")))
        {
            Ok(x) => return Ok(x),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {
                a.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
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

/// What a client tells the main task.
enum Report {
    /// Its session is Established.
    Up,
    /// It holds every other client's prefixes.
    Done,
}

/// One client: up, waits for `go`, announces, reads until it holds every
/// other client's prefixes, then keeps its session (hold time 240 s, no
/// KEEPALIVEs needed) until the process ends, so that no session drop
/// withdraws routes that others still count.
async fn client(
    a: Arc<Args>,
    i: u32,
    tx: mpsc::UnboundedSender<anyhow::Result<Report>>,
    mut go: watch::Receiver<bool>,
) {
    let mut kept = None;
    let r = run_client(&a, i, &tx, &mut go, &mut kept).await;
    let _ = tx.send(r.map(|()| Report::Done));
    std::future::pending::<()>().await;
    drop(kept);
}

async fn run_client(
    a: &Args,
    i: u32,
    tx: &mpsc::UnboundedSender<anyhow::Result<Report>>,
    go: &mut watch::Receiver<bool>,
    kept: &mut Option<TcpStream>,
) -> anyhow::Result<()> {
    let src = Ipv4Addr::from(u32::from(a.first) + i);
    let ctx = DecodeContext::four_octet();
    let (s, mut buf) = establish(a, src, &ctx).await?;
    let s = kept.insert(s);
    let _ = tx.send(Ok(Report::Up));
    go.wait_for(|g| *g).await?;
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(src),
        local_pref: Some(100),
        ..Default::default()
    };
    let mut out = Vec::new();
    encode_announcements(&attrs, &prefixes(i, a.per_client), &ctx, &mut out)?;
    s.write_all(&out).await?;
    let want = ((a.clients - 1) * a.per_client) as usize;
    let mut have: HashSet<Prefix> = HashSet::with_capacity(want);
    while have.len() < want {
        match read(s, &mut buf, &ctx).await? {
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
    Ok(())
}

/// Waits for `n` reports `want` accepts; the first failure ends the run.
async fn gather(
    rx: &mut mpsc::UnboundedReceiver<anyhow::Result<Report>>,
    n: u32,
    want: fn(&Report) -> bool,
) -> anyhow::Result<()> {
    for _ in 0..n {
        match rx.recv().await {
            Some(Ok(r)) if want(&r) => {}
            Some(Ok(_)) => bail!("a client reported out of turn"),
            Some(Err(e)) => return Err(e),
            None => bail!("every client is gone"),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Arc::new(args()?);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (go_tx, go_rx) = watch::channel(false);
    let begin = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.clients {
        tasks.spawn(client(a.clone(), i, tx.clone(), go_rx.clone()));
    }
    gather(&mut rx, a.clients, |r| matches!(r, Report::Up)).await?;
    let setup = begin.elapsed();
    eprintln!("every session up after {:.3} s", setup.as_secs_f64());
    tokio::time::sleep(a.settle).await;
    let t0 = Instant::now();
    go_tx.send(true)?;
    gather(&mut rx, a.clients, |r| matches!(r, Report::Done)).await?;
    let reflect = t0.elapsed();
    let total = begin.elapsed();
    println!(
        "clients={} prefixes={} setup={:.3} failed={} reflect={:.3} total={:.3}",
        a.clients,
        a.clients * a.per_client,
        setup.as_secs_f64(),
        a.failed.load(Ordering::Relaxed),
        reflect.as_secs_f64(),
        total.as_secs_f64()
    );
    Ok(())
}
