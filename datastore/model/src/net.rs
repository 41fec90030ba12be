//! Address types with Calico's text forms: a node address with its prefix
//! length (`10.0.1.5/24`, bare `10.0.1.5` read as /32) and a BGP peer
//! address with an optional port (`10.0.0.1:180`, `[fd00::1]:180`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses `addr/len` keeping the host bits, or a bare address as a host
/// prefix (Calico's `ParseCIDROrIP`).
pub fn parse_cidr_or_ip(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Serde for `Option<IpNet>` fields that also accept a bare address.
pub(crate) mod opt_cidr_or_ip {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(net) => s.collect_str(net),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        if text.is_empty() {
            return Ok(None);
        }
        parse_cidr_or_ip(&text).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "`{text}` is not an address: use an address with prefix length such as 10.0.1.5/24 or fd00::5/64"
            ))
        })
    }
}

/// Serde for CIDR lists (`nets`) that also accept bare addresses (as
/// Calico's `net` validator); the value is kept as written, host bits
/// included, for the validator to report.
pub(crate) mod cidr_list {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| {
                parse_cidr_or_ip(t).ok_or_else(|| {
                    serde::de::Error::custom(format_args!(
                        "`{t}` is not a CIDR: use an address or a prefix such as 10.0.0.0/8 or fd00::/64"
                    ))
                })
            })
            .collect()
    }
}

/// The address of a BGP peer, optionally with the port to connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerIp {
    /// The peer's address.
    pub ip: IpAddr,
    /// The port, when given (`<IPv4>:<port>` or `[<IPv6>]:<port>`).
    pub port: Option<u16>,
}

/// Why a string is not a peer address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a peer address: use <IPv4>, <IPv4>:<port>, <IPv6> or [<IPv6>]:<port>")]
pub struct PeerIpError(pub String);

impl FromStr for PeerIp {
    type Err = PeerIpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(PeerIp { ip, port: None });
        }
        match s.parse::<SocketAddr>() {
            Ok(sa) if sa.port() != 0 => Ok(PeerIp {
                ip: sa.ip(),
                port: Some(sa.port()),
            }),
            _ => Err(PeerIpError(s.to_owned())),
        }
    }
}

impl fmt::Display for PeerIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (ip, None) => write!(f, "{ip}"),
            (IpAddr::V4(ip), Some(p)) => write!(f, "{ip}:{p}"),
            (IpAddr::V6(ip), Some(p)) => write!(f, "[{ip}]:{p}"),
        }
    }
}

impl Serialize for PeerIp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerIp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ip_with_and_without_port() {
        let p: PeerIp = "10.0.0.1".parse().unwrap();
        assert_eq!((p.ip.to_string(), p.port), ("10.0.0.1".into(), None));
        let p: PeerIp = "10.0.0.1:17900".parse().unwrap();
        assert_eq!(p.port, Some(17900));
        assert_eq!(p.to_string(), "10.0.0.1:17900");
        let p: PeerIp = "[fd00::1]:180".parse().unwrap();
        assert_eq!(p.to_string(), "[fd00::1]:180");
        let p: PeerIp = "fd00::1".parse().unwrap();
        assert_eq!(p.port, None);
    }

    #[test]
    fn bad_peer_ips_are_rejected() {
        for bad in [
            "",
            "10.0.0.1:",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "host:179",
            "fd00::1:x",
        ] {
            assert!(bad.parse::<PeerIp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bare_address_reads_as_host_prefix() {
        assert_eq!(
            parse_cidr_or_ip("10.0.1.5").unwrap().to_string(),
            "10.0.1.5/32"
        );
        assert_eq!(
            parse_cidr_or_ip("10.0.1.5/24").unwrap().to_string(),
            "10.0.1.5/24"
        );
        assert!(parse_cidr_or_ip("10.0.1.5/33").is_none());
    }
}
