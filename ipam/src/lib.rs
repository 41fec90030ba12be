//! Calico-style IPAM: splits IPPools into blocks affine to nodes, hands out
//! addresses owned by handles, borrows from other nodes' blocks unless
//! strict affinity forbids it, releases by handle or address, and checks the
//! store for leaks — never giving one address out twice.
//!
//! The algorithm is pure over the [`IpamStore`] trait: it does no I/O of its
//! own, reads no clock and does not log. Every write is a compare-and-swap
//! with bounded retries. The adapter over `tortie-datastore` is the only
//! module that touches a real store.
//!
//! Must not: write blocks, affinities or handles any other way than through
//! compare-and-swap commits, or decide pool selection from anything but the
//! pools it is given.

mod allocate;
pub mod block_ops;
mod cas;
pub mod check;
pub mod datastore;
mod error;
mod maint;
mod memory;
pub mod pools;
mod release;
pub mod store;

pub use allocate::{AssignRequest, Assigned, Ipam, DEFAULT_MAX_RETRIES};
pub use block_ops::Owner;
pub use check::{check, CheckInput, CheckReport};
pub use datastore::DatastoreIpamStore;
pub use error::{Exhaustion, IpamError, Limit, PoolUsage};
pub use maint::ReportRelease;
pub use memory::MemoryStore;
pub use pools::{AllowedUse, Assignment, IpVersion, NodeMatch, PoolView};
pub use release::NodeRelease;
pub use store::{Entry, IpamKey, IpamStore, ListScope, Revision, StoreError, Versioned, Write};
