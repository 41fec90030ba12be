//! BGP RIB: Adj-RIB-In/Loc-RIB/Adj-RIB-Out, best path, route reflection, policy.
//!
//! (Being built: see the issue that owns this crate.)
