//! Fuzz target: path attribute list decoding, with session parameters chosen by
//! the first octet.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../bgp/wire/tests/support/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| oracle::check_attributes(data));
