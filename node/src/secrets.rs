//! BGP passwords (RFC 2385 TCP-MD5 keys) from Kubernetes-style secret
//! references. `secretKeyRef {name, key}` resolves to the file
//! `<secrets dir>/<name>/<key>` — the layout a Kubernetes secret volume
//! mount gives (`--secrets-dir`, `TORTIE_SECRETS_DIR`, default
//! `/etc/tortie/secrets`) — with one trailing newline removed.
//!
//! Must not: put a password in an error, a log line or a `Debug` output.
//! Errors name the secret, the key and the file, never the content.

use std::io;
use std::path::{Path, PathBuf};

use tortie_model::{is_dns1123_subdomain, is_secret_key, BgpPassword, SecretKeyRef};

/// Linux's `TCP_MD5SIG_MAXKEYLEN`: the longest TCP-MD5 key.
pub const MAX_KEY_LEN: usize = 80;

/// Default `--secrets-dir`.
pub const DEFAULT_SECRETS_DIR: &str = "/etc/tortie/secrets";

/// Why a password could not be had. Shown per peer in `node status` and
/// logged; the session is not started (never without its password).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `password: {}`.
    #[error("the password has no secretKeyRef")]
    NoReference,
    /// A name or key that is not one path component (refused by
    /// validation; checked again here since the reference decides a path).
    #[error("password secret {name:?} key {key:?}: not a valid secret name and key")]
    BadReference {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// The file does not exist.
    #[error("password secret {name}/{key}: {path} does not exist (mount the secret there or fix the reference)")]
    Missing {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("password secret {name}/{key}: cannot read {path}: {source}")]
    Unreadable {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The key is empty or longer than TCP-MD5 allows.
    #[error(
        "password secret {name}/{key}: {path} holds {len} bytes; a TCP-MD5 password has 1 to 80"
    )]
    BadLength {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// The file.
        path: PathBuf,
        /// Its length (after the trailing newline is removed).
        len: usize,
    },
}

/// A resolved password. Its `Debug` hides the content.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// Reads `<dir>/<name>/<key>` of `pw`. `Ok(None)`: the reference is
/// `optional` and the file is missing (no password, as Kubernetes mounts
/// an optional secret that does not exist as nothing).
pub fn resolve(dir: &Path, pw: &BgpPassword) -> Result<Option<Password>, SecretError> {
    let Some(r) = &pw.secret_key_ref else {
        return Err(SecretError::NoReference);
    };
    let path = path_of(dir, r)?;
    let (name, key) = (r.name.clone(), r.key.clone());
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if r.optional == Some(true) {
                return Ok(None);
            }
            return Err(SecretError::Missing { name, key, path });
        }
        Err(source) => {
            return Err(SecretError::Unreadable {
                name,
                key,
                path,
                source,
            })
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            let source = io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text");
            return Err(SecretError::Unreadable {
                name,
                key,
                path,
                source,
            });
        }
    };
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if text.is_empty() || text.len() > MAX_KEY_LEN {
        let len = text.len();
        return Err(SecretError::BadLength {
            name,
            key,
            path,
            len,
        });
    }
    Ok(Some(Password(text.to_string())))
}

/// `<dir>/<name>/<key>`, after checking that both are single path
/// components (no `/`, no `..`).
fn path_of(dir: &Path, r: &SecretKeyRef) -> Result<PathBuf, SecretError> {
    if !is_dns1123_subdomain(&r.name) || !is_secret_key(&r.key) {
        return Err(SecretError::BadReference {
            name: r.name.clone(),
            key: r.key.clone(),
        });
    }
    Ok(dir.join(&r.name).join(&r.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(name: &str, key: &str, optional: Option<bool>) -> BgpPassword {
        BgpPassword {
            secret_key_ref: Some(SecretKeyRef {
                name: name.into(),
                key: key.into(),
                optional,
            }),
        }
    }

    fn dir_with(name: &str, key: &str, content: &[u8]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(name)).unwrap();
        std::fs::write(d.path().join(name).join(key), content).unwrap();
        d
    }

    #[test]
    fn a_secret_file_gives_its_content_without_the_trailing_newline() {
        let d = dir_with("bgp-secrets", "rr-password", b"s3cret\n");
        let p = resolve(d.path(), &pw("bgp-secrets", "rr-password", None)).unwrap();
        assert_eq!(p, Some(Password("s3cret".into())));
        let d = dir_with("bgp", "pw", b"two words ok");
        let p = resolve(d.path(), &pw("bgp", "pw", None)).unwrap();
        assert_eq!(p.unwrap().0, "two words ok");
    }

    #[test]
    fn a_missing_secret_is_an_error_unless_optional() {
        let d = tempfile::tempdir().unwrap();
        let e = resolve(d.path(), &pw("bgp", "pw", None)).unwrap_err();
        assert!(matches!(e, SecretError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("bgp/pw"), "{e}");
        assert_eq!(
            resolve(d.path(), &pw("bgp", "pw", Some(true))).unwrap(),
            None
        );
    }

    #[test]
    fn empty_and_overlong_passwords_are_errors_that_do_not_show_them() {
        let d = dir_with("bgp", "pw", b"\n");
        let e = resolve(d.path(), &pw("bgp", "pw", None)).unwrap_err();
        assert!(matches!(e, SecretError::BadLength { len: 0, .. }), "{e}");
        let long = "k".repeat(81);
        let d = dir_with("bgp", "pw", long.as_bytes());
        let e = resolve(d.path(), &pw("bgp", "pw", None)).unwrap_err();
        assert!(!e.to_string().contains(&long), "{e}");
        assert!(matches!(e, SecretError::BadLength { len: 81, .. }), "{e}");
    }

    #[test]
    fn references_that_would_leave_the_secrets_dir_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for (n, k) in [("..", "pw"), ("bgp", ".."), ("bgp", "a/b"), ("a/b", "pw")] {
            let e = resolve(d.path(), &pw(n, k, None)).unwrap_err();
            assert!(
                matches!(e, SecretError::BadReference { .. }),
                "{n} {k}: {e}"
            );
        }
        let e = resolve(d.path(), &BgpPassword::default()).unwrap_err();
        assert!(matches!(e, SecretError::NoReference));
    }

    #[test]
    fn a_password_debug_hides_it() {
        assert_eq!(format!("{:?}", Password("x".into())), "Password(<hidden>)");
    }

    #[test]
    fn an_unreadable_secret_is_an_error() {
        // A folder where the file should be cannot be read as a file.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("bgp").join("pw")).unwrap();
        let e = resolve(d.path(), &pw("bgp", "pw", None)).unwrap_err();
        assert!(matches!(e, SecretError::Unreadable { .. }), "{e}");
    }
}
