//! A panic is a bug, but the runtime must still get an answer it can parse:
//! the hook records where it happened (and prints Rust's usual message on
//! stderr); [`crate::main_entry`] and ADD catch the unwind and turn it into
//! [`CniError::Panic`], so ADD rolls back and the error JSON goes to stdout.
//! Built with `panic = "abort"` there is no unwind to catch: the hook then
//! prints the error JSON itself before the process aborts.

use std::any::Any;
use std::sync::{Mutex, OnceLock};

use crate::error::CniError;

/// `msg at file:line` of the last panic (the hook runs before unwinding).
static LAST: Mutex<Option<String>> = Mutex::new(None);
/// The `cniVersion` to tag the abort-time error JSON with.
static VERSION: OnceLock<String> = OnceLock::new();

fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Installs the hook (once per process), keeping the default one's output.
pub fn install_hook(cni_version: &str) {
    if VERSION.set(cni_version.to_string()).is_err() {
        return;
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let text = format!("{}{at}", message(info.payload()));
        default(info);
        if cfg!(panic = "abort") {
            let version = VERSION.get().map_or("1.0.0", String::as_str);
            println!("{}", CniError::Panic(text.clone()).to_json(version));
        }
        *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }));
}

/// The error for a caught panic with `payload`.
pub fn error(payload: &(dyn Any + Send)) -> CniError {
    let recorded = LAST.lock().unwrap_or_else(|p| p.into_inner()).take();
    CniError::Panic(recorded.unwrap_or_else(|| message(payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_becomes_an_error_with_its_message() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        let e = error(caught.as_ref());
        assert_eq!(e.code(), 110);
        assert!(e.to_string().contains("boom 7"), "{e}");
        let j = e.to_json("0.4.0");
        assert_eq!(j["cniVersion"], "0.4.0");
        assert_eq!(j["code"], 110);
    }
}
