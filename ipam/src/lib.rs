//! Calico-style IPAM: pools, affine blocks, handles; allocation over a CAS store.
//!
//! (Being built: see the issue that owns this crate.)
