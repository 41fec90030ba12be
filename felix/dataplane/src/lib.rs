//! The rtnetlink dataplane that felix reconciles into.
//!
//! (Being built: see the issue that owns this crate.)
