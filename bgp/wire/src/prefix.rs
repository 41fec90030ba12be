//! IP prefixes and NLRI entries (RFC 4271 §4.3, RFC 4760 §5, RFC 7911 §3).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a prefix could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The length exceeds the address size (32 or 128).
    #[error("prefix length {len} is longer than {max}")]
    LengthTooLong {
        /// The length given.
        len: u8,
        /// The longest valid length for the address family.
        max: u8,
    },
    /// The text is not `ADDRESS/LENGTH`.
    #[error("{text:?} is not ADDRESS/LENGTH, e.g. 10.244.1.0/26")]
    Syntax {
        /// The text given.
        text: String,
    },
}

/// An IPv4 or IPv6 prefix whose host bits are zero.
///
/// Small and `Copy` so that NLRI decode into a flat `Vec` without per-prefix allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix of `len` bits; host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = max_len(&addr);
        if len > max {
            return Err(PrefixError::LengthTooLong { len, max });
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(len))),
        };
        Ok(Prefix { addr, len })
    }

    /// An IPv4 prefix from its bits; host bits are cleared. `len` must be ≤ 32.
    #[inline(always)]
    pub(crate) fn v4_masked(bits: u32, len: u8) -> Self {
        Prefix {
            addr: IpAddr::V4(Ipv4Addr::from(bits & mask32(len))),
            len,
        }
    }

    /// An IPv6 prefix from its bits; host bits are cleared. `len` must be ≤ 128.
    pub(crate) fn v6_masked(bits: u128, len: u8) -> Self {
        Prefix {
            addr: IpAddr::V6(Ipv6Addr::from(bits & mask128(len))),
            len,
        }
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for the default route (`/0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True for an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Octets the prefix takes on the wire after its length octet (RFC 4271 §4.3).
    pub fn wire_octets(&self) -> usize {
        usize::from(self.len).div_ceil(8)
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

#[inline(always)]
fn mask32(len: u8) -> u32 {
    // Shifting a u64 keeps `len == 0` branch-free (a u32 shift by 32 would overflow).
    (u64::from(u32::MAX) << (32 - u32::from(len.min(32)))) as u32
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PrefixError::Syntax {
            text: s.to_string(),
        };
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let len: u8 = len.parse().map_err(|_| syntax())?;
        Prefix::new(addr, len)
    }
}

impl From<Prefix> for ipnet::IpNet {
    fn from(p: Prefix) -> Self {
        // The length was validated when the prefix was built.
        ipnet::IpNet::new(p.addr, p.len).unwrap_or_else(|_| ipnet::IpNet::from(p.addr))
    }
}

impl From<ipnet::IpNet> for Prefix {
    fn from(net: ipnet::IpNet) -> Self {
        match net {
            ipnet::IpNet::V4(n) => Prefix::v4_masked(n.addr().into(), n.prefix_len()),
            ipnet::IpNet::V6(n) => Prefix::v6_masked(n.addr().into(), n.prefix_len()),
        }
    }
}

/// A prefix serializes as its text (`10.244.1.0/26`), the form `FromStr` reads.
#[cfg(feature = "serde")]
impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One NLRI entry: a prefix and, when ADD-PATH (RFC 7911) is in use for its
/// family and direction, the path identifier that precedes it on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    /// RFC 7911 path identifier; `Some` exactly when ADD-PATH applies.
    pub path_id: Option<u32>,
    /// The prefix.
    pub prefix: Prefix,
}

impl Nlri {
    /// An entry without a path identifier.
    pub fn new(prefix: Prefix) -> Self {
        Nlri {
            path_id: None,
            prefix,
        }
    }

    /// An entry with an RFC 7911 path identifier.
    pub fn with_path_id(prefix: Prefix, path_id: u32) -> Self {
        Nlri {
            path_id: Some(path_id),
            prefix,
        }
    }
}

impl From<Prefix> for Nlri {
    fn from(prefix: Prefix) -> Self {
        Nlri::new(prefix)
    }
}

impl fmt::Display for Nlri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path_id {
            Some(id) => write!(f, "{} path-id {id}", self.prefix),
            None => write!(f, "{}", self.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_cleared_on_construction() {
        let p: Prefix = "10.244.1.77/26".parse().unwrap();
        assert_eq!(p.to_string(), "10.244.1.64/26");
        let p: Prefix = "2001:db8::1/32".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
    }

    #[test]
    fn lengths_beyond_the_address_size_are_refused() {
        assert_eq!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
        assert!(Prefix::new("::".parse().unwrap(), 129).is_err());
        assert!(matches!(
            "10.0.0.0".parse::<Prefix>(),
            Err(PrefixError::Syntax { .. })
        ));
    }

    #[test]
    fn default_routes_take_no_address_octets() {
        let p: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(p.is_empty());
        assert_eq!(p.wire_octets(), 0);
        assert_eq!("10.0.0.0/25".parse::<Prefix>().unwrap().wire_octets(), 4);
    }

    #[test]
    fn converts_to_and_from_ipnet() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        let n: ipnet::IpNet = p.into();
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert_eq!(Prefix::from(n), p);
    }
}
