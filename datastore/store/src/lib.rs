//! The Store trait with SQLite and etcd v3 backends.
//!
//! (Being built: see the issue that owns this crate.)
