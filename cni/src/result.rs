//! The ADD result (interfaces, ips, routes, dns) and its JSON shape per spec
//! version: before 1.0.0 each IP carries `"version"`, from 1.1.0 interfaces
//! may carry `mtu`. Results of any supported version decode to one model.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::CniError;
use crate::version::CniVersion;

/// A result, independent of spec version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces the plugin created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes set up in the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings (passed through from IPAM).
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// An interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The namespace path for sandbox interfaces; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Its MTU (emitted from 1.1.0 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// An assigned address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `"4"`/`"6"` (results before 1.0.0 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The address with prefix length.
    pub address: IpNet,
    /// The gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop, if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Decodes a result of any supported version (an IPAM plugin's output, a prevResult).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, CniError> {
        let mut r: Self = serde_json::from_value(v.clone()).map_err(|e| CniError::Decode {
            what: "CNI result",
            source: e,
        })?;
        for ip in &mut r.ips {
            ip.version = None;
        }
        for i in &mut r.interfaces {
            i.mtu = None;
        }
        Ok(r)
    }

    /// Encodes the result in the shape of `version`.
    pub fn to_json(&self, version: CniVersion) -> serde_json::Value {
        let mut r = self.clone();
        for ip in &mut r.ips {
            ip.version = version.ips_carry_version().then(|| {
                match ip.address {
                    IpNet::V4(_) => "4",
                    IpNet::V6(_) => "6",
                }
                .to_string()
            });
        }
        if !version.interfaces_carry_mtu() {
            for i in &mut r.interfaces {
                i.mtu = None;
            }
        }
        let mut v = serde_json::to_value(&r).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(o) = v.as_object_mut() {
            o.insert("cniVersion".into(), version.as_str().into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cali0123456789a".into(),
                    mac: "ee:ee:ee:ee:ee:ee".into(),
                    sandbox: None,
                    mtu: Some(1500),
                },
                Interface {
                    name: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    sandbox: Some("/var/run/netns/p".into()),
                    mtu: Some(1500),
                },
            ],
            ips: vec![IpConfig {
                version: None,
                address: "10.244.0.5/32".parse().unwrap(),
                gateway: None,
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn results_before_1_0_0_tag_ips_with_their_version() {
        let j = sample().to_json(CniVersion::V0_3_1);
        assert_eq!(j["cniVersion"], "0.3.1");
        assert_eq!(j["ips"][0]["version"], "4");
        assert_eq!(j["ips"][0]["address"], "10.244.0.5/32");
        assert_eq!(j["ips"][0]["interface"], 1);
        assert!(j["interfaces"][0].get("mtu").is_none());
    }

    #[test]
    fn results_from_1_0_0_have_no_ip_version() {
        let j = sample().to_json(CniVersion::V1_0_0);
        assert!(j["ips"][0].get("version").is_none());
        assert_eq!(j["interfaces"][1]["sandbox"], "/var/run/netns/p");
        assert!(j.get("dns").is_none());
    }

    #[test]
    fn interfaces_carry_mtu_from_1_1_0() {
        let j = sample().to_json(CniVersion::V1_1_0);
        assert_eq!(j["interfaces"][0]["mtu"], 1500);
    }

    #[test]
    fn a_result_of_any_version_decodes_to_the_same_model() {
        let mut expected = sample();
        for i in &mut expected.interfaces {
            i.mtu = None;
        }
        for v in [CniVersion::V0_3_0, CniVersion::V0_4_0, CniVersion::V1_1_0] {
            assert_eq!(
                CniResult::from_json(&sample().to_json(v)).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn host_local_output_decodes() {
        let j = serde_json::json!({"cniVersion":"0.4.0","ips":[{"version":"4",
            "address":"10.22.0.2/16","gateway":"10.22.0.1"}],"dns":{}});
        let r = CniResult::from_json(&j).unwrap();
        assert_eq!(r.ips[0].gateway, Some("10.22.0.1".parse().unwrap()));
    }
}
