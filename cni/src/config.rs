//! The network configuration the runtime writes on stdin: parsing and
//! validation with errors that name the field, the value and what is valid.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::CniError;
use crate::version::CniVersion;

/// Where felix writes the MTU it detected (Calico's path).
pub const DEFAULT_MTU_FILE: &str = "/var/lib/calico/mtu";
/// The MTU used when neither the config nor the MTU file gives one (Calico's rule).
pub const DEFAULT_MTU: u32 = 1500;
/// Where the plugin keeps per-attachment state and its lock.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tortie/cni";
/// How long an ADD/DEL waits for the host IPAM lock before answering code 11.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(20);

/// A validated network configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// `cniVersion`.
    pub cni_version: CniVersion,
    /// `name`.
    pub name: String,
    /// `type` (the plugin's binary name).
    pub plugin_type: String,
    /// `datastore` URL (`sqlite:///...`, `etcd://...`); absent = no WorkloadEndpoint.
    pub datastore: Option<String>,
    /// `nodename`; absent = the host name.
    pub nodename: Option<String>,
    /// `mtu`; 0 = auto (MTU file, else 1500).
    pub mtu: u32,
    /// `mtu_file`: felix's detected MTU (default [`DEFAULT_MTU_FILE`]).
    pub mtu_file: PathBuf,
    /// `state_dir`: per-attachment result cache and the IPAM lock file.
    pub state_dir: PathBuf,
    /// `ipam_lock_timeout_seconds`.
    pub lock_timeout: Duration,
    /// `ipam`.
    pub ipam: Option<IpamConf>,
    /// `prevResult` as given (chained plugins, CHECK, DEL).
    pub prev_result: Option<serde_json::Value>,
    /// `runtimeConfig` as given.
    pub runtime_config: Option<serde_json::Value>,
    /// Pod labels from `args.cni.labels` (CNI conventions), for the WorkloadEndpoint.
    pub labels: BTreeMap<String, String>,
    /// `cni.dev/valid-attachments` (GC, 1.1.0); `None` when the key is absent.
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// One attachment the runtime still holds (GC input).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// Its container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its interface name.
    pub ifname: String,
}

/// The `ipam` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConf {
    /// `type`: the IPAM plugin to exec from CNI_PATH (`tortie-ipam`, `host-local`, ...).
    pub ipam_type: String,
    /// `assign_ipv4` (default true).
    pub assign_ipv4: bool,
    /// `assign_ipv6` (default false).
    pub assign_ipv6: bool,
    /// `ipv4_pools`: IPv4 IPPool CIDRs to allocate from (empty: any usable pool).
    pub ipv4_pools: Vec<IpNet>,
    /// `ipv6_pools`: IPv6 IPPool CIDRs to allocate from (empty: any usable pool).
    pub ipv6_pools: Vec<IpNet>,
}

#[derive(Deserialize)]
struct RawConf {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    plugin_type: String,
    datastore: Option<String>,
    nodename: Option<String>,
    mtu: Option<serde_json::Value>,
    mtu_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    ipam_lock_timeout_seconds: Option<f64>,
    ipam: Option<RawIpam>,
    #[serde(rename = "prevResult")]
    prev_result: Option<serde_json::Value>,
    #[serde(rename = "runtimeConfig")]
    runtime_config: Option<serde_json::Value>,
    args: Option<serde_json::Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

#[derive(Deserialize)]
struct RawIpam {
    #[serde(rename = "type", default)]
    ipam_type: String,
    assign_ipv4: Option<serde_json::Value>,
    assign_ipv6: Option<serde_json::Value>,
    #[serde(default)]
    ipv4_pools: Vec<serde_json::Value>,
    #[serde(default)]
    ipv6_pools: Vec<serde_json::Value>,
}

/// Reads only `cniVersion` (for error JSON and VERSION, before full validation).
pub fn peek_version(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct V {
        #[serde(rename = "cniVersion")]
        v: Option<String>,
    }
    serde_json::from_slice::<V>(bytes).ok().and_then(|v| v.v)
}

impl NetConf {
    /// Parses and validates stdin. Malformed JSON is code 6; well-formed JSON
    /// with a bad field is code 7; an unsupported `cniVersion` is code 1.
    pub fn parse(bytes: &[u8]) -> Result<Self, CniError> {
        let raw: RawConf = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                CniError::config("(network configuration)", e.to_string())
            } else {
                CniError::Decode {
                    what: "network configuration",
                    source: e,
                }
            }
        })?;
        let cni_version = CniVersion::parse(&raw.cni_version)?;
        validate_name(&raw.name)?;
        if raw.plugin_type.is_empty() {
            return Err(CniError::config("type", "missing (e.g. \"tortie\")"));
        }
        let ipam = raw.ipam.map(IpamConf::from_raw).transpose()?;
        let lock_timeout = match raw.ipam_lock_timeout_seconds {
            None => DEFAULT_LOCK_TIMEOUT,
            Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(CniError::config(
                    "ipam_lock_timeout_seconds",
                    format!("{s} is not a non-negative number of seconds"),
                ))
            }
        };
        Ok(Self {
            cni_version,
            name: raw.name,
            plugin_type: raw.plugin_type,
            datastore: raw.datastore.filter(|d| !d.is_empty()),
            nodename: raw.nodename.filter(|n| !n.is_empty()),
            mtu: parse_mtu(raw.mtu)?,
            mtu_file: raw.mtu_file.unwrap_or_else(|| DEFAULT_MTU_FILE.into()),
            state_dir: raw.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            lock_timeout,
            ipam,
            prev_result: raw.prev_result,
            runtime_config: raw.runtime_config,
            labels: labels_from_args(raw.args.as_ref()),
            valid_attachments: raw.valid_attachments,
        })
    }

    /// The MTU for both veth ends: the config's if > 0, else the MTU file's, else 1500.
    pub fn effective_mtu(&self) -> u32 {
        if self.mtu > 0 {
            return self.mtu;
        }
        std::fs::read_to_string(&self.mtu_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|m| *m >= 68)
            .unwrap_or(DEFAULT_MTU)
    }

    /// GC's `cni.dev/valid-attachments`: required, since without it every
    /// attachment of the node would count as gone.
    pub fn require_valid_attachments(&self) -> Result<&[Attachment], CniError> {
        self.valid_attachments.as_deref().ok_or_else(|| {
            CniError::config(
                "cni.dev/valid-attachments",
                "missing; GC needs the list of attachments to keep (an empty list releases all)",
            )
        })
    }

    /// True when GC's list holds container `container_id` (with `ifname`, if given).
    pub fn is_valid_attachment(&self, container_id: &str, ifname: Option<&str>) -> bool {
        self.valid_attachments
            .iter()
            .flatten()
            .any(|a| a.container_id == container_id && ifname.is_none_or(|i| i == a.ifname))
    }

    /// The `ipam` section, required by ADD/DEL/CHECK.
    pub fn require_ipam(&self) -> Result<&IpamConf, CniError> {
        self.ipam
            .as_ref()
            .ok_or_else(|| CniError::config("ipam", "missing (e.g. {\"type\": \"tortie-ipam\"})"))
    }
}

impl IpamConf {
    fn from_raw(raw: RawIpam) -> Result<Self, CniError> {
        crate::delegate::check_plugin_name(&raw.ipam_type)?;
        let ipam = Self {
            ipam_type: raw.ipam_type,
            assign_ipv4: parse_bool("ipam.assign_ipv4", raw.assign_ipv4, true)?,
            assign_ipv6: parse_bool("ipam.assign_ipv6", raw.assign_ipv6, false)?,
            ipv4_pools: parse_pools("ipam.ipv4_pools", &raw.ipv4_pools, true)?,
            ipv6_pools: parse_pools("ipam.ipv6_pools", &raw.ipv6_pools, false)?,
        };
        if !ipam.assign_ipv4 && !ipam.assign_ipv6 {
            return Err(CniError::config(
                "ipam",
                "assign_ipv4 and assign_ipv6 are both false; at least one must be true",
            ));
        }
        Ok(ipam)
    }
}

/// `ipv4_pools`/`ipv6_pools`: IPPool CIDRs of the field's family, each
/// written as the pool's network address (pool names are not supported).
fn parse_pools(
    field: &str,
    values: &[serde_json::Value],
    v4: bool,
) -> Result<Vec<IpNet>, CniError> {
    let family = if v4 { "IPv4" } else { "IPv6" };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("{field}[{i}]");
            let text = v.as_str().ok_or_else(|| {
                CniError::config(&at, format!("{v} is not a string (valid: an {family} CIDR)"))
            })?;
            let net: IpNet = text.parse().map_err(|_| {
                CniError::config(
                    &at,
                    format!("{text:?} is not a CIDR (pool names are not supported; give the {family} pool's CIDR)"),
                )
            })?;
            if net.addr().is_ipv4() != v4 {
                return Err(CniError::config(
                    &at,
                    format!("{text} is not an {family} CIDR"),
                ));
            }
            if net.trunc() != net {
                return Err(CniError::config(
                    &at,
                    format!("{text} is not a network address (the pool is {})", net.trunc()),
                ));
            }
            Ok(net)
        })
        .collect()
}

/// Calico writes `"assign_ipv4": "true"`; accept that and real booleans.
fn parse_bool(
    field: &'static str,
    v: Option<serde_json::Value>,
    default: bool,
) -> Result<bool, CniError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(serde_json::Value::Bool(b)) => Ok(b),
        Some(serde_json::Value::String(s)) if s == "true" => Ok(true),
        Some(serde_json::Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(CniError::config(
            field,
            format!("{other} is not a boolean (valid: true, false, \"true\", \"false\")"),
        )),
    }
}

fn parse_mtu(v: Option<serde_json::Value>) -> Result<u32, CniError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(0),
            Some(m) if (68..=65535).contains(&m) => Ok(m as u32),
            _ => Err(CniError::config(
                "mtu",
                format!("{n} is out of range (valid: 0 = auto, or 68..65535)"),
            )),
        },
        Some(other) => Err(CniError::config(
            "mtu",
            format!("{other} is not a number (valid: 0 = auto, or 68..65535)"),
        )),
    }
}

/// SPEC: a network name is alphanumeric plus `_`, `.` and `-`, starting alphanumeric.
fn validate_name(name: &str) -> Result<(), CniError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::config(
            "name",
            format!("{name:?} is empty or has characters other than [A-Za-z0-9_.-]"),
        ))
    }
}

/// CNI conventions: `"args": {"cni": {"labels": [{"key": "app", "value": "web"}]}}`.
fn labels_from_args(args: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    let Some(list) = args
        .and_then(|a| a.get("cni"))
        .and_then(|c| c.get("labels"))
        .and_then(|l| l.as_array())
    else {
        return BTreeMap::new();
    };
    list.iter()
        .filter_map(|kv| {
            Some((
                kv.get("key")?.as_str()?.to_string(),
                kv.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
        "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "tortie",
        "datastore": "sqlite:///tmp/x.db", "nodename": "node1", "mtu": 0,
        "mtu_file": "/nonexistent/mtu",
        "ipam": {"type": "tortie-ipam", "assign_ipv4": "true", "assign_ipv6": false,
                 "ipv4_pools": ["10.244.0.0/16"]},
        "runtimeConfig": {"portMappings": []},
        "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}},
        "somethingElse": 1
    }"#;

    #[test]
    fn a_calico_style_config_is_read_with_all_keys() {
        let c = NetConf::parse(FULL.as_bytes()).unwrap();
        assert_eq!(c.cni_version, CniVersion::V1_0_0);
        assert_eq!(c.plugin_type, "tortie");
        assert_eq!(c.datastore.as_deref(), Some("sqlite:///tmp/x.db"));
        assert_eq!(c.nodename.as_deref(), Some("node1"));
        let ipam = c.ipam.as_ref().unwrap();
        assert_eq!(ipam.ipam_type, "tortie-ipam");
        assert!(ipam.assign_ipv4 && !ipam.assign_ipv6);
        assert_eq!(
            ipam.ipv4_pools,
            vec!["10.244.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert_eq!(c.labels.get("app").map(String::as_str), Some("web"));
        assert!(c.runtime_config.is_some());
    }

    #[test]
    fn mtu_zero_means_the_mtu_file_or_1500() {
        let c = NetConf::parse(FULL.as_bytes()).unwrap();
        assert_eq!(c.effective_mtu(), 1500);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mtu");
        std::fs::write(&f, "1440\n").unwrap();
        let c = NetConf { mtu_file: f, ..c };
        assert_eq!(c.effective_mtu(), 1440);
        let c = NetConf { mtu: 9000, ..c };
        assert_eq!(c.effective_mtu(), 9000);
    }

    #[test]
    fn malformed_json_is_a_decode_error() {
        assert_eq!(NetConf::parse(b"{\"cniVersion\": ").unwrap_err().code(), 6);
    }

    #[test]
    fn a_missing_type_is_an_invalid_config_naming_the_field() {
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n"}"#).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("type"), "{e}");
    }

    #[test]
    fn a_wrong_type_for_a_field_is_an_invalid_config() {
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"tortie","mtu":"big"}"#)
            .unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("mtu"), "{e}");
    }

    #[test]
    fn an_unsupported_version_is_incompatible() {
        let e =
            NetConf::parse(br#"{"cniVersion":"0.2.0","name":"n","type":"tortie"}"#).unwrap_err();
        assert_eq!(e.code(), 1);
    }

    #[test]
    fn bad_network_names_and_ipam_flags_are_rejected() {
        let e =
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"a b","type":"tortie"}"#).unwrap_err();
        assert!(e.to_string().contains("name"), "{e}");
        let e = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"tortie","ipam":{"type":"x","assign_ipv4":"yes"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("assign_ipv4"), "{e}");
    }

    fn ipam_error(ipam: &str) -> String {
        let conf = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"tortie","ipam":{ipam}}}"#);
        let e = NetConf::parse(conf.as_bytes()).unwrap_err();
        assert_eq!(e.code(), 7, "{e}");
        e.to_string()
    }

    #[test]
    fn dual_stack_pools_are_read_and_checked_per_family() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"tortie","ipam":{"type":"tortie-ipam",
                "assign_ipv4":"true","assign_ipv6":"true",
                "ipv4_pools":["10.78.0.0/16"],"ipv6_pools":["fd00:78::/48"]}}"#,
        )
        .unwrap();
        let ipam = c.ipam.unwrap();
        assert!(ipam.assign_ipv4 && ipam.assign_ipv6);
        assert_eq!(
            ipam.ipv6_pools,
            vec!["fd00:78::/48".parse::<IpNet>().unwrap()]
        );

        let e = ipam_error(r#"{"type":"tortie-ipam","ipv6_pools":["10.78.0.0/16"]}"#);
        assert!(
            e.contains("ipam.ipv6_pools[0]") && e.contains("IPv6"),
            "{e}"
        );
        let e = ipam_error(r#"{"type":"tortie-ipam","ipv4_pools":["10.78.0.0/16","fd00::/48"]}"#);
        assert!(e.contains("ipam.ipv4_pools[1]"), "{e}");
        let e = ipam_error(r#"{"type":"tortie-ipam","ipv6_pools":["default-ipv6-ippool"]}"#);
        assert!(
            e.contains("ipam.ipv6_pools[0]") && e.contains("not a CIDR"),
            "{e}"
        );
        let e = ipam_error(r#"{"type":"tortie-ipam","ipv6_pools":["fd00:78::1/48"]}"#);
        assert!(e.contains("fd00:78::/48"), "{e}");
        let e = ipam_error(r#"{"type":"tortie-ipam","ipv6_pools":[6]}"#);
        assert!(e.contains("ipam.ipv6_pools[0]"), "{e}");
    }

    #[test]
    fn valid_attachments_are_read_for_gc() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"tortie",
                "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(c.require_valid_attachments().unwrap()[0].container_id, "c1");
        assert!(c.is_valid_attachment("c1", Some("eth0")));
        assert!(c.is_valid_attachment("c1", None));
        assert!(!c.is_valid_attachment("c1", Some("net1")));
        assert!(!c.is_valid_attachment("c2", None));
        let e = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","type":"tortie"}"#)
            .unwrap()
            .require_valid_attachments()
            .unwrap_err();
        assert!(e.to_string().contains("cni.dev/valid-attachments"), "{e}");
    }

    #[test]
    fn peek_version_reads_only_the_version() {
        assert_eq!(
            peek_version(br#"{"cniVersion":"0.4.0","x":1}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(peek_version(b"garbage"), None);
    }
}
