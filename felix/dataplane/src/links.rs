//! Links, addresses and neighbours over rtnetlink (the few devices felix owns).

use std::collections::HashMap;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use tortie_felix::desired::VxlanDevice;

use crate::nl::{NlError, NlSocket};

/// A link as felix needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// MAC address (empty for tunnels without one).
    pub mac: Vec<u8>,
    /// `IFLA_INFO_KIND`, when set.
    pub kind: Option<InfoKind>,
    /// VXLAN (vni, port, local) when it is a VXLAN device.
    pub vxlan: Option<(u32, u16, Option<IpAddr>)>,
}

fn vxlan_info(infos: &[LinkInfo]) -> Option<(u32, u16, Option<IpAddr>)> {
    let data = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(d)) => Some(d),
        _ => None,
    })?;
    let mut out = (0, 0, None);
    for d in data {
        match d {
            InfoVxlan::Id(v) => out.0 = *v,
            InfoVxlan::Port(p) => out.1 = *p,
            InfoVxlan::Local(a) => out.2 = Some(IpAddr::V4(*a)),
            _ => {}
        }
    }
    Some(out)
}

fn parse_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        mac: Vec::new(),
        kind: None,
        vxlan: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Address(mac) => l.mac = mac.clone(),
            LinkAttribute::LinkInfo(infos) => {
                l.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.clone()),
                    _ => None,
                });
                l.vxlan = vxlan_info(infos);
            }
            _ => {}
        }
    }
    l
}

/// All links in the socket's namespace.
pub fn dump_links(sock: &mut NlSocket) -> Result<Vec<Link>, NlError> {
    let msgs = sock.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
            _ => None,
        })
        .collect())
}

/// Interface index → name.
pub fn dump_link_names(sock: &mut NlSocket) -> Result<HashMap<u32, String>, NlError> {
    Ok(dump_links(sock)?
        .into_iter()
        .map(|l| (l.index, l.name))
        .collect())
}

/// Creates a link of `kind` named `name` with `info` data (fails with EEXIST if present).
pub fn create_link(
    sock: &mut NlSocket,
    name: &str,
    kind: InfoKind,
    data: Option<InfoData>,
    extra: Vec<LinkAttribute>,
) -> Result<(), NlError> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.extend(extra);
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    m.attributes.push(LinkAttribute::LinkInfo(info));
    sock.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
}

/// Creates the VXLAN device `name` for `spec`.
pub fn create_vxlan(sock: &mut NlSocket, name: &str, spec: &VxlanDevice) -> Result<(), NlError> {
    let mut data = vec![
        InfoVxlan::Id(spec.vni),
        InfoVxlan::Port(spec.port),
        InfoVxlan::Learning(false),
    ];
    if let IpAddr::V4(v4) = spec.local {
        data.push(InfoVxlan::Local(v4));
    }
    let extra = vec![
        LinkAttribute::Address(spec.mac.to_vec()),
        LinkAttribute::Mtu(spec.mtu),
    ];
    create_link(
        sock,
        name,
        InfoKind::Vxlan,
        Some(InfoData::Vxlan(data)),
        extra,
    )
}

/// Sets MTU, MAC (when given) and brings the link up.
pub fn set_link(
    sock: &mut NlSocket,
    index: u32,
    mtu: u32,
    mac: Option<&[u8]>,
) -> Result<(), NlError> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::Mtu(mtu));
    if let Some(mac) = mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    sock.request(RouteNetlinkMessage::SetLink(m), 0)
}

/// Deletes the link `index`.
pub fn delete_link(sock: &mut NlSocket, index: u32) -> Result<(), NlError> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    sock.request(RouteNetlinkMessage::DelLink(m), 0)
}

/// Addresses on link `index`: (address, prefix length).
pub fn dump_addresses(sock: &mut NlSocket, index: u32) -> Result<Vec<(IpAddr, u8)>, NlError> {
    let mut req = AddressMessage::default();
    req.header.index = index;
    let msgs = sock.dump(RouteNetlinkMessage::GetAddress(req))?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if a.header.index == index => a
                .attributes
                .iter()
                .find_map(|at| match at {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                })
                .or_else(|| {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                })
                .map(|ip| (ip, a.header.prefix_len)),
            _ => None,
        })
        .collect())
}

fn addr_msg(index: u32, ip: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = prefix_len;
    m.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.attributes.push(AddressAttribute::Local(ip));
    m.attributes.push(AddressAttribute::Address(ip));
    m
}

/// Adds (or replaces) `ip/prefix_len` on link `index`.
pub fn add_address(
    sock: &mut NlSocket,
    index: u32,
    ip: IpAddr,
    prefix_len: u8,
) -> Result<(), NlError> {
    let m = addr_msg(index, ip, prefix_len);
    sock.request(
        RouteNetlinkMessage::NewAddress(m),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Removes `ip/prefix_len` from link `index`.
pub fn del_address(
    sock: &mut NlSocket,
    index: u32,
    ip: IpAddr,
    prefix_len: u8,
) -> Result<(), NlError> {
    let m = addr_msg(index, ip, prefix_len);
    sock.request(RouteNetlinkMessage::DelAddress(m), 0)
}

/// A permanent neighbour-ish entry on a device: ARP/ND (`Inet*`) or FDB (`Bridge`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeighEntry {
    /// `Bridge` for FDB entries, else the IP family.
    pub fdb: bool,
    /// The IP (neighbour) or the remote underlay IP (FDB `dst`).
    pub ip: IpAddr,
    /// The MAC.
    pub mac: [u8; 6],
}

fn neigh_msg(index: u32, e: &NeighEntry) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.family = match (e.fdb, e.ip) {
        (true, _) => AddressFamily::Bridge,
        (false, IpAddr::V4(_)) => AddressFamily::Inet,
        (false, IpAddr::V6(_)) => AddressFamily::Inet6,
    };
    if e.fdb {
        m.header.flags = NeighbourFlags::Own;
    }
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(e.mac.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(match e.ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
    m
}

/// Permanent neighbours and FDB entries with a destination on link `index`.
pub fn dump_neighbours(sock: &mut NlSocket, index: u32) -> Result<Vec<NeighEntry>, NlError> {
    let mut out = Vec::new();
    for fam in [
        AddressFamily::Inet,
        AddressFamily::Inet6,
        AddressFamily::Bridge,
    ] {
        let mut req = NeighbourMessage::default();
        req.header.family = fam;
        // Strict checking refuses an ifindex in the header: filter here.
        for m in sock.dump(RouteNetlinkMessage::GetNeighbour(req))? {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            if n.header.ifindex != index || n.header.state != NeighbourState::Permanent {
                continue;
            }
            let mut ip = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                        ip = Some(IpAddr::V4(*v4))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                        ip = Some(IpAddr::V6(*v6))
                    }
                    // FDB entries (family AF_BRIDGE) carry their IP destination untyped.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => {
                        ip = match raw.len() {
                            4 => <[u8; 4]>::try_from(raw.as_slice()).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(raw.as_slice()).ok().map(IpAddr::from),
                            _ => None,
                        }
                    }
                    NeighbourAttribute::LinkLayerAddress(l) => {
                        mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                    }
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (ip, mac) {
                out.push(NeighEntry {
                    fdb: fam == AddressFamily::Bridge,
                    ip,
                    mac,
                });
            }
        }
    }
    Ok(out)
}

/// Adds or replaces a permanent neighbour / FDB entry.
pub fn replace_neighbour(sock: &mut NlSocket, index: u32, e: &NeighEntry) -> Result<(), NlError> {
    sock.request(
        RouteNetlinkMessage::NewNeighbour(neigh_msg(index, e)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Deletes a neighbour / FDB entry.
pub fn delete_neighbour(sock: &mut NlSocket, index: u32, e: &NeighEntry) -> Result<(), NlError> {
    sock.request(RouteNetlinkMessage::DelNeighbour(neigh_msg(index, e)), 0)
}
