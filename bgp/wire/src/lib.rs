//! BGP-4 wire codec: messages, capabilities and path attributes, bytes in and out.
//!
//! (Being built: see the issue that owns this crate.)
