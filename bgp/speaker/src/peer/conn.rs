//! One TCP connection to a peer: framing (`check` then `parse`, as
//! mini-redis does) on a read buffer, and whole-message writes.

use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tortie_bgp_wire::{check, parse, DecodeContext, DecodeError, Message};

/// Who opened the connection (RFC 4271 §6.8 needs to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// We connected.
    Local,
    /// The peer connected to our listener.
    Remote,
}

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer sent something malformed.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// A framed BGP connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    /// Who opened it.
    pub origin: Origin,
}

impl Connection {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream, origin: Origin) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(8192),
            origin,
        }
    }

    /// Our address on this connection.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.local_addr()
    }

    /// The next whole message; `Ok(None)` when the peer closed the connection.
    /// Cancel safe: bytes read so far stay in the buffer.
    pub async fn read_message(
        &mut self,
        ctx: &DecodeContext,
    ) -> Result<Option<(Message, usize)>, ReadError> {
        loop {
            if let Some(len) = check(&self.buf, ctx)? {
                let msg = parse(&self.buf[..len], ctx);
                self.buf.advance(len);
                return Ok(Some((msg?, len)));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Writes encoded messages.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Flushes and closes our side.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}
