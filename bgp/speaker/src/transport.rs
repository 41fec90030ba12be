//! TCP for BGP: outgoing connections and the listener, with TCP MD5
//! (RFC 2385), GTSM (RFC 5082), multihop TTL and a source address.

use crate::config::PeerConfig;
use crate::sys;
use socket2::SockRef;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// RFC 5082 §3: GTSM packets are sent with TTL 255 and must arrive with
/// at least 256 - hops.
fn gtsm_min_ttl(hops: u8) -> u8 {
    255u8.saturating_sub(hops.max(1)).saturating_add(1)
}

/// Applies the peer's TTL policy to a socket (connected or about to be).
pub fn apply_ttl(sock: &impl AsFd, peer: &PeerConfig) -> io::Result<()> {
    let s = SockRef::from(sock);
    let v6 = peer.address.is_ipv6();
    let set_ttl = |ttl: u32| {
        if v6 {
            s.set_unicast_hops_v6(ttl)
        } else {
            s.set_ttl(ttl)
        }
    };
    if let Some(hops) = peer.ttl_security {
        // RFC 5082 §3: send with TTL 255, accept only 256 - hops and above.
        set_ttl(255)?;
        sys::set_min_ttl(sock.as_fd(), v6, gtsm_min_ttl(hops))?;
    } else if let Some(ttl) = peer.multihop_ttl {
        set_ttl(u32::from(ttl))?;
    }
    Ok(())
}

/// Connects to the peer within `timeout`, with its source address, MD5
/// password and TTL policy.
pub async fn connect(peer: &PeerConfig, timeout: Duration) -> io::Result<TcpStream> {
    let sock = if peer.address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = peer.local_address {
        sock.bind(SocketAddr::new(local, 0))?;
    }
    if let Some(pw) = &peer.password {
        sys::set_md5_key(sock.as_fd(), peer.address, Some(pw.as_bytes()))?;
    }
    apply_ttl(&sock, peer)?;
    let stream = tokio::time::timeout(timeout, sock.connect(peer.remote()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, timeout_message(peer)))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Why a connect timed out. With TCP-MD5 the likely cause is a password
/// mismatch: RFC 2385 §2.0 has the peer's kernel drop our segments
/// silently, so nothing else tells.
pub(crate) fn timeout_message(peer: &PeerConfig) -> &'static str {
    if peer.password.is_some() {
        "connect timed out (TCP-MD5 is on: a peer with another password, or none, drops our packets)"
    } else {
        "connect timed out"
    }
}

/// Binds the BGP listener (address reuse on, IPv6 listeners dual-stack).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    // Room for a whole cluster connecting at once (a route reflector's
    // clients after its restart): with 128, SYNs beyond it were dropped and
    // retried by the clients' kernels a second later.
    sock.listen(LISTEN_BACKLOG)
}

/// The listener's accept queue (the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Makes the listener (and so its SYN-ACKs) send with TTL 255, as GTSM
/// peers require (RFC 5082 §3). The minimum TTL is set per accepted
/// connection, never on the listener, so other peers are not affected.
pub fn set_listener_ttl_255(listener: &TcpListener) -> io::Result<()> {
    let s = SockRef::from(listener);
    if listener.local_addr()?.is_ipv6() {
        s.set_unicast_hops_v6(255)
    } else {
        s.set_ttl(255)
    }
}

/// Installs (or removes, with `None`) a peer's MD5 key on the listener so
/// that its connections are accepted (RFC 2385 §4: segments without the
/// right digest are dropped by the kernel).
pub fn set_listener_md5(listener: &TcpListener, peer: IpAddr, key: Option<&str>) -> io::Result<()> {
    let is_v6_listener = listener.local_addr()?.is_ipv6();
    let addr = match peer {
        // A dual-stack IPv6 listener sees IPv4 peers as v4-mapped addresses.
        IpAddr::V4(v4) if is_v6_listener => IpAddr::V6(v4.to_ipv6_mapped()),
        other => other,
    };
    sys::set_md5_key(listener.as_fd(), addr, key.map(str::as_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtsm_minimum_ttl_is_256_minus_hops() {
        assert_eq!(gtsm_min_ttl(1), 255);
        assert_eq!(gtsm_min_ttl(2), 254);
        assert_eq!(gtsm_min_ttl(0), 255);
        assert_eq!(gtsm_min_ttl(255), 1);
    }

    #[tokio::test]
    async fn md5_keys_can_be_set_on_a_listener_and_a_connection() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        set_listener_md5(&l, peer, Some("secret")).unwrap();
        let mut pc = PeerConfig::new(peer, 65001);
        pc.port = l.local_addr().unwrap().port();
        pc.password = Some("secret".into());
        let both = async { tokio::join!(connect(&pc, Duration::from_secs(5)), l.accept()) };
        let (c, a) = tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .unwrap();
        assert!(c.is_ok() && a.is_ok(), "{c:?} {a:?}");
    }

    #[test]
    fn multihop_sets_the_ttl_of_our_packets() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let mut pc = PeerConfig::new("192.0.2.1".parse().unwrap(), 65001);
        pc.multihop_ttl = Some(5);
        apply_ttl(&s, &pc).unwrap();
        assert_eq!(s.ttl().unwrap(), 5);
    }

    #[tokio::test]
    async fn gtsm_sockets_talk_to_each_other_with_ttl_255() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut pc = PeerConfig::new("127.0.0.1".parse().unwrap(), 65001);
        pc.port = l.local_addr().unwrap().port();
        pc.ttl_security = Some(1);
        set_listener_ttl_255(&l).unwrap();
        let both = async { tokio::join!(connect(&pc, Duration::from_secs(5)), l.accept()) };
        let (c, a) = tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .unwrap();
        assert!(c.is_ok() && a.is_ok(), "{c:?} {a:?}");
        let c = c.unwrap();
        assert_eq!(SockRef::from(&c).ttl().unwrap(), 255);
    }

    #[tokio::test]
    async fn a_connection_without_the_md5_key_is_not_accepted() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        set_listener_md5(&l, "127.0.0.1".parse().unwrap(), Some("secret")).unwrap();
        let mut pc = PeerConfig::new("127.0.0.1".parse().unwrap(), 65001);
        pc.port = l.local_addr().unwrap().port();
        let c = connect(&pc, Duration::from_millis(300)).await;
        assert!(c.is_err(), "connected without a key");
    }
}
