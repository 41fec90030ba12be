//! Programs felix's desired state into a Linux kernel over rtnetlink: routes
//! (batched, filtered dumps, a monitor that repairs), tunl0 and the VXLAN
//! device with its FDB and neighbours, workload sysctls, the MTU file, NAT
//! outgoing and the network-policy table (nftables, through `nft`), in a
//! network namespace given by path.
//!
//! Must not: touch routes of protocols other than felix's, devices other
//! than the tunnel devices it owns, or nftables tables other than its own.

// netlink-packet-* message types are #[non_exhaustive]: they can only be
// built as `default()` plus field assignments.
#![allow(clippy::field_reassign_with_default)]

pub mod devices;
pub mod felix;
pub mod host;
pub mod links;
pub mod monitor;
pub mod nat;
pub mod netns;
pub mod nftcmd;
pub mod nl;
pub mod policy;
pub mod rawroute;
pub mod routes;

pub use felix::{DataplaneOptions, FelixDataplane, FelixError, IpipSupport, NatSupport};
