//! The agent's log filter: `--log-level` (`RUST_LOG`) for everything, and
//! BGPConfiguration `logSeverityScreen` for the BGP speaker's crates (as it
//! sets BIRD's log level in Calico), changed at run time without a restart.
//! A `--log-level` that names a `tortie_bgp_*` target itself wins.

use tortie_model::LogSeverity;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The crates whose level `logSeverityScreen` sets.
const BGP_TARGETS: [&str; 4] = [
    "tortie_bgp_speaker",
    "tortie_bgp_session",
    "tortie_bgp_rib",
    "tortie_bgp_wire",
];

/// The `tracing` level of a Calico severity (`Fatal` is `error`).
pub fn level(sev: LogSeverity) -> &'static str {
    match sev {
        LogSeverity::Trace => "trace",
        LogSeverity::Debug => "debug",
        LogSeverity::Info => "info",
        LogSeverity::Warning => "warn",
        LogSeverity::Error | LogSeverity::Fatal => "error",
    }
}

/// The filter directives: `base`, then the BGP crates at `bgp` unless
/// `base` names one of them.
pub fn directives(base: &str, bgp: Option<LogSeverity>) -> String {
    match bgp {
        Some(sev) if !base.contains("tortie_bgp") => {
            let l = level(sev);
            let mut d = base.to_string();
            for t in BGP_TARGETS {
                d.push_str(&format!(",{t}={l}"));
            }
            d
        }
        _ => base.to_string(),
    }
}

/// Builds the filter; an invalid `base` falls back to `info`.
pub fn filter(base: &str, bgp: Option<LogSeverity>) -> EnvFilter {
    EnvFilter::try_new(directives(base, bgp)).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Changes the BGP crates' level of the running subscriber.
#[derive(Clone)]
pub struct LogControl {
    base: String,
    handle: reload::Handle<EnvFilter, Registry>,
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogControl")
            .field("base", &self.base)
            .finish()
    }
}

impl LogControl {
    /// Wraps the reload handle of the subscriber's filter built from `base`.
    pub fn new(base: &str, handle: reload::Handle<EnvFilter, Registry>) -> Self {
        Self {
            base: base.to_string(),
            handle,
        }
    }

    /// Sets the BGP crates' level to `sev`.
    pub fn set_bgp(&self, sev: LogSeverity) {
        if let Err(e) = self.handle.reload(filter(&self.base, Some(sev))) {
            tracing::warn!(error = %e, "cannot change the BGP log level");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bgp_crates_get_the_severity_after_the_base_level() {
        assert_eq!(
            directives("info", Some(LogSeverity::Debug)),
            "info,tortie_bgp_speaker=debug,tortie_bgp_session=debug,tortie_bgp_rib=debug,tortie_bgp_wire=debug"
        );
        assert!(directives("debug", Some(LogSeverity::Fatal)).ends_with("tortie_bgp_wire=error"));
        assert!(directives("info", Some(LogSeverity::Warning)).contains("tortie_bgp_rib=warn"));
        assert_eq!(directives("info", None), "info");
    }

    #[test]
    fn a_log_level_naming_a_bgp_crate_wins() {
        let base = "info,tortie_bgp_speaker=trace";
        assert_eq!(directives(base, Some(LogSeverity::Error)), base);
    }

    #[test]
    fn the_directives_parse_as_a_filter() {
        assert!(EnvFilter::try_new(directives("warn", Some(LogSeverity::Debug))).is_ok());
    }
}
