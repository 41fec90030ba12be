//! Sans-IO BGP session finite state machine (RFC 4271 section 8).
//!
//! (Being built: see the issue that owns this crate.)
