//! Fuzz target: BGP message decoding (framing, OPEN, UPDATE, NOTIFICATION,
//! KEEPALIVE, ROUTE-REFRESH) with session parameters chosen by the first octet.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../bgp/wire/tests/support/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| oracle::check_message(data));
