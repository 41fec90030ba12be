//! The link, address and route requests the plugins need.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;

/// What the plugin needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// ifindex.
    pub index: u32,
    /// MAC address bytes.
    pub mac: Vec<u8>,
    /// MTU.
    pub mtu: u32,
    /// IFF_UP set.
    pub up: bool,
    /// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's namespace).
    pub peer_index: Option<u32>,
}

/// A veth pair to create: the host end here, the peer directly in the pod namespace.
#[derive(Debug, Clone, Copy)]
pub struct VethSpec<'a> {
    /// Host end name.
    pub host_name: &'a str,
    /// Host end MAC.
    pub host_mac: [u8; 6],
    /// Pod end name (CNI_IFNAME).
    pub peer_name: &'a str,
    /// An open fd of the pod's network namespace.
    pub peer_netns_fd: RawFd,
    /// MTU of both ends.
    pub mtu: u32,
}

/// A route to add in the main table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// Destination prefix.
    pub dst: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: u32,
    /// `rtm_protocol`.
    pub protocol: u8,
    /// Link scope (true for on-link destinations without a gateway).
    pub scope: RouteScope,
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl LinkInfo {
    fn from_message(m: &LinkMessage) -> Self {
        let mut info = Self {
            index: m.header.index,
            mac: Vec::new(),
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            peer_index: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::Address(mac) => info.mac.clone_from(mac),
                LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
                LinkAttribute::Link(i) => info.peer_index = Some(*i),
                _ => {}
            }
        }
        info
    }
}

impl Netlink {
    /// Looks a link up by name; `Ok(None)` when it does not exist.
    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<LinkInfo>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.get(RouteNetlinkMessage::GetLink(msg)) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(LinkInfo::from_message(m)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a veth pair (both ends down), the peer inside the pod's namespace.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> io::Result<()> {
        // Not created up: veth_open() fails with ENOTCONN until both ends exist.
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName(spec.peer_name.to_string()),
            LinkAttribute::Mtu(spec.mtu),
            LinkAttribute::NetNsFd(spec.peer_netns_fd),
        ];
        let mut msg = LinkMessage::default();
        msg.attributes = vec![
            LinkAttribute::IfName(spec.host_name.to_string()),
            LinkAttribute::Address(spec.host_mac.to_vec()),
            LinkAttribute::Mtu(spec.mtu),
            LinkAttribute::LinkInfo(vec![
                NlLinkInfo::Kind(InfoKind::Veth),
                NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        self.execute(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Sets link `index` up.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.execute(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Deletes a link by index (a veth's peer goes with it).
    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.execute(RouteNetlinkMessage::DelLink(msg), 0)
    }

    /// Adds `addr` to link `index` (IPv6 without duplicate address detection).
    pub fn add_address(&mut self, index: u32, addr: IpNet) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(addr.addr());
        msg.header.prefix_len = addr.prefix_len();
        msg.header.index = index;
        msg.header.scope = AddressScope::Universe;
        msg.attributes.push(AddressAttribute::Local(addr.addr()));
        if addr.addr().is_ipv4() {
            msg.attributes.push(AddressAttribute::Address(addr.addr()));
        } else {
            msg.attributes.push(AddressAttribute::Address(addr.addr()));
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.execute(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// The addresses on link `index`.
    pub fn addresses(&mut self, index: u32) -> io::Result<Vec<IpNet>> {
        let replies = self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(m) if m.header.index == index => {
                    m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(ip) => IpNet::new(*ip, m.header.prefix_len).ok(),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Adds (or replaces) a route in the main table.
    pub fn add_route(&mut self, spec: &RouteSpec) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(spec.dst.addr());
        msg.header.destination_prefix_length = spec.dst.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::from(spec.protocol);
        msg.header.scope = spec.scope;
        msg.header.kind = RouteType::Unicast;
        if spec.dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(route_addr(spec.dst.addr())));
        }
        if let Some(gw) = spec.gateway {
            msg.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
        }
        msg.attributes.push(RouteAttribute::Oif(spec.oif));
        self.execute(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Routes of the main table in `family_of`'s family.
    pub fn routes(&mut self, family_of: IpAddr) -> io::Result<Vec<RouteEntry>> {
        let mut req = RouteMessage::default();
        req.header.address_family = family(family_of);
        let replies = self.dump(RouteNetlinkMessage::GetRoute(req))?;
        let unspecified = match family_of {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m)
                    if m.header.table == RouteHeader::RT_TABLE_MAIN =>
                {
                    Some(route_entry(m, unspecified))
                }
                _ => None,
            })
            .collect())
    }
}

/// A route as read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination prefix.
    pub dst: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: u32,
    /// `rtm_protocol`.
    pub protocol: u8,
}

fn route_entry(m: &RouteMessage, unspecified: IpAddr) -> RouteEntry {
    let mut dst = unspecified;
    let mut gw = None;
    let mut oif = 0;
    let as_ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = as_ip(d).unwrap_or(unspecified),
            RouteAttribute::Gateway(g) => gw = as_ip(g),
            RouteAttribute::Oif(i) => oif = *i,
            _ => {}
        }
    }
    let net = IpNet::new(dst, m.header.destination_prefix_length)
        .unwrap_or_else(|_| IpNet::from(unspecified));
    RouteEntry {
        dst: net,
        gateway: gw,
        oif,
        protocol: u8::from(m.header.protocol),
    }
}
