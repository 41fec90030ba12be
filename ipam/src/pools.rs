//! Pools as IPAM sees them, pool selection (Calico's rules) and the blocks
//! of a pool.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IP version of a request or pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The version of a CIDR.
    pub fn of(net: &IpNet) -> Self {
        match net {
            IpNet::V4(_) => IpVersion::V4,
            IpNet::V6(_) => IpVersion::V6,
        }
    }
}

impl fmt::Display for IpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpVersion::V4 => "IPv4",
            IpVersion::V6 => "IPv6",
        })
    }
}

/// What an address is for (an IPPool's `allowedUses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedUse {
    /// Pod addresses.
    Workload,
    /// Node tunnel addresses (IPIP, VXLAN).
    Tunnel,
}

/// Whether a pool's `nodeSelector` selects the requesting node, evaluated
/// by the caller (the selector language lives in `tortie-model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeMatch {
    /// The selector matches this node.
    Selected,
    /// It does not.
    NotSelected,
}

/// An IPPool's `assignmentMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignment {
    /// Chosen for requests that name no pool.
    #[default]
    Automatic,
    /// Used only when a request names it.
    Manual,
}

/// An IPPool, reduced to what allocation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    /// The pool CIDR.
    pub cidr: IpNet,
    /// Prefix length of its blocks (26 / 122 by default).
    pub block_size: u8,
    /// `disabled: true` pools are never chosen automatically.
    pub disabled: bool,
    /// Does the pool's node selector match the requesting node?
    pub node_match: NodeMatch,
    /// `allowedUses` (Calico's default is both).
    pub allowed_uses: Vec<AllowedUse>,
    /// `assignmentMode`.
    pub assignment: Assignment,
}

impl PoolView {
    /// An enabled pool selecting every node for every use.
    pub fn new(cidr: IpNet, block_size: u8) -> Self {
        Self {
            cidr,
            block_size,
            disabled: false,
            node_match: NodeMatch::Selected,
            allowed_uses: vec![AllowedUse::Workload, AllowedUse::Tunnel],
            assignment: Assignment::Automatic,
        }
    }

    /// Number of blocks in the pool.
    pub fn num_blocks(&self) -> u128 {
        if self.block_size < self.cidr.prefix_len() || self.block_size > self.cidr.max_prefix_len()
        {
            return 0; // invalid pool (validation rejects it): no blocks
        }
        let bits = u32::from(self.block_size.saturating_sub(self.cidr.prefix_len()));
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// The `index`-th block of the pool.
    pub fn block_at(&self, index: u128) -> Option<IpNet> {
        if index >= self.num_blocks() {
            return None;
        }
        let host_bits = u32::from(self.cidr.max_prefix_len() - self.block_size);
        match self.cidr {
            IpNet::V4(n) => {
                let base = u32::from(n.network()) as u128 + (index << host_bits);
                let ip = u32::try_from(base).ok()?;
                Ipv4Net::new(ip.into(), self.block_size).ok().map(IpNet::V4)
            }
            IpNet::V6(n) => {
                let base = u128::from(n.network()).checked_add(index.checked_shl(host_bits)?)?;
                Ipv6Net::new(base.into(), self.block_size)
                    .ok()
                    .map(IpNet::V6)
            }
        }
    }

    /// The block of this pool that holds `ip`.
    pub fn block_of(&self, ip: IpAddr) -> Option<IpNet> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        IpNet::new(ip, self.block_size).ok().map(|n| n.trunc())
    }

    fn usable(&self, version: IpVersion, use_: AllowedUse) -> bool {
        !self.disabled
            && IpVersion::of(&self.cidr) == version
            && self.node_match == NodeMatch::Selected
            && self.allowed_uses.contains(&use_)
    }
}

/// Why a requested pool cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRejection {
    /// No IPPool with that CIDR exists.
    Missing,
    /// The pool is disabled.
    Disabled,
    /// Its nodeSelector does not select this node.
    NotSelected,
    /// Its allowedUses does not include this use.
    UseNotAllowed,
    /// It is of the other IP version.
    WrongVersion,
}

impl fmt::Display for PoolRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolRejection::Missing => "no such IPPool",
            PoolRejection::Disabled => "the pool is disabled",
            PoolRejection::NotSelected => "its nodeSelector does not select this node",
            PoolRejection::UseNotAllowed => "its allowedUses does not include this use",
            PoolRejection::WrongVersion => "it is of the other IP version",
        })
    }
}

/// Chooses pools as Calico does: the requested ones (each must exist, be
/// enabled, select the node and allow the use), else every enabled pool of
/// the version whose nodeSelector matches and that allows the use.
pub fn select_pools(
    all: &[PoolView],
    requested: &[IpNet],
    version: IpVersion,
    use_: AllowedUse,
) -> Result<Vec<PoolView>, (IpNet, PoolRejection)> {
    if requested.is_empty() {
        let mut v: Vec<PoolView> = all
            .iter()
            .filter(|p| p.usable(version, use_) && p.assignment == Assignment::Automatic)
            .cloned()
            .collect();
        v.sort_by_key(|p| p.cidr);
        return Ok(v);
    }
    let mut out = Vec::new();
    for r in requested {
        let Some(p) = all.iter().find(|p| p.cidr == *r) else {
            return Err((*r, PoolRejection::Missing));
        };
        let why = if IpVersion::of(r) != version {
            Some(PoolRejection::WrongVersion)
        } else if p.disabled {
            Some(PoolRejection::Disabled)
        } else if p.node_match != NodeMatch::Selected {
            Some(PoolRejection::NotSelected)
        } else if !p.allowed_uses.contains(&use_) {
            Some(PoolRejection::UseNotAllowed)
        } else {
            None
        };
        if let Some(why) = why {
            return Err((*r, why));
        }
        out.push(p.clone());
    }
    Ok(out)
}

/// A start index in `0..n` derived from the node name (FNV-1a), so that
/// nodes claiming blocks at the same time start at different blocks.
pub fn start_index(node: &str, n: u128) -> u128 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    if n == 0 {
        0
    } else {
        u128::from(h) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn pool_splits_into_blocks_of_block_size() {
        let p = PoolView::new(net("10.0.0.0/24"), 26);
        assert_eq!(p.num_blocks(), 4);
        assert_eq!(p.block_at(0), Some(net("10.0.0.0/26")));
        assert_eq!(p.block_at(3), Some(net("10.0.0.192/26")));
        assert_eq!(p.block_at(4), None);
        let p6 = PoolView::new(net("fd00::/120"), 122);
        assert_eq!(p6.block_at(1), Some(net("fd00::40/122")));
        assert_eq!(
            p.block_of("10.0.0.130".parse().unwrap()),
            Some(net("10.0.0.128/26"))
        );
    }

    #[test]
    fn automatic_selection_skips_disabled_unselected_and_other_use_pools() {
        let mut a = PoolView::new(net("10.1.0.0/16"), 26);
        let mut b = PoolView::new(net("10.2.0.0/16"), 26);
        let mut c = PoolView::new(net("10.3.0.0/16"), 26);
        let d = PoolView::new(net("10.0.0.0/16"), 26);
        let v6 = PoolView::new(net("fd00::/64"), 122);
        a.disabled = true;
        b.node_match = NodeMatch::NotSelected;
        c.allowed_uses = vec![AllowedUse::Tunnel];
        let all = [a, b, c, d, v6];
        let got = select_pools(&all, &[], IpVersion::V4, AllowedUse::Workload).unwrap();
        assert_eq!(
            got.iter().map(|p| p.cidr).collect::<Vec<_>>(),
            vec![net("10.0.0.0/16")]
        );
        let t = select_pools(&all, &[], IpVersion::V4, AllowedUse::Tunnel).unwrap();
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn an_unusable_requested_pool_is_an_error_naming_it() {
        let mut a = PoolView::new(net("10.1.0.0/16"), 26);
        a.disabled = true;
        let all = [a];
        let e = select_pools(
            &all,
            &[net("10.1.0.0/16")],
            IpVersion::V4,
            AllowedUse::Workload,
        );
        assert_eq!(e, Err((net("10.1.0.0/16"), PoolRejection::Disabled)));
        let e = select_pools(
            &all,
            &[net("10.9.0.0/16")],
            IpVersion::V4,
            AllowedUse::Workload,
        );
        assert_eq!(e, Err((net("10.9.0.0/16"), PoolRejection::Missing)));
    }

    #[test]
    fn start_index_is_stable_and_in_range() {
        assert_eq!(start_index("node-a", 1024), start_index("node-a", 1024));
        assert!(start_index("node-b", 7) < 7);
        assert_eq!(start_index("x", 0), 0);
    }
}
