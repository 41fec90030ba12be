//! Errors of the IPAM algorithm; each says what failed and what to do.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::pools::{IpVersion, PoolRejection};
use crate::store::{IpamKey, StoreError};

/// Use of one pool, reported when a request cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// The pool.
    pub cidr: IpNet,
    /// Addresses allocated in its blocks.
    pub in_use: u128,
    /// Addresses in the pool.
    pub capacity: u128,
    /// Blocks that exist (claimed by some node).
    pub blocks_claimed: u128,
    /// Blocks the pool can hold.
    pub blocks_total: u128,
}

/// What, besides full pools, stopped an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The node holds `maxBlocksPerHost` blocks already.
    MaxBlocksPerHost(u32),
    /// Strict affinity forbids borrowing from other nodes' blocks.
    StrictAffinity,
    /// `autoAllocateBlocks` is off.
    NoAutoAllocate,
}

/// A request that the chosen pools could not satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhaustion {
    /// IP version asked for.
    pub version: IpVersion,
    /// Node that asked.
    pub node: String,
    /// Addresses asked for.
    pub wanted: usize,
    /// Addresses found before giving up (all released again).
    pub found: usize,
    /// Use of each pool considered.
    pub pools: Vec<PoolUsage>,
    /// Limits that applied.
    pub limits: Vec<Limit>,
}

impl fmt::Display for Exhaustion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot allocate {} {} address(es) for node {} (only {} free to it):",
            self.wanted, self.version, self.node, self.found
        )?;
        for p in &self.pools {
            write!(
                f,
                " pool {} has {} of {} addresses in use, {} of {} blocks claimed;",
                p.cidr, p.in_use, p.capacity, p.blocks_claimed, p.blocks_total
            )?;
        }
        for l in &self.limits {
            match l {
                Limit::MaxBlocksPerHost(n) => {
                    write!(f, " the node holds maxBlocksPerHost={n} blocks;")?
                }
                Limit::StrictAffinity => write!(f, " strictAffinity forbids borrowing;")?,
                Limit::NoAutoAllocate => write!(f, " autoAllocateBlocks is off;")?,
            }
        }
        f.write_str(" add an IPPool or release addresses")
    }
}

/// Failure of an IPAM operation.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The datastore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No pool of the version can serve this node.
    #[error("no enabled {version} IPPool selects node {node} for this use; create one or fix its nodeSelector/allowedUses")]
    NoPools {
        /// The IP version.
        version: IpVersion,
        /// The node.
        node: String,
    },
    /// A requested pool cannot be used.
    #[error("IPPool {cidr} cannot be used: {why}")]
    Pool {
        /// The pool asked for.
        cidr: IpNet,
        /// Why not.
        why: PoolRejection,
    },
    /// The pools are full (or limits stopped the allocation).
    #[error("{0}")]
    Exhausted(Box<Exhaustion>),
    /// Compare-and-swap kept failing.
    #[error("{key}: gave up after {attempts} compare-and-swap conflicts; retry")]
    Contention {
        /// The contended object.
        key: IpamKey,
        /// Attempts made.
        attempts: u32,
    },
    /// The address is in no IPPool.
    #[error("{ip} is in no IPPool")]
    NotInPool {
        /// The address.
        ip: IpAddr,
    },
    /// The address is allocated already.
    #[error("{ip} is in use (handle {})", handle.as_deref().unwrap_or("none"))]
    AddressInUse {
        /// The address.
        ip: IpAddr,
        /// Its current handle.
        handle: Option<String>,
    },
}
