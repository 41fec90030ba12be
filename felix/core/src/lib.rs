//! Computes the kernel state felix must hold for one node (routes, tunnel
//! devices, VTEPs, sysctls, MTUs, NAT outgoing, the network-policy table)
//! and reconciles routes against a dataplane by diffing desired and
//! observed views, touching only routes it owns (its protocol numbers
//! inside prefixes tortie owns).
//!
//! Must not: do I/O, read the clock (time is a parameter), log, or depend
//! on the BGP crates. The rtnetlink shell lives in `tortie-felix-dataplane`.

pub mod config;
pub mod delta;
pub mod desired;
pub mod input;
pub mod mock;
pub mod mtu;
pub mod nexthop;
pub mod owned;
pub mod policy;
pub mod reconcile;
pub mod route;

pub use config::FelixConfig;
pub use delta::DeltaTracker;
pub use desired::{compute, DesiredState};
pub use input::FelixInput;
pub use nexthop::{hop_path, on_link, same_subnet, HopPath};
pub use owned::{owned_prefixes, Ownership};
pub use reconcile::{ApplyReport, Reconciler, RouteDataplane, RouteEvent, RouteHold};
pub use route::{NextHop, OnLink, RouteKey, RouteKind, RouteOp, RouteScope, RouteSpec};
