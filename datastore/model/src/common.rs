//! Small value types several kinds share: log severities, BGP passwords,
//! CIDR blocks.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A log level as Calico spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogSeverity {
    /// Most verbose (felix only).
    Trace,
    /// Debug.
    Debug,
    /// Info (the default).
    Info,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Fatal.
    Fatal,
}

/// A BGP TCP-MD5 password (RFC 2385), given by reference to a Kubernetes
/// secret as in Calico.
///
/// tortie resolves `secretKeyRef {name, key}` without Kubernetes: the node
/// reads the file `<secrets dir>/<name>/<key>` (default secrets dir
/// `/etc/tortie/secrets`, the layout a Kubernetes secret volume mount
/// produces), taking its content with one trailing newline removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPassword {
    /// The secret holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// A reference to one key of a secret (Kubernetes `SecretKeySelector`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the secret.
    #[serde(default)]
    pub name: String,
    /// Key within the secret.
    pub key: String,
    /// Whether a missing secret or key is tolerated (no password then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A `{cidr: ...}` entry of a CIDR list (service IP ranges).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrBlock {
    /// The range.
    pub cidr: IpNet,
}
