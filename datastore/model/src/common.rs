//! Small value types several kinds share: log severities, BGP passwords,
//! CIDR blocks.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Checker, Reason};
use crate::validate;

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

/// True if `key` is a Kubernetes secret data key: 1 to 253 of
/// alphanumerics, `-`, `_` and `.`, and not `.` or `..` (so that it is one
/// path component under the secret's folder).
pub fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl BgpPassword {
    /// Checks the reference (`field` is e.g. `spec.password`): a secret
    /// name that is a DNS-1123 subdomain and a key that is a secret data
    /// key, so that `<secrets dir>/<name>/<key>` stays inside the secrets
    /// folder.
    pub(crate) fn check(&self, c: &mut Checker, field: &str) {
        let Some(r) = &self.secret_key_ref else {
            c.reject(&format!("{field}.secretKeyRef"), "", Reason::Required);
            return;
        };
        if !validate::is_dns1123_subdomain(&r.name) {
            let f = format!("{field}.secretKeyRef.name");
            c.reject(&f, &r.name, Reason::NotDns1123Subdomain);
        }
        if !is_secret_key(&r.key) {
            let f = format!("{field}.secretKeyRef.key");
            let reason = Reason::Invalid(
                "must be a secret key: 1 to 253 alphanumerics, '-', '_' or '.', not '.' or '..'"
                    .into(),
            );
            c.reject(&f, &r.key, reason);
        }
    }
}

/// A `{cidr: ...}` entry of a CIDR list (service IP ranges).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrBlock {
    /// The range.
    pub cidr: IpNet,
}
