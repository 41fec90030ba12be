//! projectcalico.org/v3 resource types, parsing, validation and label selectors.
//!
//! (Being built: see issue 3.)

pub mod ipam;
