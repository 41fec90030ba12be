//! The kernel monitor: one rtnetlink socket subscribed to routes, links,
//! addresses and neighbours, on a thread of its own (joined when the
//! monitor is dropped), turning notifications into [`KernelEvent`]s so a
//! deleted or changed route, device, address or FDB / neighbour entry of
//! felix's is repaired at once.
//!
//! - Routes in felix's table with the default metric, of any protocol: the
//!   reconciler keeps those that are ours and those at keys it wants (so a
//!   route of another program replacing ours is seen) and ignores the rest.
//! - Links: felix's devices → [`KernelEvent::DevicesChanged`]; any link
//!   that comes, goes, or changes its up / lower-up / running flags →
//!   [`KernelEvent::LinksChanged`] (IPv4 drops the routes of a link that
//!   goes down without a notification).
//! - Addresses: on felix's devices → `DevicesChanged`; any removal →
//!   `LinksChanged` (routes through it may vanish silently).
//! - Neighbours and FDB entries: on felix's devices → `DevicesChanged`.
//! - A receive buffer overrun (ENOBUFS) → [`KernelEvent::Overflow`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use tortie_felix::RouteEvent;

use crate::events::{EventSink, KernelEvent};
use crate::links::dump_link_names;
use crate::nl::{NlError, NlSocket};
use crate::routes::parse_route;

/// `RTNLGRP_LINK`.
const RTNLGRP_LINK: u32 = 1;
/// `RTNLGRP_NEIGH`.
const RTNLGRP_NEIGH: u32 = 3;
/// `RTNLGRP_IPV4_IFADDR`.
const RTNLGRP_IPV4_IFADDR: u32 = 5;
/// `RTNLGRP_IPV4_ROUTE`.
const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// `RTNLGRP_IPV6_IFADDR`.
const RTNLGRP_IPV6_IFADDR: u32 = 9;
/// `RTNLGRP_IPV6_ROUTE`.
const RTNLGRP_IPV6_ROUTE: u32 = 11;
/// How often the monitor thread checks its stop flag.
pub const POLL: Duration = Duration::from_millis(250);

/// What the monitor watches.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// felix's routing table.
    pub table: u32,
    /// felix's devices (tunl0, the VXLAN device).
    pub devices: Vec<String>,
}

/// A running monitor; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct KernelMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Turns notifications into events; keeps interface names current.
struct Watch {
    names: HashMap<u32, String>,
    cfg: MonitorConfig,
}

const LINK_STATE: LinkFlags = LinkFlags::Up
    .union(LinkFlags::LowerUp)
    .union(LinkFlags::Running);

impl Watch {
    fn ours(&self, index: u32) -> bool {
        self.names
            .get(&index)
            .is_some_and(|n| self.cfg.devices.iter().any(|d| d == n))
    }

    fn link(&mut self, l: &LinkMessage, deleted: bool, out: &mut Vec<KernelEvent>) {
        let index = l.header.index;
        let name = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(n) = name {
            self.names.insert(index, n);
        }
        if self.ours(index) {
            out.push(KernelEvent::DevicesChanged);
        }
        if deleted {
            self.names.remove(&index);
        }
        if deleted || l.header.change_mask.intersects(LINK_STATE) {
            out.push(KernelEvent::LinksChanged);
        }
    }

    fn handle(&mut self, m: RouteNetlinkMessage, out: &mut Vec<KernelEvent>) {
        match m {
            RouteNetlinkMessage::NewRoute(r) => {
                if let Some((k, v)) = parse_route(&r, &self.names) {
                    if k.table == self.cfg.table {
                        out.push(KernelEvent::Route(RouteEvent::Set(k, v)));
                    }
                }
            }
            RouteNetlinkMessage::DelRoute(r) => {
                if let Some((k, v)) = parse_route(&r, &self.names) {
                    if k.table == self.cfg.table {
                        out.push(KernelEvent::Route(RouteEvent::Deleted(k, v.protocol)));
                    }
                }
            }
            RouteNetlinkMessage::NewLink(l) => self.link(&l, false, out),
            RouteNetlinkMessage::DelLink(l) => self.link(&l, true, out),
            RouteNetlinkMessage::NewAddress(a) if self.ours(a.header.index) => {
                out.push(KernelEvent::DevicesChanged);
            }
            RouteNetlinkMessage::DelAddress(a) => {
                if self.ours(a.header.index) {
                    out.push(KernelEvent::DevicesChanged);
                }
                out.push(KernelEvent::LinksChanged);
            }
            RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n)
                if self.ours(n.header.ifindex) =>
            {
                out.push(KernelEvent::DevicesChanged);
            }
            _ => {}
        }
    }
}

/// Reads notifications until `stop`, sending events to `sink`.
fn watch_loop(
    mut sock: NlSocket,
    mut req: NlSocket,
    mut w: Watch,
    sink: EventSink,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let mut evs = Vec::new();
        match sock.recv_events() {
            Ok(msgs) => {
                for m in msgs {
                    w.handle(m, &mut evs);
                }
            }
            Err(NlError::Io(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                tracing::warn!("kernel monitor overflowed; asking for a full resync");
                if let Ok(n) = dump_link_names(&mut req) {
                    w.names = n;
                }
                evs.push(KernelEvent::Overflow);
            }
            Err(NlError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "kernel monitor read failed; asking for a full resync");
                std::thread::park_timeout(POLL);
                evs.push(KernelEvent::Overflow);
            }
        }
        evs.dedup();
        for ev in evs {
            if !sink.send(ev) {
                return;
            }
        }
    }
}

impl KernelMonitor {
    /// Starts watching the namespace at `netns` (the current one if `None`).
    pub fn start(
        netns: Option<&Path>,
        cfg: MonitorConfig,
        sink: EventSink,
    ) -> Result<Self, NlError> {
        let groups = [
            RTNLGRP_LINK,
            RTNLGRP_NEIGH,
            RTNLGRP_IPV4_IFADDR,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_IFADDR,
            RTNLGRP_IPV6_ROUTE,
        ];
        let sock = NlSocket::open_groups(netns, &groups)?;
        sock.set_read_timeout(POLL)?;
        let mut req = NlSocket::open(netns)?;
        let names = dump_link_names(&mut req)?;
        let w = Watch { names, cfg };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("felix-monitor".into())
            .spawn(move || watch_loop(sock, req, w, sink, &stop2))
            .map_err(NlError::Io)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for KernelMonitor {
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

    fn watch() -> Watch {
        Watch {
            names: [(3, "vxlan.calico".to_string()), (4, "eth0".to_string())].into(),
            cfg: MonitorConfig {
                table: 254,
                devices: vec!["tunl0".into(), "vxlan.calico".into()],
            },
        }
    }

    fn link(index: u32, change: LinkFlags) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.change_mask = change;
        l
    }

    #[test]
    fn a_change_to_our_device_and_a_link_going_down_are_events_and_noise_is_not() {
        let mut w = watch();
        let mut out = Vec::new();
        w.handle(
            RouteNetlinkMessage::NewLink(link(4, LinkFlags::empty())),
            &mut out,
        );
        assert!(out.is_empty(), "a statistics-only update of eth0: {out:?}");
        w.handle(
            RouteNetlinkMessage::NewLink(link(4, LinkFlags::Up)),
            &mut out,
        );
        assert_eq!(out, [KernelEvent::LinksChanged]);
        out.clear();
        w.handle(
            RouteNetlinkMessage::DelLink(link(3, LinkFlags::empty())),
            &mut out,
        );
        assert_eq!(
            out,
            [KernelEvent::DevicesChanged, KernelEvent::LinksChanged]
        );
        assert!(!w.names.contains_key(&3));
    }

    #[test]
    fn neighbours_count_only_on_our_devices() {
        let mut w = watch();
        let mut out = Vec::new();
        let mut n = netlink_packet_route::neighbour::NeighbourMessage::default();
        n.header.ifindex = 4;
        w.handle(RouteNetlinkMessage::NewNeighbour(n.clone()), &mut out);
        assert!(out.is_empty());
        n.header.ifindex = 3;
        w.handle(RouteNetlinkMessage::DelNeighbour(n), &mut out);
        assert_eq!(out, [KernelEvent::DevicesChanged]);
    }
}
