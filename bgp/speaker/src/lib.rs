//! The async BGP speaker: listener, per-peer tasks, TCP MD5/GTSM.
//!
//! (Being built: see the issue that owns this crate.)
