//! Programs felix's desired state into a Linux kernel over rtnetlink: routes
//! (batched, filtered dumps), tunl0 and the VXLAN device with its FDB and
//! neighbours, workload sysctls, the MTU file, NAT outgoing and the
//! network-policy table (nftables, through `nft`), in a network namespace
//! given by path; monitors (rtnetlink, nftables) that repair what someone
//! else changes at once; and the clean-up that takes all of it away.
//!
//! Must not: touch routes that are not felix's (its protocols inside the
//! prefixes tortie owns, see `tortie_felix::Ownership`), devices other than
//! the tunnel devices it owns, or nftables tables other than its own.

// netlink-packet-* message types are #[non_exhaustive]: they can only be
// built as `default()` plus field assignments.
#![allow(clippy::field_reassign_with_default)]

pub mod cleanup;
pub mod devices;
pub mod events;
pub mod felix;
pub mod host;
pub mod links;
pub mod monitor;
pub mod nat;
pub mod netns;
pub mod nftcmd;
pub mod nftmon;
pub mod nl;
pub mod policy;
pub mod rawroute;
pub mod routes;

pub use events::{event_queue, EventQueue, EventSink, KernelEvent};
pub use felix::{
    DataplaneOptions, DataplaneStats, FelixDataplane, FelixError, IpipSupport, Monitors, NatSupport,
};
