//! `tortiectl lab relay` (hidden, started by `lab up` for an etcd
//! datastore): a TCP relay that lets the agents and the CNI plugin, which
//! run inside the lab's namespaces, reach an etcd on the host, loopback
//! included. A short-lived thread enters the router namespace (`setns(2)`,
//! per thread for network namespaces) only to bind the listening sockets
//! (a socket stays in the namespace it was created in); everything else
//! runs on the process's own threads in the host namespace, so each
//! accepted connection is forwarded to the host endpoint and bytes are
//! copied both ways until either side closes. Prints `ready` on stdout once
//! every address listens, then runs until killed (`lab down`).
//!
//! Must not: change any namespace's configuration, look at the bytes
//! (TLS would pass through unchanged), or listen anywhere but the
//! addresses it is given.

use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use anyhow::{bail, Context as _};
use clap::Args;
use nix::sched::{setns, CloneFlags};

/// `tortiectl lab relay --netns NS --route LISTEN=TARGET...`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The namespace to listen in (under /var/run/netns).
    #[arg(long)]
    netns: String,
    /// `LISTEN=TARGET`: listen on LISTEN (ip:port) in the namespace,
    /// forward to TARGET (host:port) from the host namespace.
    #[arg(long = "route", required = true)]
    routes: Vec<String>,
}

/// One parsed `--route`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    listen: SocketAddr,
    target: String,
}

fn parse_route(s: &str) -> anyhow::Result<Route> {
    let (listen, target) = s
        .split_once('=')
        .with_context(|| format!("--route {s:?}: expected LISTEN=TARGET"))?;
    let listen = listen
        .parse()
        .with_context(|| format!("--route {s:?}: {listen:?} is not ip:port"))?;
    if !target
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    {
        bail!("--route {s:?}: target {target:?} is not host:port");
    }
    Ok(Route {
        listen,
        target: target.to_string(),
    })
}

/// Binds `addrs` inside network namespace `netns` from a thread that
/// entered it; the calling thread stays where it is.
fn bind_in_netns(netns: &str, addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    super::name::check_netns_name(netns).map_err(|e| anyhow::anyhow!("--netns: {e}"))?;
    let path = Path::new("/var/run/netns").join(netns);
    let ns = File::open(&path).with_context(|| format!("namespace {}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(&ns, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns into {}", path.display()))?;
            addrs
                .iter()
                .map(|a| {
                    TcpListener::bind(a)
                        .with_context(|| format!("cannot listen on {a} in namespace {netns}"))
                })
                .collect()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread binding in {netns} panicked"))?
    })
}

/// Forwards one accepted connection to `target`.
async fn forward(mut inbound: tokio::net::TcpStream, target: &str) {
    let peer = inbound
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut outbound = match tokio::net::TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("relay: {peer} -> {target}: cannot connect: {e}");
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        eprintln!("relay: {peer} -> {target}: {e}");
    }
}

/// Accepts connections on `listener` forever, each forwarded to `target`.
async fn serve(listener: tokio::net::TcpListener, target: String) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let target = target.clone();
                tokio::spawn(async move { forward(conn, &target).await });
            }
            Err(e) => {
                eprintln!("relay: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Runs the relay until the process is killed.
pub fn relay(a: &RelayArgs) -> anyhow::Result<()> {
    let routes: Vec<Route> = a
        .routes
        .iter()
        .map(|r| parse_route(r))
        .collect::<anyhow::Result<_>>()?;
    let addrs: Vec<SocketAddr> = routes.iter().map(|r| r.listen).collect();
    let listeners = bind_in_netns(&a.netns, &addrs)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for (l, r) in listeners.into_iter().zip(routes) {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            eprintln!("relay: {} in {} -> {}", r.listen, a.netns, r.target);
            tokio::spawn(serve(l, r.target));
        }
        let mut out = std::io::stdout();
        writeln!(out, "ready")?;
        out.flush()?;
        std::future::pending::<anyhow::Result<()>>().await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_a_listen_address_and_a_host_endpoint() {
        assert_eq!(
            parse_route("10.0.1.1:2379=localhost:2379").unwrap(),
            Route {
                listen: "10.0.1.1:2379".parse().unwrap(),
                target: "localhost:2379".into()
            }
        );
        assert!(parse_route("10.0.1.1:2379=[::1]:2379").is_ok());
        let e = parse_route("10.0.1.1:2379").unwrap_err().to_string();
        assert!(e.contains("LISTEN=TARGET"), "{e}");
        let e = parse_route("h:1=127.0.0.1:2379").unwrap_err().to_string();
        assert!(e.contains("not ip:port"), "{e}");
        let e = parse_route("10.0.1.1:1=nohost").unwrap_err().to_string();
        assert!(e.contains("not host:port"), "{e}");
    }

    /// Loopback only: an echo server as the target, the relay in front.
    #[tokio::test]
    async fn bytes_go_both_ways_and_a_close_reaches_the_other_side() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut c, _) = echo.accept().await.unwrap();
            let (mut r, mut w) = c.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        tokio::spawn(serve(front, target));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let msg = vec![7u8; 100_000];
        c.write_all(&msg).await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }

    #[tokio::test]
    async fn an_unreachable_target_closes_the_connection() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = closed.local_addr().unwrap().to_string();
        drop(closed);
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        tokio::spawn(serve(front, target));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        use tokio::io::AsyncReadExt as _;
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("the relay closes the connection")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
