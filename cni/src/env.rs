//! The runtime's half of the protocol: `CNI_*` environment variables and
//! the `CNI_ARGS` key=value list.

use std::path::PathBuf;

use crate::error::CniError;

/// The operation the runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it (must succeed when it is already gone).
    Del,
    /// Verify the attachment is still as ADD left it.
    Check,
    /// Report the supported spec versions.
    Version,
    /// Report whether the plugin can serve ADDs (1.1.0).
    Status,
    /// Release resources of attachments the runtime no longer knows (1.1.0).
    Gc,
}

impl Command {
    /// Parses `CNI_COMMAND`.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "VERSION" => Self::Version,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            other => {
                return Err(CniError::InvalidEnv {
                    var: "CNI_COMMAND",
                    reason: format!(
                        "unknown command {other:?} (valid: ADD, DEL, CHECK, VERSION, STATUS, GC)"
                    ),
                })
            }
        })
    }

    /// The command's name as the runtime spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Version => "VERSION",
            Self::Status => "STATUS",
            Self::Gc => "GC",
        }
    }
}

/// Kubernetes pod identity from `CNI_ARGS` (unknown keys are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub pod_name: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub infra_container_id: Option<String>,
}

impl CniArgs {
    /// The Kubernetes pod `(namespace, name)`: only when both are given, as
    /// Calico decides (podman passes `K8S_POD_NAME` alone).
    pub fn k8s_pod(&self) -> Option<(&str, &str)> {
        Some((self.pod_namespace.as_deref()?, self.pod_name.as_deref()?))
    }

    /// Parses `KEY=VALUE;KEY=VALUE`; a pair without `=` is invalid (code 4).
    pub fn parse(s: &str) -> Result<Self, CniError> {
        let mut args = Self::default();
        for pair in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| CniError::InvalidEnv {
                var: "CNI_ARGS",
                reason: format!("pair {pair:?} is not KEY=VALUE"),
            })?;
            let v = (!v.is_empty()).then(|| v.to_string());
            match k {
                "K8S_POD_NAMESPACE" => args.pod_namespace = v,
                "K8S_POD_NAME" => args.pod_name = v,
                "K8S_POD_INFRA_CONTAINER_ID" => args.infra_container_id = v,
                _ => {} // IgnoreUnknown: other keys belong to other plugins.
            }
        }
        Ok(args)
    }
}

/// Everything the runtime passed through the environment.
#[derive(Debug, Clone)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` (may be empty on DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_PATH` split on `:`.
    pub path: Vec<PathBuf>,
    /// `CNI_ARGS`.
    pub args: CniArgs,
}

impl CniEnv {
    /// Reads the variables through `get` (normally `std::env::var`), checking
    /// that the ones `command` needs are present and valid.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let command = Command::parse(&var("CNI_COMMAND").ok_or(CniError::InvalidEnv {
            var: "CNI_COMMAND",
            reason: "missing".into(),
        })?)?;
        let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let needs_netns = matches!(command, Command::Add | Command::Check);
        let missing = |name: &'static str| CniError::InvalidEnv {
            var: name,
            reason: format!("missing (required for {})", command.as_str()),
        };
        let container_id = var("CNI_CONTAINERID").unwrap_or_default();
        let ifname = var("CNI_IFNAME").unwrap_or_default();
        let netns = var("CNI_NETNS").map(PathBuf::from);
        if needs_attachment {
            if container_id.is_empty() {
                return Err(missing("CNI_CONTAINERID"));
            }
            validate_container_id(&container_id)?;
            if ifname.is_empty() {
                return Err(missing("CNI_IFNAME"));
            }
            validate_ifname(&ifname)?;
        }
        if needs_netns && netns.is_none() {
            return Err(missing("CNI_NETNS"));
        }
        let path = var("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        if command != Command::Version && var("CNI_PATH").is_none() {
            return Err(missing("CNI_PATH"));
        }
        let args = CniArgs::parse(&var("CNI_ARGS").unwrap_or_default())?;
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            path,
            args,
        })
    }
}

/// SPEC: a container ID is alphanumeric plus `_`, `.` and `-`, starting alphanumeric.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::InvalidEnv {
            var: "CNI_CONTAINERID",
            reason: format!("{id:?} has characters other than [A-Za-z0-9_.-]"),
        })
    }
}

/// A Linux interface name: 1–15 bytes, no `/`, `:` or whitespace, not `.`/`..`.
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(CniError::InvalidEnv {
            var: "CNI_IFNAME",
            reason: format!(
                "{name:?} is not a valid interface name (1-15 chars, no '/', ':' or spaces)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_vars(|k| m.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123"),
    ];

    #[test]
    fn add_environment_is_read_with_pod_identity() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.path.len(), 2);
        assert_eq!(e.args.pod_namespace.as_deref(), Some("default"));
        assert_eq!(e.args.pod_name.as_deref(), Some("web-0"));
        assert_eq!(e.args.infra_container_id.as_deref(), Some("abc123"));
    }

    #[test]
    fn add_without_netns_is_an_invalid_environment() {
        let pairs: Vec<_> = ADD
            .iter()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .cloned()
            .collect();
        let e = env(&pairs).unwrap_err();
        assert_eq!(e.code(), 4);
        assert!(e.to_string().contains("CNI_NETNS"), "{e}");
    }

    #[test]
    fn del_without_netns_is_fine() {
        let mut pairs: Vec<_> = ADD
            .iter()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .cloned()
            .collect();
        pairs[0] = ("CNI_COMMAND", "DEL");
        assert!(env(&pairs).unwrap().netns.is_none());
    }

    #[test]
    fn version_needs_nothing_but_the_command() {
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
    }

    #[test]
    fn unknown_command_is_an_invalid_environment() {
        assert_eq!(env(&[("CNI_COMMAND", "FROB")]).unwrap_err().code(), 4);
    }

    #[test]
    fn unknown_cni_args_keys_are_ignored_but_malformed_pairs_rejected() {
        let a = CniArgs::parse("FOO=bar;K8S_POD_NAME=p").unwrap();
        assert_eq!(a.pod_name.as_deref(), Some("p"));
        assert_eq!(CniArgs::parse("FOO").unwrap_err().code(), 4);
    }

    #[test]
    fn bad_container_ids_and_interface_names_are_rejected() {
        let mut pairs = ADD.to_vec();
        pairs[1] = ("CNI_CONTAINERID", "../etc");
        assert_eq!(env(&pairs).unwrap_err().code(), 4);
        let mut pairs = ADD.to_vec();
        pairs[3] = ("CNI_IFNAME", "a-name-that-is-too-long");
        assert_eq!(env(&pairs).unwrap_err().code(), 4);
    }
}
