//! A synchronous rtnetlink socket: batched writes with many requests in
//! flight, filtered dumps, a large receive buffer.
//!
//! Why not the `rtnetlink` crate: it acknowledges one request at a time per
//! future and offers no dump filters by protocol. Here a batch goes out as
//! one `sendmsg` of many requests without `NLM_F_ACK` followed by a NOOP
//! barrier that asks for an ACK; the kernel processes rtnetlink requests
//! synchronously and reports only failures, so one read loop up to the
//! barrier collects every error with its sequence number.

use std::path::Path;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::netns::{in_netns, NetnsError};

/// Receive buffer asked for (SO_RCVBUFFORCE as root, else SO_RCVBUF).
pub const RCVBUF_BYTES: usize = 32 << 20;
/// Bytes of requests per `sendmsg`.
const SEND_CHUNK: usize = 64 << 10;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// A netlink failure.
#[derive(Debug, thiserror::Error)]
pub enum NlError {
    /// Socket I/O failed.
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused a request.
    #[error("kernel refused the request: {0}")]
    Kernel(nix::errno::Errno),
    /// A reply could not be parsed.
    #[error("parsing a netlink reply: {0}")]
    Decode(#[from] netlink_packet_core::DecodeError),
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The request's outcome is unknown (the socket overflowed).
    #[error("lost the kernel's answer (receive buffer overflow)")]
    Lost,
}

impl NlError {
    /// The errno the kernel answered with, if that is what this is.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            NlError::Kernel(e) => Some(*e),
            _ => None,
        }
    }
}

/// What a raw dump hands its callback.
#[derive(Debug)]
pub enum DumpItem<'a> {
    /// The dump was interrupted and starts over: forget what came so far.
    Restart,
    /// One reply message, netlink header included.
    Message(&'a [u8]),
}

/// One rtnetlink socket bound in a namespace.
#[derive(Debug)]
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    rbuf: Vec<u8>,
}

fn new_socket(groups: &[u32]) -> std::io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind(&SocketAddr::new(0, 0))?;
    let fd = std::os::fd::AsFd::as_fd(&sock);
    if nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF_BYTES)
        .is_err()
    {
        sock.set_rx_buf_sz(RCVBUF_BYTES)?;
    }
    sock.set_netlink_get_strict_chk(true)?;
    sock.set_cap_ack(true)?;
    for g in groups {
        sock.add_membership(*g)?;
    }
    Ok(sock)
}

impl NlSocket {
    /// Opens a request socket in the namespace at `netns` (current one if `None`).
    pub fn open(netns: Option<&Path>) -> Result<Self, NlError> {
        Self::open_groups(netns, &[])
    }

    /// Opens a socket subscribed to multicast `groups` (`RTNLGRP_*` numbers).
    pub fn open_groups(netns: Option<&Path>, groups: &[u32]) -> Result<Self, NlError> {
        let groups = groups.to_vec();
        let sock = in_netns(netns, move || new_socket(&groups))??;
        Ok(Self {
            sock,
            seq: 1,
            rbuf: Vec::with_capacity(1 << 20),
        })
    }

    fn push(&mut self, buf: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16) -> u32 {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let start = buf.len();
        buf.resize(start + m.buffer_len(), 0);
        m.serialize(&mut buf[start..]);
        header.sequence_number
    }

    fn push_barrier(&mut self, buf: &mut Vec<u8>) -> u32 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        buf.extend_from_slice(&16u32.to_ne_bytes());
        buf.extend_from_slice(&NLMSG_NOOP.to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        seq
    }

    /// Receives one datagram into the read buffer.
    fn recv(&mut self) -> Result<(), NlError> {
        self.rbuf.clear();
        self.sock.recv(&mut self.rbuf, 0)?;
        Ok(())
    }

    /// Sends `msgs` (each with its `NLM_F_*` flags, REQUEST implied) in
    /// chunks; returns one result per message, in order.
    pub fn batch(&mut self, msgs: Vec<(RouteNetlinkMessage, u16)>) -> Vec<Result<(), NlError>> {
        let n = msgs.len();
        let mut results: Vec<Result<(), NlError>> = Vec::with_capacity(n);
        let mut buf = Vec::with_capacity(SEND_CHUNK + 4096);
        let mut it = msgs.into_iter().peekable();
        while it.peek().is_some() {
            buf.clear();
            let first = results.len();
            let mut first_seq = None;
            while buf.len() < SEND_CHUNK {
                let Some((m, flags)) = it.next() else { break };
                let seq = self.push(&mut buf, m, flags & !NLM_F_ACK);
                first_seq.get_or_insert(seq);
                results.push(Ok(()));
            }
            let barrier = self.push_barrier(&mut buf);
            let first_seq = first_seq.unwrap_or(barrier);
            if let Err(e) = self.send_and_collect(&buf, first_seq, barrier, &mut results[first..]) {
                let kind = e.to_string();
                for r in &mut results[first..] {
                    *r = Err(NlError::Io(std::io::Error::other(kind.clone())));
                }
            }
        }
        debug_assert_eq!(results.len(), n);
        results
    }

    fn send_and_collect(
        &mut self,
        buf: &[u8],
        first_seq: u32,
        barrier: u32,
        results: &mut [Result<(), NlError>],
    ) -> Result<(), NlError> {
        self.sock.send(buf, 0)?;
        loop {
            self.recv()?;
            let mut off = 0;
            while off + 16 <= self.rbuf.len() {
                let b = &self.rbuf[off..];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < 16 {
                    break;
                }
                if ty == NLMSG_ERROR && b.len() >= 20 {
                    let code = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                    if seq == barrier {
                        return Ok(());
                    }
                    let idx = seq.wrapping_sub(first_seq) as usize;
                    if code != 0 && idx < results.len() {
                        results[idx] = Err(NlError::Kernel(nix::errno::Errno::from_raw(-code)));
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// Sends one request and waits for its answer.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        self.batch(vec![(msg, flags)])
            .pop()
            .unwrap_or(Err(NlError::Lost))
    }

    /// Dumps with `msg` as the (filter) request; retries when the dump was interrupted.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let mut out = Vec::new();
        let mut err = None;
        self.dump_raw(msg, |item| match item {
            DumpItem::Restart => {
                out.clear();
                err = None;
            }
            DumpItem::Message(raw) => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw)
            {
                Ok(m) => {
                    if let NetlinkPayload::InnerMessage(inner) = m.payload {
                        out.push(inner);
                    }
                }
                Err(e) => err = Some(e),
            },
        })?;
        match err {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// Dumps with `msg`, handing each reply message (header included) to
    /// `each` without building typed values (the fast path for large route
    /// tables). A retried dump first sends `DumpItem::Restart`.
    pub fn dump_raw(
        &mut self,
        msg: RouteNetlinkMessage,
        mut each: impl FnMut(DumpItem<'_>),
    ) -> Result<(), NlError> {
        for attempt in 0..5 {
            if attempt > 0 {
                each(DumpItem::Restart);
            }
            let mut buf = Vec::new();
            let seq = self.push(&mut buf, msg.clone(), NLM_F_DUMP);
            self.sock.send(&buf, 0)?;
            if self.collect_dump(seq, &mut each)? {
                return Ok(());
            }
        }
        Err(NlError::Lost)
    }

    /// Reads one dump; `false` when the kernel flagged it as interrupted.
    fn collect_dump(
        &mut self,
        seq: u32,
        each: &mut impl FnMut(DumpItem<'_>),
    ) -> Result<bool, NlError> {
        let mut interrupted = false;
        loop {
            self.recv()?;
            let mut off = 0;
            while off + 16 <= self.rbuf.len() {
                let b = &self.rbuf[off..];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < 16 || len > b.len() {
                    break;
                }
                off += (len + 3) & !3;
                if mseq != seq {
                    continue;
                }
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match ty {
                    NLMSG_DONE => {
                        // A dump the kernel refused ends in DONE carrying the errno.
                        let code = b
                            .get(16..20)
                            .map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                        if code < 0 {
                            return Err(NlError::Kernel(nix::errno::Errno::from_raw(-code)));
                        }
                        return Ok(!interrupted);
                    }
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                        return Err(NlError::Kernel(nix::errno::Errno::from_raw(-code)));
                    }
                    _ => each(DumpItem::Message(&b[..len])),
                }
            }
        }
    }

    /// Reads the next multicast datagram and parses its messages (monitor sockets).
    pub fn recv_events(&mut self) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.recv()?;
        let mut out = Vec::new();
        let mut off = 0;
        while off + 16 <= self.rbuf.len() {
            let b = &self.rbuf[off..];
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if len < 16 || len > b.len() {
                break;
            }
            off += (len + 3) & !3;
            if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b[..len]) {
                if let NetlinkPayload::InnerMessage(inner) = m.payload {
                    out.push(inner);
                }
            }
        }
        Ok(out)
    }

    /// Sets a receive timeout (monitor sockets poll a stop flag with it).
    pub fn set_read_timeout(&self, d: std::time::Duration) -> Result<(), NlError> {
        let tv = nix::sys::time::TimeVal::new(
            d.as_secs() as libc::time_t,
            d.subsec_micros() as libc::suseconds_t,
        );
        let fd = std::os::fd::AsFd::as_fd(&self.sock);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(|e| NlError::Io(e.into()))
    }
}
