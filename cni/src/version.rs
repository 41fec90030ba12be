//! CNI spec versions: which ones the plugins speak, what each allows, and
//! the VERSION command's answer.

use crate::error::CniError;

/// The spec versions both plugins accept in `cniVersion`, oldest first.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A spec version this plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    /// 0.3.0 (results carry `ips[].version`).
    V0_3_0,
    /// 0.3.1.
    V0_3_1,
    /// 0.4.0: adds CHECK and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: `ips[].version` dropped.
    V1_0_0,
    /// 1.1.0: adds STATUS and GC.
    V1_1_0,
}

impl CniVersion {
    /// Parses a `cniVersion`; an absent or unknown one is incompatible (code 1).
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "0.3.0" => Self::V0_3_0,
            "0.3.1" => Self::V0_3_1,
            "0.4.0" => Self::V0_4_0,
            "1.0.0" => Self::V1_0_0,
            "1.1.0" => Self::V1_1_0,
            other => {
                return Err(CniError::IncompatibleVersion {
                    requested: if other.is_empty() {
                        // SPEC: a missing cniVersion means 0.1.0.
                        "0.1.0".into()
                    } else {
                        other.into()
                    },
                    supported: SUPPORTED,
                });
            }
        })
    }

    /// The version as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// CHECK exists from 0.4.0 on.
    pub fn allows_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn allows_status_and_gc(self) -> bool {
        self >= Self::V1_1_0
    }

    /// Results before 1.0.0 tag each IP with `"version": "4"|"6"`.
    pub fn ips_carry_version(self) -> bool {
        self < Self::V1_0_0
    }

    /// Results from 1.1.0 may carry `interfaces[].mtu`.
    pub fn interfaces_carry_mtu(self) -> bool {
        self >= Self::V1_1_0
    }
}

/// The VERSION command's output: the newest version and all supported ones.
pub fn version_info() -> serde_json::Value {
    serde_json::json!({
        "cniVersion": SUPPORTED[SUPPORTED.len() - 1],
        "supportedVersions": SUPPORTED,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_parses_and_prints_back() {
        for v in SUPPORTED {
            assert_eq!(CniVersion::parse(v).unwrap().as_str(), *v);
        }
    }

    #[test]
    fn unknown_and_missing_versions_are_incompatible() {
        assert_eq!(CniVersion::parse("0.2.0").unwrap_err().code(), 1);
        let e = CniVersion::parse("").unwrap_err();
        assert!(e.to_string().contains("0.1.0"), "{e}");
    }

    #[test]
    fn check_needs_0_4_0_and_status_needs_1_1_0() {
        assert!(!CniVersion::V0_3_1.allows_check());
        assert!(CniVersion::V0_4_0.allows_check());
        assert!(!CniVersion::V1_0_0.allows_status_and_gc());
        assert!(CniVersion::V1_1_0.allows_status_and_gc());
    }

    #[test]
    fn version_output_lists_all_supported_versions() {
        let v = version_info();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(
            v["supportedVersions"].as_array().unwrap().len(),
            SUPPORTED.len()
        );
    }
}
