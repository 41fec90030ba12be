//! Every way the plugins fail, and the one place that maps a failure to a
//! CNI error code and the spec's error JSON (`{cniVersion, code, msg, details}`).

use serde::Serialize;

/// A failure of the `tortie` or `tortie-ipam` plugin.
///
/// [`CniError::code`] maps each variant to the code the CNI spec assigns
/// (1–11 well-known, 50/51 from STATUS, 100+ plugin specific).
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The configuration asks for a spec version this plugin does not speak.
    #[error("incompatible CNI versions: config is {requested:?}, plugin supports {supported:?}")]
    IncompatibleVersion {
        /// The `cniVersion` of the configuration.
        requested: String,
        /// What the plugin supports.
        supported: &'static [&'static str],
    },
    /// The command is not part of the configuration's spec version (e.g. CHECK under 0.3.1).
    #[error("config version {version} does not allow {command}")]
    CommandNotAllowed {
        /// The command (`CHECK`, `STATUS`, `GC`).
        command: &'static str,
        /// The configuration's `cniVersion`.
        version: String,
    },
    /// A configuration field has a value the plugin does not implement.
    #[error("unsupported field {field}: {value} (supported: {valid})")]
    UnsupportedField {
        /// The field's path.
        field: &'static str,
        /// The value given.
        value: String,
        /// What would be supported.
        valid: &'static str,
    },
    /// A required environment variable is missing or invalid.
    #[error("invalid environment: {var}: {reason}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading stdin, a file or a namespace failed.
    #[error("I/O error: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration or a delegated result is not valid JSON.
    #[error("failed to decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The network configuration is well-formed JSON but not a valid configuration.
    #[error("invalid network configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field's path.
        field: String,
        /// The value and what would be valid.
        reason: String,
    },
    /// A shared resource (the host IPAM lock) stayed busy; the runtime should retry.
    #[error("try again later: {0}")]
    TryAgainLater(String),
    /// The delegated IPAM plugin failed; its own code and message are passed on.
    #[error("IPAM plugin {plugin} failed: {msg}")]
    Delegate {
        /// The IPAM plugin's `type`.
        plugin: String,
        /// The code it returned (its own numbering).
        code: u32,
        /// Its message.
        msg: String,
        /// Its details.
        details: String,
    },
    /// A netlink request failed.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// What was requested (e.g. `create veth cali1234 / eth0`).
        op: String,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// Entering the pod's network namespace failed.
    #[error("cannot enter network namespace {path}: {reason}")]
    Netns {
        /// The namespace path (CNI_NETNS).
        path: String,
        /// The reason.
        reason: String,
    },
    /// CHECK found the pod's networking different from what ADD left.
    #[error("check failed: {0}")]
    CheckFailed(String),
    /// IP address management failed (no address, no pool, store conflict).
    #[error("IPAM: {0}")]
    Ipam(String),
    /// Reading or writing the datastore failed.
    #[error("datastore: {0}")]
    Datastore(String),
    /// The plugin panicked (a bug): answered with error JSON all the same.
    #[error("internal error (plugin panicked): {0}")]
    Panic(String),
    /// A fault injected by `TORTIE_CNI_FAIL_AFTER` (debug builds, tests only).
    #[error("injected failure after step {0} (TORTIE_CNI_FAIL_AFTER)")]
    Injected(String),
    /// The plugin is not ready to serve ADDs (STATUS, spec 1.1.0).
    #[error("plugin not available: {0}")]
    NotAvailable(String),
}

/// CNI error code 1: incompatible CNI version.
pub const CODE_INCOMPATIBLE_VERSION: u32 = 1;
/// CNI error code 4: invalid necessary environment variables.
pub const CODE_INVALID_ENV: u32 = 4;
/// CNI error code 6: failed to decode content.
pub const CODE_DECODE: u32 = 6;
/// CNI error code 7: invalid network config.
pub const CODE_INVALID_CONFIG: u32 = 7;
/// CNI error code 11: try again later.
pub const CODE_TRY_AGAIN_LATER: u32 = 11;

impl CniError {
    /// The CNI error code (SPEC.md "Error" section; 100+ are tortie's own).
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion { .. } | Self::CommandNotAllowed { .. } => {
                CODE_INCOMPATIBLE_VERSION
            }
            Self::UnsupportedField { .. } => 2,
            Self::InvalidEnv { .. } => CODE_INVALID_ENV,
            Self::Io { .. } => 5,
            Self::Decode { .. } => CODE_DECODE,
            Self::InvalidConfig { .. } => CODE_INVALID_CONFIG,
            Self::TryAgainLater(_) => CODE_TRY_AGAIN_LATER,
            Self::NotAvailable(_) => 50,
            Self::Delegate { code, .. } => *code,
            Self::Netlink { .. } => 100,
            Self::Netns { .. } => 101,
            Self::CheckFailed(_) => 102,
            Self::Ipam(_) => 103,
            Self::Datastore(_) => 104,
            Self::Panic(_) => 110,
            Self::Injected(_) => 199,
        }
    }

    /// The short `msg` of the error JSON.
    pub fn msg(&self) -> String {
        match self {
            Self::IncompatibleVersion { .. } => "incompatible CNI versions".into(),
            Self::Delegate { msg, .. } => msg.clone(),
            other => other.to_string(),
        }
    }

    /// The `details` of the error JSON (may be empty).
    pub fn details(&self) -> String {
        match self {
            Self::IncompatibleVersion {
                requested,
                supported,
            } => format!("config is {requested:?}, plugin supports {supported:?}"),
            Self::Delegate {
                plugin, details, ..
            } => {
                if details.is_empty() {
                    format!("from IPAM plugin {plugin}")
                } else {
                    format!("{details} (from IPAM plugin {plugin})")
                }
            }
            Self::Io { source, .. } => source.to_string(),
            Self::Netlink { source, .. } => source.to_string(),
            _ => String::new(),
        }
    }

    /// The error as the spec's JSON object, tagged with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let body = ErrorJson {
            cni_version,
            code: self.code(),
            msg: self.msg(),
            details: self.details(),
        };
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a netlink failure with the request that failed.
    pub fn netlink(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Netlink {
            op: op.into(),
            source,
        }
    }

    /// An invalid configuration field.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_carries_version_code_msg_and_details() {
        let e = CniError::IncompatibleVersion {
            requested: "0.2.0".into(),
            supported: crate::version::SUPPORTED,
        };
        let j = e.to_json("0.2.0");
        assert_eq!(j["cniVersion"], "0.2.0");
        assert_eq!(j["code"], 1);
        assert_eq!(j["msg"], "incompatible CNI versions");
        assert!(j["details"].as_str().unwrap().contains("1.0.0"), "{j}");
    }

    #[test]
    fn well_known_failures_map_to_the_spec_codes() {
        assert_eq!(CniError::TryAgainLater("lock".into()).code(), 11);
        assert_eq!(CniError::config("type", "missing").code(), 7);
        let env = CniError::InvalidEnv {
            var: "CNI_NETNS",
            reason: "missing".into(),
        };
        assert_eq!(env.code(), 4);
        assert!(CniError::Injected("veth".into()).code() >= 100);
    }

    #[test]
    fn delegated_errors_keep_the_ipam_plugins_code() {
        let e = CniError::Delegate {
            plugin: "host-local".into(),
            code: 11,
            msg: "busy".into(),
            details: String::new(),
        };
        let j = e.to_json("1.0.0");
        assert_eq!(j["code"], 11);
        assert_eq!(j["msg"], "busy");
    }
}
