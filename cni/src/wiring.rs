//! The pod's plumbing, as Calico lays it out: a veth pair with the host end
//! `cali…` (MAC ee:ee:ee:ee:ee:ee, proxy ARP/NDP, a /32 or /128 route of
//! protocol 80 to the pod) and the pod end `CNI_IFNAME` holding the pod's
//! /32 (/128) with a default route via 169.254.1.1 (fe80::ecee:eeff:feee:eeee).

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use ipnet::IpNet;
use netlink_packet_route::route::RouteScope;

use crate::error::CniError;
use crate::naming::{
    format_mac, HOST_VETH_MAC, POD_GATEWAY_V4, POD_GATEWAY_V6, WORKLOAD_ROUTE_PROTOCOL,
};
use crate::netlink::{Netlink, RouteSpec, VethSpec};
use crate::{netns, sysctl};

/// `rtm_protocol` of the routes inside the pod (what `ip route add` uses).
const POD_ROUTE_PROTOCOL: u8 = 3;

/// What to wire for one attachment.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// Host-side veth name.
    pub host_veth: &'a str,
    /// Pod-side interface name (CNI_IFNAME).
    pub ifname: &'a str,
    /// The pod's network namespace (CNI_NETNS).
    pub netns_path: &'a Path,
    /// MTU of both ends.
    pub mtu: u32,
    /// The pod's addresses, as /32 and /128.
    pub addresses: &'a [IpNet],
}

/// What wiring produced, for the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wired {
    /// Host veth MAC.
    pub host_mac: String,
    /// Pod interface MAC.
    pub pod_mac: String,
}

/// Narrows an IPAM address to a host prefix (/32 or /128), as Calico does.
pub fn host_prefix(addr: IpNet) -> IpNet {
    let len = match addr {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    };
    IpNet::new(addr.addr(), len).unwrap_or(addr)
}

fn open_pod_netns(path: &Path) -> Result<File, CniError> {
    netns::open(path)?.ok_or_else(|| CniError::Netns {
        path: path.display().to_string(),
        reason: "does not exist".into(),
    })
}

/// Whether [`setup_host`] made the veth pair or found it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VethOrigin {
    /// Created by this call (a stale host veth of the same name was replaced).
    Created,
    /// Already there and wired to this pod (a previous ADD whose record is
    /// gone): kept as is, so the pod keeps its interface and MAC.
    Reused,
}

/// Creates the veth pair (or reuses the pair a previous ADD left for this
/// pod) and configures the host side (sysctls, routes).
pub fn setup_host(plan: &Plan<'_>) -> Result<VethOrigin, CniError> {
    let ns = open_pod_netns(plan.netns_path)?;
    let mut nl = Netlink::open().map_err(|e| CniError::netlink("open socket", e))?;
    let existing = nl
        .link_by_name(plan.host_veth)
        .map_err(|e| CniError::netlink(format!("get link {}", plan.host_veth), e))?;
    let origin = match existing {
        Some(old) if pod_end_is_reusable(plan, &ns, old.index)? => VethOrigin::Reused,
        Some(old) => {
            // A leftover of an interrupted attempt or of another sandbox: replace it.
            nl.delete_link(old.index).map_err(|e| {
                CniError::netlink(format!("delete stale veth {}", plan.host_veth), e)
            })?;
            create_pair(&mut nl, plan, &ns)?
        }
        None => create_pair(&mut nl, plan, &ns)?,
    };
    configure_host_side(&mut nl, plan)?;
    Ok(origin)
}

fn create_pair(nl: &mut Netlink, plan: &Plan<'_>, ns: &File) -> Result<VethOrigin, CniError> {
    let spec = VethSpec {
        host_name: plan.host_veth,
        host_mac: HOST_VETH_MAC,
        peer_name: plan.ifname,
        peer_netns_fd: ns.as_raw_fd(),
        mtu: plan.mtu,
    };
    nl.create_veth(&spec).map_err(|e| {
        CniError::netlink(
            format!("create veth {} / {}", plan.host_veth, plan.ifname),
            e,
        )
    })?;
    Ok(VethOrigin::Created)
}

/// True when the pod's `CNI_IFNAME` is the peer of host link `host_index`
/// and carries no address outside the plan (link-local aside): the pair a
/// previous ADD made for this very attachment.
fn pod_end_is_reusable(plan: &Plan<'_>, ns: &File, host_index: u32) -> Result<bool, CniError> {
    let ifname = plan.ifname;
    let wanted: Vec<IpNet> = plan.addresses.iter().map(|a| host_prefix(*a)).collect();
    netns::run_in(ns, plan.netns_path, move || {
        let mut nl = Netlink::open().map_err(|e| CniError::netlink("open socket in pod", e))?;
        let Some(link) = nl
            .link_by_name(ifname)
            .map_err(|e| CniError::netlink(format!("get link {ifname}"), e))?
        else {
            return Ok(false);
        };
        if link.peer_index != Some(host_index) {
            return Ok(false);
        }
        let have = nl
            .addresses(link.index)
            .map_err(|e| CniError::netlink("list addresses", e))?;
        Ok(have
            .iter()
            .filter(|a| !is_link_local(a.addr()))
            .all(|a| wanted.contains(a)))
    })
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn configure_host_side(nl: &mut Netlink, plan: &Plan<'_>) -> Result<(), CniError> {
    let h = plan.host_veth;
    let link = nl
        .link_by_name(h)
        .map_err(|e| CniError::netlink(format!("get link {h}"), e))?
        .ok_or_else(|| {
            CniError::netlink(
                format!("get link {h}"),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?;
    nl.set_up(link.index)
        .map_err(|e| CniError::netlink(format!("set {h} up"), e))?;
    if plan.addresses.iter().any(|a| a.addr().is_ipv4()) {
        sysctl::write(&format!("ipv4/conf/{h}/proxy_arp"), "1")?;
        sysctl::write(&format!("ipv4/conf/{h}/forwarding"), "1")?;
        sysctl::write(&format!("ipv4/conf/{h}/route_localnet"), "1")?;
        sysctl::write(&format!("ipv4/neigh/{h}/proxy_delay"), "0")?;
    }
    if plan.addresses.iter().any(|a| a.addr().is_ipv6()) {
        sysctl::write(&format!("ipv6/conf/{h}/proxy_ndp"), "1")?;
        sysctl::write(&format!("ipv6/conf/{h}/forwarding"), "1")?;
        sysctl::write(&format!("ipv6/conf/{h}/accept_ra"), "0")?;
    }
    for addr in plan.addresses {
        let spec = RouteSpec {
            dst: host_prefix(*addr),
            gateway: None,
            oif: link.index,
            protocol: WORKLOAD_ROUTE_PROTOCOL,
            scope: RouteScope::Link,
        };
        nl.add_route(&spec)
            .map_err(|e| CniError::netlink(format!("add route {} dev {h}", spec.dst), e))?;
    }
    Ok(())
}

/// Configures the pod side: addresses and the default routes; returns the MACs.
pub fn setup_pod(plan: &Plan<'_>) -> Result<Wired, CniError> {
    let ns = open_pod_netns(plan.netns_path)?;
    let ifname = plan.ifname;
    let addresses = plan.addresses;
    let pod_mac = netns::run_in(&ns, plan.netns_path, move || {
        let mut nl = Netlink::open().map_err(|e| CniError::netlink("open socket in pod", e))?;
        let link = nl
            .link_by_name(ifname)
            .map_err(|e| CniError::netlink(format!("get link {ifname}"), e))?
            .ok_or_else(|| {
                CniError::netlink(
                    format!("get link {ifname}"),
                    std::io::Error::from_raw_os_error(libc::ENODEV),
                )
            })?;
        nl.set_up(link.index)
            .map_err(|e| CniError::netlink(format!("set {ifname} up"), e))?;
        for addr in addresses {
            nl.add_address(link.index, host_prefix(*addr))
                .map_err(|e| CniError::netlink(format!("add address {addr} dev {ifname}"), e))?;
        }
        for route in pod_routes(addresses, link.index) {
            nl.add_route(&route)
                .map_err(|e| CniError::netlink(format!("add route {} in pod", route.dst), e))?;
        }
        Ok(format_mac(&link.mac))
    })?;
    Ok(Wired {
        host_mac: format_mac(&HOST_VETH_MAC),
        pod_mac,
    })
}

/// The pod's routes: 169.254.1.1/32 scope link, then default via it (and ::/0 via fe80::…).
fn pod_routes(addresses: &[IpNet], oif: u32) -> Vec<RouteSpec> {
    let mut routes = Vec::new();
    if addresses.iter().any(|a| a.addr().is_ipv4()) {
        routes.push(RouteSpec {
            dst: IpNet::new(IpAddr::V4(POD_GATEWAY_V4), 32).expect("valid /32"),
            gateway: None,
            oif,
            protocol: POD_ROUTE_PROTOCOL,
            scope: RouteScope::Link,
        });
        routes.push(RouteSpec {
            dst: "0.0.0.0/0".parse().expect("valid default"),
            gateway: Some(IpAddr::V4(POD_GATEWAY_V4)),
            oif,
            protocol: POD_ROUTE_PROTOCOL,
            scope: RouteScope::Universe,
        });
    }
    if addresses.iter().any(|a| a.addr().is_ipv6()) {
        routes.push(RouteSpec {
            dst: "::/0".parse().expect("valid default"),
            gateway: Some(IpAddr::V6(POD_GATEWAY_V6)),
            oif,
            protocol: POD_ROUTE_PROTOCOL,
            scope: RouteScope::Universe,
        });
    }
    routes
}

/// Deletes the host veth (and with it the pod end and the host routes); absent is fine.
pub fn teardown(host_veth: &str) -> Result<(), CniError> {
    let mut nl = Netlink::open().map_err(|e| CniError::netlink("open socket", e))?;
    let link = nl
        .link_by_name(host_veth)
        .map_err(|e| CniError::netlink(format!("get link {host_veth}"), e))?;
    match link.map(|l| nl.delete_link(l.index)) {
        Some(Err(e)) if e.raw_os_error() != Some(libc::ENODEV) => {
            Err(CniError::netlink(format!("delete link {host_veth}"), e))
        }
        _ => Ok(()),
    }
}

/// True when the host veth exists.
pub fn host_veth_exists(host_veth: &str) -> Result<bool, CniError> {
    let mut nl = Netlink::open().map_err(|e| CniError::netlink("open socket", e))?;
    nl.link_by_name(host_veth)
        .map(|l| l.is_some())
        .map_err(|e| CniError::netlink(format!("get link {host_veth}"), e))
}

/// CHECK: the host veth is up with a route per address; the pod interface
/// has the expected MAC, every address, and its default route(s).
pub fn check(plan: &Plan<'_>, expected_pod_mac: Option<&str>) -> Result<(), CniError> {
    check_host(plan)?;
    let ns = open_pod_netns(plan.netns_path)?;
    let ifname = plan.ifname;
    let addresses = plan.addresses;
    netns::run_in(&ns, plan.netns_path, move || {
        let mut nl = Netlink::open().map_err(|e| CniError::netlink("open socket in pod", e))?;
        let link = nl
            .link_by_name(ifname)
            .map_err(|e| CniError::netlink(format!("get link {ifname}"), e))?
            .ok_or_else(|| {
                CniError::CheckFailed(format!("interface {ifname} is missing in the pod"))
            })?;
        if let Some(mac) = expected_pod_mac.filter(|m| !m.is_empty()) {
            let actual = format_mac(&link.mac);
            if !actual.eq_ignore_ascii_case(mac) {
                return Err(CniError::CheckFailed(format!(
                    "{ifname} has MAC {actual}, expected {mac}"
                )));
            }
        }
        let have = nl
            .addresses(link.index)
            .map_err(|e| CniError::netlink("list addresses", e))?;
        for addr in addresses {
            if !have.contains(&host_prefix(*addr)) {
                return Err(CniError::CheckFailed(format!(
                    "address {addr} is missing on {ifname}"
                )));
            }
        }
        for want in pod_routes(addresses, link.index)
            .iter()
            .filter(|r| r.gateway.is_some())
        {
            let routes = nl
                .routes(want.dst.addr())
                .map_err(|e| CniError::netlink("list routes", e))?;
            if !routes
                .iter()
                .any(|r| r.dst == want.dst && r.gateway == want.gateway && r.oif == link.index)
            {
                return Err(CniError::CheckFailed(format!(
                    "default route {} via {:?} is missing in the pod",
                    want.dst, want.gateway
                )));
            }
        }
        Ok(())
    })
}

fn check_host(plan: &Plan<'_>) -> Result<(), CniError> {
    let h = plan.host_veth;
    let mut nl = Netlink::open().map_err(|e| CniError::netlink("open socket", e))?;
    let link = nl
        .link_by_name(h)
        .map_err(|e| CniError::netlink(format!("get link {h}"), e))?
        .ok_or_else(|| CniError::CheckFailed(format!("host veth {h} is missing")))?;
    if !link.up {
        return Err(CniError::CheckFailed(format!("host veth {h} is down")));
    }
    for addr in plan.addresses {
        let dst = host_prefix(*addr);
        let routes = nl
            .routes(dst.addr())
            .map_err(|e| CniError::netlink("list routes", e))?;
        if !routes
            .iter()
            .any(|r| r.dst == dst && r.oif == link.index && r.protocol == WORKLOAD_ROUTE_PROTOCOL)
        {
            return Err(CniError::CheckFailed(format!(
                "host route {dst} dev {h} is missing"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_addresses_are_narrowed_to_host_prefixes() {
        assert_eq!(
            host_prefix("10.22.0.5/16".parse().unwrap()).to_string(),
            "10.22.0.5/32"
        );
        assert_eq!(
            host_prefix("fd00::5/64".parse().unwrap()).to_string(),
            "fd00::5/128"
        );
    }

    #[test]
    fn pod_routes_go_via_the_link_local_gateways() {
        let addrs: Vec<IpNet> = vec![
            "10.0.0.1/32".parse().unwrap(),
            "fd00::1/128".parse().unwrap(),
        ];
        let r = pod_routes(&addrs, 7);
        assert_eq!(r[0].dst.to_string(), "169.254.1.1/32");
        assert_eq!(r[0].scope, RouteScope::Link);
        assert_eq!(r[1].gateway, Some(IpAddr::V4(POD_GATEWAY_V4)));
        assert_eq!(r[2].gateway, Some(IpAddr::V6(POD_GATEWAY_V6)));
        assert!(r.iter().all(|x| x.oif == 7));
    }
}
