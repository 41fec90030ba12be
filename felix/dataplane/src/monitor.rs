//! A netlink route monitor: turns kernel notifications about felix's routes
//! into reconciler events, so a deleted or changed route is repaired at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use netlink_packet_route::RouteNetlinkMessage;
use tortie_felix::RouteEvent;

use crate::links::dump_link_names;
use crate::nl::{NlError, NlSocket};
use crate::routes::parse_route;

/// `RTNLGRP_IPV4_ROUTE`.
const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// `RTNLGRP_IPV6_ROUTE`.
const RTNLGRP_IPV6_ROUTE: u32 = 11;
/// How often the monitor thread checks its stop flag.
const POLL: Duration = Duration::from_millis(200);

/// A running monitor; dropping it stops the thread.
#[derive(Debug)]
pub struct RouteMonitor {
    events: Receiver<RouteEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Watch {
    sock: NlSocket,
    req: NlSocket,
    names: HashMap<u32, String>,
    table: u32,
    protocols: Vec<u8>,
}

impl Watch {
    fn events(&mut self, msgs: Vec<RouteNetlinkMessage>) -> Vec<RouteEvent> {
        let mut out = Vec::new();
        for m in msgs {
            let (r, deleted) = match m {
                RouteNetlinkMessage::NewRoute(r) => (r, false),
                RouteNetlinkMessage::DelRoute(r) => (r, true),
                _ => continue,
            };
            if !self.protocols.contains(&u8::from(r.header.protocol)) {
                continue;
            }
            let unknown_if = r.attributes.iter().any(|a| {
                matches!(a, netlink_packet_route::route::RouteAttribute::Oif(i) if !self.names.contains_key(i))
            });
            if unknown_if {
                if let Ok(n) = dump_link_names(&mut self.req) {
                    self.names = n;
                }
            }
            let Some((k, v)) = parse_route(&r, &self.names) else {
                continue;
            };
            if k.table != self.table {
                continue;
            }
            out.push(if deleted {
                RouteEvent::Deleted(k)
            } else {
                RouteEvent::Set(k, v)
            });
        }
        out
    }
}

impl RouteMonitor {
    /// Starts watching routes of `protocols` in `table` in the namespace at `netns`.
    pub fn start(netns: Option<&Path>, table: u32, protocols: &[u8]) -> Result<Self, NlError> {
        let sock = NlSocket::open_groups(netns, &[RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE])?;
        sock.set_read_timeout(POLL)?;
        let mut req = NlSocket::open(netns)?;
        let names = dump_link_names(&mut req)?;
        let mut w = Watch {
            sock,
            req,
            names,
            table,
            protocols: protocols.to_vec(),
        };
        let (tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("felix-route-monitor".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let evs = match w.sock.recv_events() {
                        Ok(msgs) => w.events(msgs),
                        Err(NlError::Io(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            tracing::warn!("route monitor overflowed; asking for a resync");
                            vec![RouteEvent::Overflow]
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
                            tracing::warn!(error = %e, "route monitor read failed");
                            vec![RouteEvent::Overflow]
                        }
                    };
                    for ev in evs {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(NlError::Io)?;
        Ok(Self {
            events,
            stop,
            thread: Some(thread),
        })
    }

    /// The event stream.
    pub fn events(&self) -> &Receiver<RouteEvent> {
        &self.events
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
