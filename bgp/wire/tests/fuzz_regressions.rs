//! Replays every input kept under `fuzz/regressions/<target>/` through the same
//! checks the fuzz targets run (`tests/support/oracle.rs`), on stable Rust.

#[path = "support/oracle.rs"]
mod oracle;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable input"),
            )
        })
        .collect()
}

fn replay(target: &str, check: fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no inputs for {target}");
    for (name, data) in all {
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{name} fails the {target} checks again");
    }
}

#[test]
fn message_decoding_regressions_stay_fixed() {
    replay("decode_message", oracle::check_message);
}

#[test]
fn attribute_decoding_regressions_stay_fixed() {
    replay("decode_attributes", oracle::check_attributes);
}
