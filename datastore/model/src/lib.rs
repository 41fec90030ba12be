//! projectcalico.org/v3 resource types, parsing, validation and label selectors.
//!
//! (Being built: see the issue that owns this crate.)
