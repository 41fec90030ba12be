//! Routes between felix's model and rtnetlink messages, and the route
//! dataplane the reconciler drives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope as NlScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use tortie_felix::{
    NextHop, OnLink, RouteDataplane, RouteKey, RouteKind, RouteOp, RouteScope, RouteSpec,
};

use crate::links::dump_link_names;
use crate::nl::{DumpItem, NlError, NlSocket};
use crate::rawroute;

/// A route operation failed for a reason the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Netlink failed.
    #[error(transparent)]
    Netlink(#[from] NlError),
    /// A next hop names a device that does not exist (yet).
    #[error("device {0} does not exist")]
    NoDevice(String),
}

fn family(ip: &IpNet) -> AddressFamily {
    match ip {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

fn header(key: &RouteKey, protocol: u8) -> (RouteHeader, Option<RouteAttribute>) {
    let mut h = RouteHeader::default();
    h.address_family = family(&key.dst);
    h.destination_prefix_length = key.dst.prefix_len();
    h.protocol = RouteProtocol::from(protocol);
    let table_attr = if key.table < 256 {
        h.table = key.table as u8;
        None
    } else {
        h.table = 252; // RT_TABLE_COMPAT: the real id is in RTA_TABLE
        Some(RouteAttribute::Table(key.table))
    };
    (h, table_attr)
}

/// Builds the RTM_NEWROUTE (replace) message for `spec` at `key`.
pub fn replace_msg(
    key: &RouteKey,
    spec: &RouteSpec,
    index_of: &HashMap<String, u32>,
) -> Result<RouteMessage, RouteError> {
    let (mut h, table) = header(key, spec.protocol);
    h.scope = match spec.scope {
        RouteScope::Universe => NlScope::Universe,
        RouteScope::Link => NlScope::Link,
    };
    h.kind = match spec.kind {
        RouteKind::Unicast => RouteType::Unicast,
        RouteKind::Blackhole => RouteType::BlackHole,
    };
    let mut m = RouteMessage::default();
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            key.dst.addr(),
        )));
    m.attributes.extend(table);
    let idx = |nh: &NextHop| -> Result<u32, RouteError> {
        match &nh.device {
            None => Ok(0),
            Some(d) => index_of
                .get(d)
                .copied()
                .ok_or_else(|| RouteError::NoDevice(d.clone())),
        }
    };
    match spec.next_hops.as_slice() {
        [] => {}
        [nh] => {
            if let Some(gw) = nh.gateway {
                m.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
            }
            let i = idx(nh)?;
            if i != 0 {
                m.attributes.push(RouteAttribute::Oif(i));
            }
            if nh.onlink == OnLink::Yes {
                h.flags |= RouteFlags::Onlink;
            }
        }
        many => {
            let mut hops = Vec::with_capacity(many.len());
            for nh in many {
                let mut hop = RouteNextHop::default();
                hop.interface_index = idx(nh)?;
                if nh.onlink == OnLink::Yes {
                    hop.flags |= RouteNextHopFlags::Onlink;
                }
                if let Some(gw) = nh.gateway {
                    hop.attributes
                        .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
                }
                hops.push(hop);
            }
            m.attributes.push(RouteAttribute::MultiPath(hops));
        }
    }
    m.header = h;
    Ok(m)
}

/// Builds the RTM_DELROUTE message matching only `protocol` at `key`.
pub fn delete_msg(key: &RouteKey, protocol: u8) -> RouteMessage {
    let (mut h, table) = header(key, protocol);
    h.scope = NlScope::NoWhere;
    h.kind = RouteType::Unspec;
    let mut m = RouteMessage::default();
    m.header = h;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            key.dst.addr(),
        )));
    m.attributes.extend(table);
    m
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Normalises a next hop as felix writes it: a device is only kept when
/// there is no gateway or the hop is onlink (felix lets the kernel pick it otherwise).
fn next_hop(
    gateway: Option<IpAddr>,
    oif: u32,
    onlink: bool,
    names: &HashMap<u32, String>,
) -> NextHop {
    let onlink = if onlink { OnLink::Yes } else { OnLink::No };
    let device = match (gateway, onlink) {
        (Some(_), OnLink::No) => None,
        _ => names
            .get(&oif)
            .cloned()
            .or_else(|| (oif != 0).then(|| format!("if{oif}"))),
    };
    NextHop {
        gateway,
        device,
        onlink,
    }
}

/// Parses a kernel route into felix's model; `None` for routes felix never
/// writes (other types, or a metric: [`rawroute::default_metric`]).
pub fn parse_route(
    m: &RouteMessage,
    names: &HashMap<u32, String>,
) -> Option<(RouteKey, RouteSpec)> {
    let h = &m.header;
    let kind = match h.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::BlackHole => RouteKind::Blackhole,
        _ => return None,
    };
    let mut table = u32::from(h.table);
    let mut dst = None;
    let mut gw = None;
    let mut oif = 0;
    let mut multipath = None;
    let mut priority = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => priority = *p,
            RouteAttribute::Destination(d) => dst = addr(d),
            RouteAttribute::Gateway(g) => gw = addr(g),
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            _ => {}
        }
    }
    if !rawroute::default_metric(u8::from(h.address_family), priority) {
        return None;
    }
    let dst = match (dst, h.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, _) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let dst = IpNet::new(dst, h.destination_prefix_length).ok()?.trunc();
    let scope = match h.scope {
        NlScope::Link => RouteScope::Link,
        _ => RouteScope::Universe,
    };
    let hops = match (kind, multipath) {
        (RouteKind::Blackhole, _) => Vec::new(),
        (_, Some(hops)) => hops
            .iter()
            .map(|hop| {
                let g = hop.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(g) => addr(g),
                    _ => None,
                });
                next_hop(
                    g,
                    hop.interface_index,
                    hop.flags.contains(RouteNextHopFlags::Onlink),
                    names,
                )
            })
            .collect(),
        (_, None) => vec![next_hop(
            gw,
            oif,
            h.flags.contains(RouteFlags::Onlink),
            names,
        )],
    };
    let spec = match kind {
        RouteKind::Blackhole => RouteSpec::blackhole(h.protocol.into()),
        RouteKind::Unicast => RouteSpec::unicast(h.protocol.into(), scope, hops),
    };
    Some((RouteKey { table, dst }, spec))
}

/// The kernel's routing table in one namespace, as the reconciler sees it.
#[derive(Debug)]
pub struct NetlinkRoutes {
    sock: NlSocket,
    netns: Option<PathBuf>,
    table: u32,
    protocols: Vec<u8>,
    index_of: HashMap<String, u32>,
    name_of: HashMap<u32, String>,
}

impl NetlinkRoutes {
    /// Routes of `protocols` in `table` in the namespace at `netns`.
    pub fn open(netns: Option<&Path>, table: u32, protocols: &[u8]) -> Result<Self, NlError> {
        Ok(Self {
            sock: NlSocket::open(netns)?,
            netns: netns.map(Path::to_path_buf),
            table,
            protocols: protocols.to_vec(),
            index_of: HashMap::new(),
            name_of: HashMap::new(),
        })
    }

    /// The namespace path, if not the current one.
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// Re-reads interface names and indexes.
    pub fn refresh_links(&mut self) -> Result<(), NlError> {
        self.name_of = dump_link_names(&mut self.sock)?;
        self.index_of = self.name_of.iter().map(|(i, n)| (n.clone(), *i)).collect();
        Ok(())
    }

    /// Interface index → name, as last read.
    pub fn names(&self) -> &HashMap<u32, String> {
        &self.name_of
    }

    /// Protocols this dataplane reads back.
    pub fn protocols(&self) -> &[u8] {
        &self.protocols
    }

    /// Reads back routes of `protocols` from now on.
    pub fn set_protocols(&mut self, protocols: &[u8]) {
        self.protocols = protocols.to_vec();
    }

    /// The table this dataplane owns.
    pub fn table(&self) -> u32 {
        self.table
    }

    /// One filtered dump (family, protocol, table), parsed on the fast path.
    fn dump_filtered(
        &mut self,
        fam: AddressFamily,
        proto: u8,
        out: &mut Vec<(RouteKey, RouteSpec)>,
    ) -> Result<(), NlError> {
        let mut req = RouteMessage::default();
        req.header.address_family = fam;
        req.header.protocol = RouteProtocol::from(proto);
        if self.table < 256 {
            req.header.table = self.table as u8;
        } else {
            req.attributes.push(RouteAttribute::Table(self.table));
        }
        let start = out.len();
        let (names, table) = (&self.name_of, self.table);
        self.sock
            .dump_raw(RouteNetlinkMessage::GetRoute(req), |item| match item {
                DumpItem::Restart => out.truncate(start),
                DumpItem::Message(raw) => {
                    // The kernel filters by protocol and table (strict checking);
                    // check again so a kernel without the filter can't leak foreign routes.
                    if let Some((h, k, v)) = rawroute::parse(raw, names) {
                        if h.protocol == proto && k.table == table {
                            out.push((k, v));
                        }
                    }
                }
            })
    }
}

impl RouteDataplane for NetlinkRoutes {
    type Error = RouteError;

    fn dump_routes(&mut self) -> Result<Vec<(RouteKey, RouteSpec)>, RouteError> {
        self.refresh_links()?;
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            for proto in self.protocols.clone() {
                self.dump_filtered(fam, proto, &mut out)?;
            }
        }
        Ok(out)
    }

    fn apply_routes(&mut self, ops: &[RouteOp]) -> Vec<Result<(), RouteError>> {
        let needs_links = ops.iter().any(|op| match op {
            RouteOp::Replace(_, s) => s.next_hops.iter().any(|h| {
                h.device
                    .as_ref()
                    .is_some_and(|d| !self.index_of.contains_key(d))
            }),
            RouteOp::Delete(..) => false,
        });
        if needs_links {
            let _ = self.refresh_links();
        }
        let mut results: Vec<Option<Result<(), RouteError>>> = Vec::with_capacity(ops.len());
        let mut msgs = Vec::with_capacity(ops.len());
        let mut slots = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let msg = match op {
                RouteOp::Replace(k, s) => replace_msg(k, s, &self.index_of).map(|m| {
                    (
                        RouteNetlinkMessage::NewRoute(m),
                        NLM_F_CREATE | NLM_F_REPLACE,
                    )
                }),
                RouteOp::Delete(k, s) => {
                    Ok((RouteNetlinkMessage::DelRoute(delete_msg(k, s.protocol)), 0))
                }
            };
            match msg {
                Ok(m) => {
                    msgs.push(m);
                    slots.push(i);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        for (slot, res) in slots.into_iter().zip(self.sock.batch(msgs)) {
            let res = match (&ops[slot], res) {
                // A delete of something already gone is success.
                (RouteOp::Delete(..), Err(e))
                    if matches!(
                        e.errno(),
                        Some(nix::errno::Errno::ESRCH | nix::errno::Errno::ENOENT)
                    ) =>
                {
                    Ok(())
                }
                (_, r) => r.map_err(RouteError::from),
            };
            results[slot] = Some(res);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(RouteError::Netlink(NlError::Lost))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

    fn round_trip(key: RouteKey, spec: RouteSpec) {
        let names: HashMap<u32, String> = [(3, "calia".into()), (4, "tunl0".into())].into();
        let index_of = names.iter().map(|(i, n)| (n.clone(), *i)).collect();
        let msg = replace_msg(&key, &spec, &index_of).unwrap();
        let mut nl = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(msg.clone())),
        );
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        let (_, k, v) = rawroute::parse(&buf, &names).unwrap();
        assert_eq!((k, &v), (key, &spec), "fast parser");
        let (k, v2) = parse_route(&msg, &names).unwrap();
        assert_eq!((k, v2), (key, spec), "typed parser");
    }

    fn key(dst: &str, table: u32) -> RouteKey {
        RouteKey {
            table,
            dst: dst.parse().unwrap(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_route_kind_felix_writes_parses_back_to_itself() {
        round_trip(key("10.244.1.0/26", 254), RouteSpec::blackhole(80));
        round_trip(
            key("10.244.1.5/32", 254),
            RouteSpec::unicast(80, RouteScope::Link, vec![NextHop::dev("calia")]),
        );
        round_trip(
            key("fd00::5/128", 254),
            RouteSpec::unicast(80, RouteScope::Link, vec![NextHop::dev("calia")]),
        );
        round_trip(
            key("10.244.2.0/26", 1000),
            RouteSpec::unicast(
                186,
                RouteScope::Universe,
                vec![NextHop::via(ip("10.0.1.6"))],
            ),
        );
        round_trip(
            key("10.244.3.0/26", 254),
            RouteSpec::unicast(
                186,
                RouteScope::Universe,
                vec![
                    NextHop::via_onlink(ip("10.0.1.6"), "tunl0"),
                    NextHop::via_onlink(ip("10.0.2.7"), "tunl0"),
                ],
            ),
        );
    }

    #[test]
    fn a_next_hop_on_a_missing_device_is_an_error_not_a_wrong_route() {
        let spec = RouteSpec::unicast(80, RouteScope::Link, vec![NextHop::dev("nope")]);
        assert!(matches!(
            replace_msg(&key("10.0.0.1/32", 254), &spec, &HashMap::new()),
            Err(RouteError::NoDevice(d)) if d == "nope"
        ));
    }
}
