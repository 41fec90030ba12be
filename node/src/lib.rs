//! tortie-node: the per-node agent. It registers this node's Node resource,
//! watches the datastore, holds the BGP sessions the resources call for
//! (node-to-node mesh, BGPPeers, route reflectors), originates this node's
//! affine IPAM blocks, feeds felix (local workloads, blackholes for local
//! blocks, remote blocks with next hops, VXLAN VTEPs) and serves its status
//! on a unix control socket and over HTTP (`/metrics`, `/livez`, `/readyz`).
//!
//! Must not: choose kernel routes itself (felix computes them), write IPAM
//! records except through `tortie-ipam-core` (tunnel addresses), or touch
//! any other node's Node resource. The pure parts (peer computation, felix
//! input, IP autodetection) are separate modules with their own tests.

pub mod agent;
pub mod api;
pub mod autodetect;
pub mod dataplane;
pub mod feed;
pub mod learned;
pub mod peers;
pub mod server;
pub mod snapshot;
pub mod sync;
