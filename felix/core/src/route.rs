//! Kernel route values: the key felix owns a route by and what it holds.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Identifies one kernel route felix owns: table and destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteKey {
    /// Routing table id.
    pub table: u32,
    /// Destination prefix (host bits zero).
    pub dst: IpNet,
}

/// Unicast or blackhole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RouteKind {
    /// Forward to the next hops.
    Unicast,
    /// Drop silently (the blocks affine to this node).
    Blackhole,
}

/// Route scope as the kernel knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RouteScope {
    /// Reached through a gateway (`scope global`).
    Universe,
    /// Directly attached (`scope link`).
    Link,
}

/// Whether the gateway is taken as on the link regardless of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OnLink {
    /// Normal gateway resolution.
    No,
    /// `onlink`: used through tunl0 and the VXLAN device.
    Yes,
}

/// One next hop of a route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NextHop {
    /// Gateway address, if any.
    pub gateway: Option<IpAddr>,
    /// Output device name, if pinned.
    pub device: Option<String>,
    /// `onlink` flag.
    pub onlink: OnLink,
}

impl NextHop {
    /// `via GW` with the device left to the kernel.
    pub fn via(gw: IpAddr) -> Self {
        Self {
            gateway: Some(gw),
            device: None,
            onlink: OnLink::No,
        }
    }

    /// `via GW dev DEV onlink`.
    pub fn via_onlink(gw: IpAddr, dev: &str) -> Self {
        Self {
            gateway: Some(gw),
            device: Some(dev.to_string()),
            onlink: OnLink::Yes,
        }
    }

    /// `dev DEV` (no gateway).
    pub fn dev(dev: &str) -> Self {
        Self {
            gateway: None,
            device: Some(dev.to_string()),
            onlink: OnLink::No,
        }
    }
}

/// What a route holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    /// `rtm_protocol`.
    pub protocol: u8,
    /// Unicast or blackhole.
    pub kind: RouteKind,
    /// Scope.
    pub scope: RouteScope,
    /// Next hops, sorted; more than one is ECMP; empty for a blackhole.
    pub next_hops: Vec<NextHop>,
}

impl RouteSpec {
    /// A blackhole route.
    pub fn blackhole(protocol: u8) -> Self {
        Self {
            protocol,
            kind: RouteKind::Blackhole,
            scope: RouteScope::Universe,
            next_hops: Vec::new(),
        }
    }

    /// A unicast route over `next_hops` (sorted and deduplicated here).
    pub fn unicast(protocol: u8, scope: RouteScope, mut next_hops: Vec<NextHop>) -> Self {
        next_hops.sort();
        next_hops.dedup();
        Self {
            protocol,
            kind: RouteKind::Unicast,
            scope,
            next_hops,
        }
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == RouteKind::Blackhole {
            return write!(f, "blackhole proto {}", self.protocol);
        }
        for nh in &self.next_hops {
            if let Some(gw) = nh.gateway {
                write!(f, "via {gw} ")?;
            }
            if let Some(d) = &nh.device {
                write!(f, "dev {d} ")?;
            }
            if nh.onlink == OnLink::Yes {
                write!(f, "onlink ")?;
            }
        }
        write!(f, "proto {}", self.protocol)
    }
}

/// One write to the kernel's routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp {
    /// Create or replace the route at `key`.
    Replace(RouteKey, RouteSpec),
    /// Delete the route at `key` that carries `spec.protocol`.
    Delete(RouteKey, RouteSpec),
}

impl RouteOp {
    /// The key written.
    pub fn key(&self) -> &RouteKey {
        match self {
            RouteOp::Replace(k, _) | RouteOp::Delete(k, _) => k,
        }
    }
}
