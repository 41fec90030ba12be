//! One TCP connection to a peer: framing (`check` then `parse`, as
//! mini-redis does) on a read buffer, whole-message writes, and the decode
//! contexts its own OPEN exchange negotiated.

use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tortie_bgp_wire::{check, parse, DecodeContext, DecodeError, Direction, OpenMsg};

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer sent something malformed.
    #[error("{error}")]
    Decode {
        /// What is wrong.
        error: DecodeError,
        /// The message type, when the header was sound and the body was not.
        msg_type: Option<u8>,
    },
}

/// A framed BGP connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    /// Tells this connection from an earlier one in the same slot.
    pub id: u64,
    /// How to decode what the peer sends (negotiated once its OPEN is in).
    pub ctx_rx: DecodeContext,
    /// How to encode what we send.
    pub ctx_tx: DecodeContext,
}

impl Connection {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream, id: u64) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(8192),
            id,
            ctx_rx: DecodeContext::default(),
            ctx_tx: DecodeContext::default(),
        }
    }

    /// Our address on this connection.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.local_addr()
    }

    /// Sets the contexts both OPENs negotiate (4-octet AS, ADD-PATH, ...).
    pub fn negotiate(&mut self, local: &OpenMsg, remote: &OpenMsg) {
        let (l, r) = (&local.capabilities, &remote.capabilities);
        self.ctx_rx = DecodeContext::negotiated(l, r, Direction::Receive);
        self.ctx_tx = DecodeContext::negotiated(l, r, Direction::Send);
    }

    /// The next whole message; `Ok(None)` when the peer closed the connection.
    /// Cancel safe: bytes read so far stay in the buffer.
    pub async fn read_message(
        &mut self,
    ) -> Result<Option<(tortie_bgp_wire::Message, usize)>, ReadError> {
        loop {
            let framed = check(&self.buf, &self.ctx_rx).map_err(|error| ReadError::Decode {
                error,
                msg_type: None,
            })?;
            if let Some(len) = framed {
                let msg = parse(&self.buf[..len], &self.ctx_rx);
                let msg_type = self.buf[18];
                self.buf.advance(len);
                return match msg {
                    Ok(m) => Ok(Some((m, len))),
                    Err(error) => Err(ReadError::Decode {
                        error,
                        msg_type: Some(msg_type),
                    }),
                };
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
