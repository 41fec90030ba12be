//! Desired kernel dataplane state and the diff-based reconciler (pure).
//!
//! (Being built: see the issue that owns this crate.)
