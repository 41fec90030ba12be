//! The nftables monitor: a `NETLINK_NETFILTER` socket in the
//! `NFNLGRP_NFTABLES` group (what `nft monitor` reads), on a thread of its
//! own (joined when dropped). A transaction that touched felix's table
//! (`ip`/`ip6` [`FelixConfig::nat_table`]) and was committed by a process
//! other than felix's own `nft` children becomes [`KernelEvent::NatChanged`],
//! so felix writes its table again at once.
//!
//! Every nftables object notification (table, chain, rule, set, element,
//! object, flowtable) carries the table's name as attribute 1; each commit
//! ends with `NFT_MSG_NEWGEN`, whose `NFTA_GEN_PROC_PID` names the process
//! that committed it. A commit without that attribute (kernels before 4.19)
//! is ignored: the periodic resync still repairs the table.
//!
//! [`FelixConfig::nat_table`]: tortie_felix::FelixConfig::nat_table

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use netlink_sys::{Socket, SocketAddr};

use crate::events::{EventSink, KernelEvent};
use crate::netns::in_netns;
use crate::nl::NlError;

/// `NETLINK_NETFILTER`.
const NETLINK_NETFILTER: isize = 12;
/// `NFNLGRP_NFTABLES`.
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES`.
const SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWGEN`.
const MSG_NEWGEN: u16 = 15;
/// `NFTA_GEN_PROC_PID`.
const GEN_PROC_PID: u16 = 2;
/// `NFPROTO_IPV4` / `NFPROTO_IPV6`: the families of felix's NAT tables.
const FAMILIES: [u8; 2] = [2, 10];
/// `NFPROTO_INET`: the family of felix's policy table.
const INET: [u8; 1] = [1];
/// How many of felix's recent `nft` children are remembered.
const OWN_PIDS: usize = 16;

/// The PIDs of the `nft` processes felix ran recently (their commits are
/// felix's own and are not reported).
#[derive(Debug, Clone, Default)]
pub struct OwnPids(Arc<Mutex<VecDeque<u32>>>);

impl OwnPids {
    /// Remembers `pid` as felix's (forgetting the oldest beyond a few).
    pub fn record(&self, pid: u32) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == OWN_PIDS {
            q.pop_front();
        }
        q.push_back(pid);
    }

    /// True if `pid` is one of felix's recent `nft` processes.
    pub fn contains(&self, pid: u32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&pid)
    }
}

fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let val = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, val))
    })
}

/// Follows commits in the notification stream (pure: bytes in, verdicts out).
#[derive(Debug)]
pub struct NftWatch {
    table: String,
    families: &'static [u8],
    touched: bool,
}

impl NftWatch {
    /// Watches table `table` (families `ip` and `ip6`).
    pub fn new(table: &str) -> Self {
        Self {
            table: table.to_string(),
            families: &FAMILIES,
            touched: false,
        }
    }

    /// Watches table `inet TABLE` (felix's policy table).
    pub fn inet(table: &str) -> Self {
        Self {
            families: &INET,
            ..Self::new(table)
        }
    }

    /// One notification message (netlink header included); `Some(pid)` when
    /// it ends a commit by `pid` that touched our table.
    pub fn message(&mut self, m: &[u8]) -> Option<u32> {
        if m.len() < 20 {
            return None;
        }
        let ty = u16::from_ne_bytes([m[4], m[5]]);
        if ty >> 8 != SUBSYS_NFTABLES {
            return None;
        }
        let (msg, family, body) = (ty & 0xff, m[16], &m[20..]);
        if msg == MSG_NEWGEN {
            let touched = std::mem::take(&mut self.touched);
            let pid = attrs(body).find_map(|(t, v)| {
                (t == GEN_PROC_PID && v.len() == 4)
                    .then(|| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            });
            return pid.filter(|_| touched);
        }
        if self.families.contains(&family) {
            let name = attrs(body).find_map(|(t, v)| (t == 1).then_some(v));
            let name = name.map(|v| v.strip_suffix(&[0]).unwrap_or(v));
            if name == Some(self.table.as_bytes()) {
                self.touched = true;
            }
        }
        None
    }

    /// Every message of one datagram; the PIDs of commits that touched our table.
    pub fn datagram(&mut self, mut b: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        while b.len() >= 16 {
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if len < 16 || len > b.len() {
                break;
            }
            out.extend(self.message(&b[..len]));
            b = &b[((len + 3) & !3).min(b.len())..];
        }
        out
    }
}

/// A running nftables monitor; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct NftMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn open_socket() -> std::io::Result<Socket> {
    let mut s = Socket::new(NETLINK_NETFILTER)?;
    s.bind(&SocketAddr::new(0, 0))?;
    s.add_membership(NFNLGRP_NFTABLES)?;
    let tv = nix::sys::time::TimeVal::new(0, crate::monitor::POLL.as_micros() as libc::suseconds_t);
    let fd = std::os::fd::AsFd::as_fd(&s);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(std::io::Error::from)?;
    Ok(s)
}

fn nft_loop(sock: Socket, mut w: NftWatch, own: OwnPids, sink: EventSink, stop: &AtomicBool) {
    let mut buf = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        buf.clear();
        let ev = match sock.recv(&mut buf, 0) {
            Ok(_) => w
                .datagram(&buf)
                .into_iter()
                .any(|pid| !own.contains(pid))
                .then_some(KernelEvent::NatChanged),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                w.touched = false;
                Some(KernelEvent::NatChanged)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "nftables monitor read failed");
                std::thread::park_timeout(crate::monitor::POLL);
                None
            }
        };
        if let Some(ev) = ev {
            if !sink.send(ev) {
                return;
            }
        }
    }
}

impl NftMonitor {
    /// Watches `ip`/`ip6` table `table` in the namespace at `netns`;
    /// commits by `own` PIDs are felix's.
    pub fn start(
        netns: Option<&Path>,
        table: &str,
        own: OwnPids,
        sink: EventSink,
    ) -> Result<Self, NlError> {
        Self::start_watch(netns, NftWatch::new(table), own, sink)
    }

    /// Watches `inet` table `table` (the policy table) in the namespace at
    /// `netns`; a foreign commit is reported as [`KernelEvent::NatChanged`]
    /// ("our table changed") on `sink`.
    pub fn start_inet(
        netns: Option<&Path>,
        table: &str,
        own: OwnPids,
        sink: EventSink,
    ) -> Result<Self, NlError> {
        Self::start_watch(netns, NftWatch::inet(table), own, sink)
    }

    fn start_watch(
        netns: Option<&Path>,
        w: NftWatch,
        own: OwnPids,
        sink: EventSink,
    ) -> Result<Self, NlError> {
        let sock = in_netns(netns, open_socket)??;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("felix-nft-monitor".into())
            .spawn(move || nft_loop(sock, w, own, sink, &stop2))
            .map_err(NlError::Io)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for NftMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(msg: u16, family: u8, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            let len = 4 + v.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(v);
            body.resize((body.len() + 3) & !3, 0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((20 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&((SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend_from_slice(&body);
        m
    }

    fn name(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    #[test]
    fn a_commit_touching_our_table_is_reported_with_its_pid_and_others_are_not() {
        let mut w = NftWatch::new("tortie-nat");
        let gen = |pid: u32| {
            msg(
                MSG_NEWGEN,
                0,
                &[
                    (1, 7u32.to_be_bytes().to_vec()),
                    (GEN_PROC_PID, pid.to_be_bytes().to_vec()),
                ],
            )
        };
        let mut d = msg(8, 2, &[(1, name("tortie-nat"))]); // NFT_MSG_DELRULE, ip
        d.extend(gen(4242));
        assert_eq!(w.datagram(&d), [4242]);
        // Another table, or our name in another family (inet), is not ours.
        let mut d = msg(2, 2, &[(1, name("filter"))]);
        d.extend(msg(2, 1, &[(1, name("tortie-nat"))]));
        d.extend(gen(7));
        assert!(w.datagram(&d).is_empty());
        // A commit without the process attribute is not reported.
        let mut d = msg(2, 10, &[(1, name("tortie-nat"))]);
        d.extend(msg(MSG_NEWGEN, 0, &[(1, 8u32.to_be_bytes().to_vec())]));
        assert!(w.datagram(&d).is_empty());
    }

    #[test]
    fn own_pids_remember_the_recent_ones() {
        let own = OwnPids::default();
        for pid in 0..20 {
            own.record(pid);
        }
        assert!(!own.contains(3));
        assert!(own.contains(19));
    }
}
