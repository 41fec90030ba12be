//! The tortie CNI plugins: `tortie` wires a pod into the host (veth pair,
//! /32 routes, proxy ARP, WorkloadEndpoint) and `tortie-ipam` hands out its
//! addresses, both speaking the CNI protocol (spec 0.3.x, 0.4.0, 1.0.0, 1.1.0).
//!
//! Must not: touch links, routes or namespaces other than the attachment's
//! own (`cali…` host veth, CNI_IFNAME in CNI_NETNS), program routes of any
//! protocol but 80 on the host, leave anything behind when ADD fails, or
//! undo on failure anything that ADD did not itself create (an earlier
//! ADD's address, veth or endpoint may be in use by the running pod).

pub mod config;
pub mod delegate;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod identity;
pub mod install;
pub mod ipam_plugin;
pub mod lock;
pub mod multicall;
pub mod naming;
pub mod netlink;
pub mod netns;
pub mod panic;
pub mod plugin;
pub mod plugin_input;
pub mod result;
pub mod shared_store;
pub mod state;
pub mod sysctl;
pub mod version;
pub mod wiring;

pub use error::CniError;

use std::io::Read;

/// Reads stdin and the environment, runs the command, prints the result or
/// the error JSON on stdout, and returns the process exit code. A panic
/// is answered like any failure: error JSON (code 110), exit code 1.
pub fn main_entry(
    run: impl FnOnce(plugin_input::Input) -> Result<Option<serde_json::Value>, CniError>,
) -> i32 {
    let mut raw = Vec::new();
    let read = std::io::stdin().read_to_end(&mut raw);
    let version = config::peek_version(&raw).unwrap_or_else(|| "1.0.0".into());
    panic::install_hook(&version);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read.map_err(|e| CniError::io("read stdin", e))
            .and_then(|_| plugin_input::Input::from_process(raw))
            .and_then(run)
    }))
    .unwrap_or_else(|payload| Err(panic::error(payload.as_ref())));
    match outcome {
        Ok(Some(out)) => {
            println!("{out}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            println!("{}", e.to_json(&version));
            1
        }
    }
}
