//! What `install-cni` installs, read from the environment (pure: the
//! lookup is a parameter), and the network configuration it renders.
//!
//! An empty variable counts as unset (a Kubernetes ConfigMap key holding
//! `""` is how a manifest leaves a setting off).

use std::path::{Path, PathBuf};

use serde_json::json;
use tortie_datastore::DatastoreUrl;

use crate::config::NetConf;

/// The network name in the configuration (Calico's, and the prefix of
/// `tortie-ipam`'s handles `k8s-pod-network.<container>`).
pub const NETWORK_NAME: &str = "k8s-pod-network";
/// The spec version of the written configuration (containerd ≥ 1.6 and
/// CRI-O ≥ 1.23 read it).
pub const CONF_CNI_VERSION: &str = "1.0.0";
/// Default configuration file name (Calico's is `10-calico.conflist`).
pub const DEFAULT_CONF_NAME: &str = "10-tortie.conflist";
/// Where the image holds the plugins.
pub const DEFAULT_SOURCE_DIR: &str = "/opt/cni/bin";
/// The host's plugin folder as mounted in the container.
pub const DEFAULT_BIN_DIR: &str = "/host/opt/cni/bin";
/// The host's configuration folder as mounted in the container.
pub const DEFAULT_NET_DIR: &str = "/host/etc/cni/net.d";

/// Every variable `install-cni` reads, for `--help`.
pub const ENV_HELP: &[(&str, &str)] = &[
    (
        "TORTIE_DATASTORE",
        "required: sqlite:///path or etcd://h1:2379[,h2:2379], written as the plugin's `datastore`",
    ),
    (
        "TORTIE_NODENAME",
        "the Kubernetes node name, written as `nodename` (default: the plugin uses the host name)",
    ),
    (
        "TORTIE_CNI_MTU",
        "pod MTU written as `mtu`; 0 (default) = felix's MTU file, else 1500",
    ),
    (
        "TORTIE_CNI_ASSIGN_IPV6",
        "true|false (default false): also give pods an IPv6 address",
    ),
    (
        "TORTIE_CNI_CONF_NAME",
        "configuration file name (default 10-tortie.conflist)",
    ),
    (
        "TORTIE_CNI_SOURCE_DIR",
        "where the plugins are in the image (default /opt/cni/bin)",
    ),
    (
        "TORTIE_CNI_BIN_DIR",
        "the host's plugin folder (default /host/opt/cni/bin)",
    ),
    (
        "TORTIE_CNI_NET_DIR",
        "the host's configuration folder (default /host/etc/cni/net.d)",
    ),
    (
        "TORTIE_ETCD_CA, TORTIE_ETCD_CERT, TORTIE_ETCD_KEY",
        "refused when set: the plugin has no etcd TLS settings yet",
    ),
];

/// A variable with a value `install-cni` cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?}: {reason}")]
pub struct SettingsError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong and what would be valid.
    pub reason: String,
}

fn bad(var: &'static str, value: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        var,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// What to install and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSettings {
    /// `datastore` of the plugin entry.
    pub datastore: String,
    /// `nodename` of the plugin entry.
    pub nodename: Option<String>,
    /// `mtu` of the plugin entry (0 = auto).
    pub mtu: u32,
    /// `ipam.assign_ipv6`.
    pub assign_ipv6: bool,
    /// `mtu_file` (a host path), when not the plugin's default.
    pub mtu_file: Option<PathBuf>,
    /// `state_dir` (a host path), when not the plugin's default.
    pub state_dir: Option<PathBuf>,
    /// The configuration's file name.
    pub conf_name: String,
    /// The plugins in the image.
    pub source_dir: PathBuf,
    /// The host's plugin folder.
    pub bin_dir: PathBuf,
    /// The host's configuration folder.
    pub net_dir: PathBuf,
}

impl InstallSettings {
    /// Reads and checks every variable; the first bad one is the error.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        for tls in ["TORTIE_ETCD_CA", "TORTIE_ETCD_CERT", "TORTIE_ETCD_KEY"] {
            if let Some(v) = var(tls) {
                return Err(bad(
                    tls,
                    &v,
                    "the tortie CNI plugin has no etcd TLS settings yet, so pods could not reach \
                     this etcd; use an etcd endpoint without client TLS for the plugin, or leave \
                     the variable empty",
                ));
            }
        }
        let datastore = var("TORTIE_DATASTORE").ok_or_else(|| {
            bad(
                "TORTIE_DATASTORE",
                "",
                "required: sqlite:///path or etcd://host:2379[,host:2379]",
            )
        })?;
        DatastoreUrl::parse(&datastore)
            .map_err(|e| bad("TORTIE_DATASTORE", &datastore, e.to_string()))?;
        Ok(Self {
            datastore,
            nodename: var("TORTIE_NODENAME").map(check_nodename).transpose()?,
            mtu: var("TORTIE_CNI_MTU").map_or(Ok(0), |v| parse_mtu(&v))?,
            assign_ipv6: var("TORTIE_CNI_ASSIGN_IPV6").map_or(Ok(false), |v| parse_bool(&v))?,
            mtu_file: var("TORTIE_CNI_MTU_FILE")
                .map(|v| absolute("TORTIE_CNI_MTU_FILE", &v))
                .transpose()?,
            state_dir: var("TORTIE_CNI_STATE_DIR")
                .map(|v| absolute("TORTIE_CNI_STATE_DIR", &v))
                .transpose()?,
            conf_name: var("TORTIE_CNI_CONF_NAME")
                .map_or(Ok(DEFAULT_CONF_NAME.to_string()), check_conf_name)?,
            source_dir: dir(
                var("TORTIE_CNI_SOURCE_DIR"),
                "TORTIE_CNI_SOURCE_DIR",
                DEFAULT_SOURCE_DIR,
            )?,
            bin_dir: dir(
                var("TORTIE_CNI_BIN_DIR"),
                "TORTIE_CNI_BIN_DIR",
                DEFAULT_BIN_DIR,
            )?,
            net_dir: dir(
                var("TORTIE_CNI_NET_DIR"),
                "TORTIE_CNI_NET_DIR",
                DEFAULT_NET_DIR,
            )?,
        })
    }

    /// The configuration file's path on the host mount.
    pub fn conf_path(&self) -> PathBuf {
        self.net_dir.join(&self.conf_name)
    }

    /// The `.conflist` text: the `tortie` plugin with `tortie-ipam`, then
    /// `portmap` for hostPort (as Calico chains it). The plugin entry is
    /// checked with the plugin's own parser, so a value the plugin would
    /// refuse fails here, before anything is written.
    pub fn render_conflist(&self) -> Result<String, SettingsError> {
        let mut plugin = json!({
            "type": "tortie",
            "datastore": self.datastore,
            "mtu": self.mtu,
            "ipam": {
                "type": "tortie-ipam",
                "assign_ipv4": "true",
                "assign_ipv6": if self.assign_ipv6 { "true" } else { "false" },
            },
        });
        if let Some(n) = &self.nodename {
            plugin["nodename"] = json!(n);
        }
        if let Some(f) = &self.mtu_file {
            plugin["mtu_file"] = json!(f);
        }
        if let Some(d) = &self.state_dir {
            plugin["state_dir"] = json!(d);
        }
        let mut as_runtime_passes_it = plugin.clone();
        as_runtime_passes_it["cniVersion"] = json!(CONF_CNI_VERSION);
        as_runtime_passes_it["name"] = json!(NETWORK_NAME);
        NetConf::parse(as_runtime_passes_it.to_string().as_bytes())
            .map_err(|e| bad("(network configuration)", "", e.to_string()))?;
        let conflist = json!({
            "name": NETWORK_NAME,
            "cniVersion": CONF_CNI_VERSION,
            "plugins": [
                plugin,
                {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
            ],
        });
        let mut text = serde_json::to_string_pretty(&conflist)
            .map_err(|e| bad("(network configuration)", "", e.to_string()))?;
        text.push('\n');
        Ok(text)
    }
}

fn check_nodename(v: String) -> Result<String, SettingsError> {
    if tortie_model::validate::is_dns1123_subdomain(&v) {
        Ok(v)
    } else {
        Err(bad(
            "TORTIE_NODENAME",
            &v,
            "must be a Kubernetes node name (DNS-1123 subdomain: lower case letters, digits, '-' and '.')",
        ))
    }
}

fn parse_mtu(v: &str) -> Result<u32, SettingsError> {
    match v.trim().parse::<u32>() {
        Ok(m) if m == 0 || (68..=65535).contains(&m) => Ok(m),
        _ => Err(bad(
            "TORTIE_CNI_MTU",
            v,
            "must be 0 (auto: felix's MTU file) or an MTU from 68 to 65535",
        )),
    }
}

fn parse_bool(v: &str) -> Result<bool, SettingsError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad("TORTIE_CNI_ASSIGN_IPV6", v, "must be true or false")),
    }
}

fn check_conf_name(v: String) -> Result<String, SettingsError> {
    let plain = !v.starts_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain && v.ends_with(".conflist") {
        Ok(v)
    } else {
        Err(bad(
            "TORTIE_CNI_CONF_NAME",
            &v,
            "must be a file name (letters, digits, '-', '_', '.') ending in .conflist, e.g. 10-tortie.conflist",
        ))
    }
}

fn dir(value: Option<String>, var: &'static str, default: &str) -> Result<PathBuf, SettingsError> {
    absolute(var, &value.unwrap_or_else(|| default.to_string()))
}

fn absolute(var: &'static str, v: &str) -> Result<PathBuf, SettingsError> {
    let p = Path::new(v);
    if p.is_absolute() && !p.components().any(|c| c == std::path::Component::ParentDir) {
        Ok(p.to_path_buf())
    } else {
        Err(bad(var, v, "must be an absolute path without '..'"))
    }
}

/// Configuration files in `names` (a folder listing) that a runtime would
/// pick before `ours`: runtimes use the first `.conf`/`.conflist`/`.json`
/// file in lexical order.
pub fn shadowing(ours: &str, names: &[String]) -> Vec<String> {
    let mut found: Vec<String> = names
        .iter()
        .filter(|n| {
            n.as_str() < ours
                && !n.starts_with('.')
                && [".conf", ".conflist", ".json"]
                    .iter()
                    .any(|ext| n.ends_with(ext))
        })
        .cloned()
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<InstallSettings, SettingsError> {
        InstallSettings::from_env(env(pairs))
    }

    #[test]
    fn defaults_need_only_the_datastore() {
        let s = settings(&[("TORTIE_DATASTORE", "etcd://10.0.0.1:2379")]).unwrap();
        assert_eq!(s.nodename, None);
        assert_eq!(s.mtu, 0);
        assert!(!s.assign_ipv6);
        assert_eq!(
            s.conf_path(),
            Path::new("/host/etc/cni/net.d/10-tortie.conflist")
        );
        assert_eq!(s.bin_dir, Path::new("/host/opt/cni/bin"));
        assert_eq!(s.source_dir, Path::new("/opt/cni/bin"));
        assert_eq!((&s.mtu_file, &s.state_dir), (&None, &None));
    }

    #[test]
    fn a_missing_or_empty_datastore_is_refused_by_name() {
        for pairs in [&[][..], &[("TORTIE_DATASTORE", "")][..]] {
            let e = settings(pairs).unwrap_err();
            assert_eq!(e.var, "TORTIE_DATASTORE");
            assert!(e.to_string().contains("required"), "{e}");
        }
        let e = settings(&[("TORTIE_DATASTORE", "mysql://x")]).unwrap_err();
        assert_eq!(e.var, "TORTIE_DATASTORE");
        assert!(e.to_string().contains("mysql://x"), "{e}");
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_valid() {
        let base = ("TORTIE_DATASTORE", "etcd://10.0.0.1:2379");
        let cases = [
            ("TORTIE_NODENAME", "Node_1", "DNS-1123"),
            ("TORTIE_CNI_MTU", "9", "68 to 65535"),
            ("TORTIE_CNI_MTU", "big", "68 to 65535"),
            ("TORTIE_CNI_ASSIGN_IPV6", "yes", "true or false"),
            ("TORTIE_CNI_CONF_NAME", "../x.conflist", "file name"),
            ("TORTIE_CNI_CONF_NAME", "10-tortie.conf", ".conflist"),
            ("TORTIE_CNI_BIN_DIR", "opt/cni/bin", "absolute"),
            ("TORTIE_CNI_NET_DIR", "/host/../etc", "'..'"),
            ("TORTIE_CNI_MTU_FILE", "mtu", "absolute"),
            ("TORTIE_CNI_STATE_DIR", "/var/../tmp", "'..'"),
            ("TORTIE_ETCD_CA", "/etc/tortie/secrets/etcd/ca.crt", "TLS"),
            ("TORTIE_ETCD_KEY", "/k", "TLS"),
        ];
        for (var, value, hint) in cases {
            let e = settings(&[base, (var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            let msg = e.to_string();
            assert!(msg.contains(value) && msg.contains(hint), "{msg}");
        }
    }

    #[test]
    fn empty_tls_variables_count_as_unset() {
        let s = settings(&[
            ("TORTIE_DATASTORE", "etcd://10.0.0.1:2379"),
            ("TORTIE_ETCD_CA", ""),
            ("TORTIE_ETCD_CERT", ""),
            ("TORTIE_ETCD_KEY", ""),
        ]);
        assert!(s.is_ok(), "{s:?}");
    }

    #[test]
    fn the_conflist_chains_tortie_with_tortie_ipam_and_portmap() {
        let s = settings(&[
            ("TORTIE_DATASTORE", "etcd://10.0.0.1:2379,10.0.0.2:2379"),
            ("TORTIE_NODENAME", "node-1.example"),
            ("TORTIE_CNI_MTU", "1440"),
            ("TORTIE_CNI_ASSIGN_IPV6", "true"),
        ])
        .unwrap();
        let text = s.render_conflist().unwrap();
        assert!(text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["name"], "k8s-pod-network");
        assert_eq!(v["cniVersion"], "1.0.0");
        let p = &v["plugins"][0];
        assert_eq!(p["type"], "tortie");
        assert_eq!(p["datastore"], "etcd://10.0.0.1:2379,10.0.0.2:2379");
        assert_eq!(p["nodename"], "node-1.example");
        assert_eq!(p["mtu"], 1440);
        assert_eq!(p["ipam"]["type"], "tortie-ipam");
        assert_eq!(p["ipam"]["assign_ipv6"], "true");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
        assert_eq!(v["plugins"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_plugin_entry_is_what_the_plugin_parses() {
        let s = settings(&[
            ("TORTIE_DATASTORE", "sqlite:///var/lib/tortie/tortie.db"),
            ("TORTIE_NODENAME", "n1"),
            ("TORTIE_CNI_MTU_FILE", "/run/lab/n1/mtu"),
            ("TORTIE_CNI_STATE_DIR", "/run/lab/n1/cni"),
        ])
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&s.render_conflist().unwrap()).unwrap();
        let mut entry = v["plugins"][0].clone();
        entry["cniVersion"] = v["cniVersion"].clone();
        entry["name"] = v["name"].clone();
        let conf = NetConf::parse(entry.to_string().as_bytes()).unwrap();
        assert_eq!(conf.plugin_type, "tortie");
        assert_eq!(
            conf.datastore.as_deref(),
            Some("sqlite:///var/lib/tortie/tortie.db")
        );
        assert_eq!(conf.nodename.as_deref(), Some("n1"));
        assert_eq!(conf.mtu, 0);
        assert_eq!(conf.mtu_file, Path::new("/run/lab/n1/mtu"));
        assert_eq!(conf.state_dir, Path::new("/run/lab/n1/cni"));
        let ipam = conf.ipam.unwrap();
        assert!(ipam.assign_ipv4 && !ipam.assign_ipv6);
    }

    #[test]
    fn rendering_is_stable_so_an_unchanged_input_writes_nothing() {
        let s = settings(&[("TORTIE_DATASTORE", "etcd://10.0.0.1:2379")]).unwrap();
        assert_eq!(s.render_conflist().unwrap(), s.render_conflist().unwrap());
    }

    #[test]
    fn configurations_sorting_first_are_reported() {
        let names: Vec<String> = [
            "05-cilium.conflist",
            "10-calico.conflist",
            "10-tortie.conflist",
            "87-podman.conflist",
            ".10-tortie.conflist.tmp",
            "00-notes.txt",
            "calico-kubeconfig",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            shadowing("10-tortie.conflist", &names),
            ["05-cilium.conflist", "10-calico.conflist"]
        );
        assert!(shadowing("00-tortie.conflist", &names).is_empty());
    }
}
