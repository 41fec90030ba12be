//! A connect-only BGP client for tests: its socket is made inside a
//! network namespace of the test's (so it comes from that namespace's
//! address), it never listens, and it speaks raw bytes so that a test can
//! send anything, well-formed or not.

use bytes::{Buf, BytesMut};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tortie_bgp_wire::{check, encode, parse, Capability, DecodeContext, Family, Message, OpenMsg};

/// Connects from `src` (an address of the namespace at `ns_path`) to `dst`.
/// The socket is created by a thread that joined the namespace; it stays
/// there whatever thread uses it later.
pub fn connect_in(ns_path: &str, src: IpAddr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let path = ns_path.to_string();
    let std_stream = std::thread::spawn(move || -> std::io::Result<std::net::TcpStream> {
        let fd = std::fs::File::open(&path)?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::other)?;
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddr::new(src, 0).into())?;
        sock.connect_timeout(&dst.into(), Duration::from_secs(5))?;
        Ok(sock.into())
    })
    .join()
    .map_err(|_| std::io::Error::other("connect thread panicked"))??;
    std_stream.set_nonblocking(true)?;
    TcpStream::from_std(std_stream)
}

/// Encodes messages with the default (2-octet AS, no ADD-PATH) context.
pub fn bytes(msgs: &[Message]) -> Vec<u8> {
    let mut b = Vec::new();
    for m in msgs {
        encode(m, &DecodeContext::default(), &mut b).expect("encodable");
    }
    b
}

/// An OPEN for IPv4 unicast with the 4-octet AS capability.
pub fn open(asn: u32, hold: u16, id: &str) -> Message {
    let caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::FourOctetAs(asn),
    ];
    Message::Open(OpenMsg::new(
        asn,
        hold,
        id.parse().expect("an IPv4 id"),
        caps,
    ))
}

/// One end of a BGP connection driven by the test.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    ctx: DecodeContext,
}

impl Client {
    /// Wraps a connected stream (see [`connect_in`]).
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(1 << 16),
            ctx: DecodeContext::four_octet(),
        }
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, b: &[u8]) {
        self.stream.write_all(b).await.expect("write");
    }

    /// The next message, or `None` on EOF, error or after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(Some(len)) = check(&self.buf, &self.ctx) {
                let m = parse(&self.buf[..len], &self.ctx).ok();
                self.buf.advance(len);
                return m;
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Reads until a message `want` accepts; `None` on EOF or timeout.
    pub async fn until(
        &mut self,
        wait: Duration,
        want: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next(left).await?;
            if want(&m) {
                return Some(m);
            }
        }
    }

    /// OPEN and KEEPALIVE out, until the peer's KEEPALIVE: Established.
    pub async fn handshake(&mut self, open: Message, wait: Duration) -> bool {
        self.send(&bytes(&[open, Message::Keepalive])).await;
        self.until(wait, |m| {
            matches!(m, Message::Keepalive | Message::Notification(_))
        })
        .await
        .is_some_and(|m| matches!(m, Message::Keepalive))
    }
}
