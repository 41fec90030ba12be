//! tortie-node: the per-node agent. It registers this node's Node resource,
//! watches the datastore, holds the BGP sessions the resources call for
//! (node-to-node mesh, BGPPeers, route reflectors) under Calico's
//! import/export policy, originates this node's affine IPAM blocks (and
//! borrowed addresses, service CIDRs), feeds felix (local workloads,
//! blackholes for local blocks, remote blocks with next hops from the
//! speaker's Loc-RIB, VXLAN VTEPs) and serves its status on a unix control
//! socket and over HTTP (`/metrics`, `/livez`, `/readyz`).
//!
//! Must not: choose kernel routes itself (felix computes them), write IPAM
//! records except through `tortie-ipam-core` (tunnel addresses), or touch
//! any other node's Node resource. The pure parts (peer computation, BGP
//! policy, felix input, IP autodetection) are separate modules with their
//! own tests.

pub mod agent;
/// The status API (its own crate, `tortie-node-api`, so clients link no agent).
pub use tortie_node_api as api;
pub mod autodetect;
pub mod bgp;
pub mod bootstrap;
pub mod cache;
pub mod cleanup;
pub mod dataplane;
pub mod feed;
pub mod felixcfg;
pub mod filters;
pub mod handlers;
pub mod learned;
pub mod logs;
pub mod netpol;
pub mod peers;
pub mod policy;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod snapshot;
pub mod sync;
pub mod sync_metrics;
mod syncer;
