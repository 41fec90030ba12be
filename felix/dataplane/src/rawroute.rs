//! A hand-rolled parser for `RTM_NEWROUTE` dump replies: the fast path of a
//! resync over 100,000 routes (no typed attribute vectors are built).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use tortie_felix::{NextHop, OnLink, RouteKey, RouteKind, RouteScope, RouteSpec};

const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const RT_SCOPE_LINK: u8 = 253;
const RTNH_F_ONLINK: u8 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;

/// The header fields felix reads.
#[derive(Debug, Clone, Copy)]
pub struct RawHeader {
    /// `rtm_family`.
    pub family: u8,
    /// `rtm_protocol`.
    pub protocol: u8,
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

fn ip(family: u8, v: &[u8]) -> Option<IpAddr> {
    match (family, v.len()) {
        (AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        (AF_INET6, 16) => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
        _ => None,
    }
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

/// True for the metric the kernel gives a route written without one (as
/// felix writes them): 0 for IPv4, 1024 for IPv6. A route with any other
/// metric (FRR installs with 20, BIRD with 32) is never felix's.
pub fn default_metric(family: u8, priority: u32) -> bool {
    priority == 0 || (family == AF_INET6 && priority == 1024)
}

fn hop(gw: Option<IpAddr>, oif: u32, flags: u8, names: &HashMap<u32, String>) -> NextHop {
    let onlink = if flags & RTNH_F_ONLINK != 0 {
        OnLink::Yes
    } else {
        OnLink::No
    };
    let device = match (gw, onlink) {
        (Some(_), OnLink::No) => None,
        _ => names
            .get(&oif)
            .cloned()
            .or_else(|| (oif != 0).then(|| format!("if{oif}"))),
    };
    NextHop {
        gateway: gw,
        device,
        onlink,
    }
}

fn multipath(family: u8, mut b: &[u8], names: &HashMap<u32, String>) -> Vec<NextHop> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        if len < 8 || len > b.len() {
            break;
        }
        let flags = b[2];
        let oif = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let gw = attrs(&b[8..len])
            .find(|(t, _)| *t == RTA_GATEWAY)
            .and_then(|(_, v)| ip(family, v));
        out.push(hop(gw, oif, flags, names));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

/// Parses one netlink message (header included) holding an `rtmsg`; `None`
/// for routes felix never writes (local, broadcast, multicast, …, or with a
/// metric, see [`default_metric`]).
pub fn parse(msg: &[u8], names: &HashMap<u32, String>) -> Option<(RawHeader, RouteKey, RouteSpec)> {
    let r = msg.get(NLMSG_HDRLEN..)?;
    if r.len() < RTMSG_LEN {
        return None;
    }
    let (family, dst_len, table8, protocol, scope, kind) = (r[0], r[1], r[4], r[5], r[6], r[7]);
    let flags = r[8];
    let kind = match kind {
        RTN_UNICAST => RouteKind::Unicast,
        RTN_BLACKHOLE => RouteKind::Blackhole,
        _ => return None,
    };
    let (mut table, mut dst, mut gw, mut oif, mut mp) = (u32::from(table8), None, None, 0, None);
    let mut priority = 0;
    for (ty, v) in attrs(&r[RTMSG_LEN..]) {
        match ty {
            RTA_TABLE => table = u32_of(v)?,
            RTA_PRIORITY => priority = u32_of(v)?,
            RTA_DST => dst = ip(family, v),
            RTA_GATEWAY => gw = ip(family, v),
            RTA_OIF => oif = u32_of(v)?,
            RTA_MULTIPATH => mp = Some(v),
            _ => {}
        }
    }
    if !default_metric(family, priority) {
        return None;
    }
    let dst = dst.or(match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    })?;
    let key = RouteKey {
        table,
        dst: IpNet::new(dst, dst_len).ok()?.trunc(),
    };
    let spec = match kind {
        RouteKind::Blackhole => RouteSpec::blackhole(protocol),
        RouteKind::Unicast => {
            let scope = if scope == RT_SCOPE_LINK {
                RouteScope::Link
            } else {
                RouteScope::Universe
            };
            let hops = match mp {
                Some(b) => multipath(family, b, names),
                None => vec![hop(gw, oif, flags, names)],
            };
            RouteSpec::unicast(protocol, scope, hops)
        }
    };
    Some((RawHeader { family, protocol }, key, spec))
}
