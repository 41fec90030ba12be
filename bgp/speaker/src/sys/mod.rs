//! Socket options BGP needs beyond what std and socket2 offer.

#[allow(unsafe_code)]
mod sockopt;

pub use sockopt::{set_md5_key, set_min_ttl};
