//! What the lab's pods answer and how reachability is measured.
//!
//! `tortiectl lab serve` (hidden, started by the lab for every pod): enters
//! the pod's namespace and answers on TCP and UDP ports 80 and 81 with the
//! pod's id (`NS/POD`) — a TCP connection gets the id and is closed, a UDP
//! datagram gets the id back. Runs until killed (`lab pod delete`,
//! `lab down`).
//!
//! `tortiectl lab probe`: from inside one pod's namespace, connects to
//! another pod's address (TCP, or a UDP datagram and its answer) with a
//! 1 s timeout; reachable when the answer is the target's id. Probes run in
//! parallel on a bounded pool of threads, each entering the source pod's
//! namespace (`setns(2)` is per thread for network namespaces).
//!
//! Must not: send anything to an address that is not a lab pod's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use nix::sched::{setns, CloneFlags};

/// The ports every lab pod answers on.
pub const PORTS: [u16; 2] = [80, 81];
/// How long a probe waits for its connection and answer.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// Probes in flight at once.
const PARALLEL: usize = 64;

/// `tortiectl lab serve --netns NS --id NS/POD` (hidden).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The pod's namespace (under /var/run/netns).
    #[arg(long)]
    netns: String,
    /// What to answer (the pod's `NS/POD`).
    #[arg(long)]
    id: String,
}

/// The transport of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// A TCP connection.
    Tcp,
    /// A UDP datagram and its answer.
    Udp,
}

/// Enters network namespace `netns` on the calling thread.
pub fn enter(netns: &str) -> anyhow::Result<()> {
    super::name::check_netns_name(netns).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = Path::new("/var/run/netns").join(netns);
    let ns = File::open(&path).with_context(|| format!("namespace {}", path.display()))?;
    setns(&ns, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns into {}", path.display()))
}

/// Runs the pod server until the process is killed.
pub fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    enter(&a.netns)?;
    let mut threads = Vec::new();
    for port in PORTS {
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        let tcp = TcpListener::bind(addr).with_context(|| format!("TCP port {port}"))?;
        let udp = UdpSocket::bind(addr).with_context(|| format!("UDP port {port}"))?;
        let id = a.id.clone();
        threads.push(std::thread::spawn(move || serve_tcp(&tcp, &id)));
        let id = a.id.clone();
        threads.push(std::thread::spawn(move || serve_udp(&udp, &id)));
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn serve_tcp(l: &TcpListener, id: &str) {
    for conn in l.incoming() {
        match conn {
            Ok(mut c) => {
                let _ = c.write_all(format!("{id}\n").as_bytes());
            }
            Err(_) => std::thread::park_timeout(Duration::from_millis(10)),
        }
    }
}

fn serve_udp(s: &UdpSocket, id: &str) {
    let mut buf = [0u8; 512];
    loop {
        if let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(format!("{id}\n").as_bytes(), from);
        }
    }
}

/// One probe from the current namespace: true when `to:port` answers `want`.
pub fn probe_once(to: IpAddr, port: u16, proto: Protocol, want: &str) -> bool {
    let addr = SocketAddr::new(to, port);
    let answer = match proto {
        Protocol::Tcp => (|| {
            let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
            s.set_read_timeout(Some(TIMEOUT)).ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        })(),
        Protocol::Udp => (|| {
            let s = UdpSocket::bind(SocketAddr::new(unspecified(to), 0)).ok()?;
            s.set_read_timeout(Some(TIMEOUT)).ok()?;
            s.send_to(b"probe\n", addr).ok()?;
            let mut buf = [0u8; 512];
            let (n, _) = s.recv_from(&mut buf).ok()?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        })(),
    };
    answer.is_some_and(|a| a.trim() == want)
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    }
}

/// A pod as the prober sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `NS/POD`.
    pub id: String,
    /// Its namespace (network namespace name).
    pub netns: String,
    /// Its address.
    pub ip: IpAddr,
}

/// Every pair `(from, to)` probed in parallel: `matrix[from][to]`.
pub fn matrix(
    from: &[Target],
    to: &[Target],
    port: u16,
    proto: Protocol,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, bool>>> {
    let jobs: Vec<(&Target, &Target)> = from
        .iter()
        .flat_map(|f| to.iter().map(move |t| (f, t)))
        .collect();
    let next = Mutex::new(jobs.into_iter());
    let out = Mutex::new(BTreeMap::<String, BTreeMap<String, bool>>::new());
    let errors = Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                let mut here: Option<String> = None;
                loop {
                    let Some((f, t)) = next.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                        return;
                    };
                    if here.as_deref() != Some(&f.netns) {
                        if let Err(e) = enter(&f.netns) {
                            errors
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(format!("{}: {e:#}", f.id));
                            continue;
                        }
                        here = Some(f.netns.clone());
                    }
                    let ok = probe_once(t.ip, port, proto, &t.id);
                    out.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(f.id.clone())
                        .or_default()
                        .insert(t.id.clone(), ok);
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    if !errors.is_empty() {
        bail!("cannot probe from {}", errors.join("; "));
    }
    Ok(out.into_inner().unwrap_or_default())
}
