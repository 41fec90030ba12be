//! tunl0 and the VXLAN device: present, up, right MTU and address, and the
//! VXLAN FDB / neighbour entries kept in step with the remote VTEPs.
//! Under a restart hold ([`Removal::Deferred`]) nothing is taken away: the
//! VXLAN device and VTEP entries that retained routes use stay until the hold ends.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netlink_packet_route::link::InfoKind;
use tortie_felix::desired::{IpipDevice, VtepEntry, VxlanDevice};
use tortie_felix::FelixConfig;

use crate::links::{
    add_address, create_link, create_vxlan, del_address, delete_link, delete_neighbour,
    dump_addresses, dump_links, dump_neighbours, replace_neighbour, set_link, Link, NeighEntry,
};
use crate::nl::{NlError, NlSocket};

/// A device could not be brought to its desired state.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Netlink failed while handling `device`.
    #[error("device {device}: {source}")]
    Netlink {
        /// The device.
        device: String,
        /// Why.
        source: NlError,
    },
    /// The kernel has no IPIP support (no `ipip` module).
    #[error("the kernel cannot create {0}: no IPIP support (load the ipip module)")]
    NoIpip(String),
}

/// Whether device state felix no longer wants goes now or after a restart hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Remove it now.
    Now,
    /// Keep it: routes kept by the hold may still use it.
    Deferred,
}

fn nl(device: &str) -> impl Fn(NlError) -> DeviceError + '_ {
    move |source| DeviceError::Netlink {
        device: device.to_string(),
        source,
    }
}

fn find(sock: &mut NlSocket, name: &str) -> Result<Option<Link>, DeviceError> {
    Ok(dump_links(sock)
        .map_err(nl(name))?
        .into_iter()
        .find(|l| l.name == name))
}

fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Makes `index` hold exactly `want` (as a host address), removing any other address.
fn sync_addresses(
    sock: &mut NlSocket,
    dev: &str,
    index: u32,
    want: Option<IpAddr>,
) -> Result<(), DeviceError> {
    let have = dump_addresses(sock, index).map_err(nl(dev))?;
    for (ip, len) in &have {
        if Some(*ip) != want || *len != host_prefix(*ip) {
            del_address(sock, index, *ip, *len).map_err(nl(dev))?;
        }
    }
    if let Some(ip) = want {
        if !have.contains(&(ip, host_prefix(ip))) {
            add_address(sock, index, ip, host_prefix(ip)).map_err(nl(dev))?;
        }
    }
    Ok(())
}

/// tunl0: created when missing and IPIP is on, up with its MTU and single
/// address; when IPIP is off its addresses are removed (the fallback device
/// itself can't be deleted).
pub fn ensure_ipip(
    sock: &mut NlSocket,
    cfg: &FelixConfig,
    spec: &IpipDevice,
) -> Result<(), DeviceError> {
    let dev = cfg.ipip_device.as_str();
    let mut link = find(sock, dev)?;
    if link.is_none() && spec.enabled {
        match create_link(sock, dev, InfoKind::IpIp, None, Vec::new()) {
            Ok(()) => {}
            Err(NlError::Kernel(nix::errno::Errno::EEXIST)) => {}
            Err(NlError::Kernel(nix::errno::Errno::EOPNOTSUPP)) => {
                return Err(DeviceError::NoIpip(dev.into()))
            }
            Err(e) => return Err(nl(dev)(e)),
        }
        link = find(sock, dev)?;
    }
    let Some(link) = link else {
        return match spec.enabled {
            true => Err(DeviceError::NoIpip(dev.into())),
            false => Ok(()),
        };
    };
    if spec.enabled && (!link.up || link.mtu != spec.mtu) {
        set_link(sock, link.index, spec.mtu, None).map_err(nl(dev))?;
    }
    sync_addresses(sock, dev, link.index, spec.address)
}

fn vxlan_matches(link: &Link, spec: &VxlanDevice) -> bool {
    link.kind == Some(InfoKind::Vxlan)
        && link.vxlan.is_some_and(|(vni, port, local)| {
            vni == spec.vni && port == spec.port && local.is_none_or(|l| l == spec.local)
        })
}

/// The VXLAN device: created (or recreated when VNI, port or local address
/// differ), up with its MTU, MAC and address; deleted when VXLAN is off
/// (unless `removal` defers it: then it is left as it is). Returns its index
/// when present and wanted.
pub fn ensure_vxlan(
    sock: &mut NlSocket,
    cfg: &FelixConfig,
    spec: Option<&VxlanDevice>,
    removal: Removal,
) -> Result<Option<u32>, DeviceError> {
    let dev = cfg.vxlan_device.as_str();
    let link = find(sock, dev)?;
    let Some(spec) = spec else {
        if let (Some(l), Removal::Now) = (link, removal) {
            delete_link(sock, l.index).map_err(nl(dev))?;
        }
        return Ok(None);
    };
    let link = match link {
        Some(l) if vxlan_matches(&l, spec) => l,
        other => {
            if let Some(l) = other {
                delete_link(sock, l.index).map_err(nl(dev))?;
            }
            create_vxlan(sock, dev, spec).map_err(nl(dev))?;
            find(sock, dev)?.ok_or_else(|| nl(dev)(NlError::Lost))?
        }
    };
    if !link.up || link.mtu != spec.mtu || link.mac != spec.mac {
        set_link(sock, link.index, spec.mtu, Some(&spec.mac)).map_err(nl(dev))?;
    }
    sync_addresses(sock, dev, link.index, spec.address)?;
    Ok(Some(link.index))
}

/// Makes the VXLAN device hold one FDB entry (MAC → node IP) and one
/// neighbour (VTEP IP → MAC) per remote VTEP, and nothing else permanent
/// (other entries are removed unless `removal` defers it).
pub fn sync_vteps(
    sock: &mut NlSocket,
    cfg: &FelixConfig,
    index: u32,
    vteps: &BTreeSet<VtepEntry>,
    removal: Removal,
) -> Result<(), DeviceError> {
    let dev = cfg.vxlan_device.as_str();
    let want: BTreeSet<NeighEntry> = vteps
        .iter()
        .flat_map(|v| {
            [
                NeighEntry {
                    fdb: true,
                    ip: v.node_ip,
                    mac: v.mac,
                },
                NeighEntry {
                    fdb: false,
                    ip: v.vtep_ip,
                    mac: v.mac,
                },
            ]
        })
        .collect();
    let have: BTreeSet<NeighEntry> = dump_neighbours(sock, index)
        .map_err(nl(dev))?
        .into_iter()
        .collect();
    let stale = have.difference(&want).filter(|_| removal == Removal::Now);
    for stale in stale {
        match delete_neighbour(sock, index, stale) {
            Ok(()) | Err(NlError::Kernel(nix::errno::Errno::ENOENT)) => {}
            Err(e) => return Err(nl(dev)(e)),
        }
    }
    for e in want.difference(&have) {
        replace_neighbour(sock, index, e).map_err(nl(dev))?;
    }
    Ok(())
}
