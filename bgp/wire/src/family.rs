//! Address families: AFI (IANA address family numbers) and SAFI (RFC 4760).

use std::fmt;

/// Address Family Identifier (RFC 4760 §3, IANA "Address Family Numbers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    /// IPv4 (AFI 1).
    Ipv4,
    /// IPv6 (AFI 2).
    Ipv6,
    /// Any other AFI, kept as received.
    Other(u16),
}

impl Afi {
    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
            Afi::Other(c) => c,
        }
    }
}

impl From<u16> for Afi {
    fn from(code: u16) -> Self {
        match code {
            1 => Afi::Ipv4,
            2 => Afi::Ipv6,
            c => Afi::Other(c),
        }
    }
}

/// Subsequent Address Family Identifier (RFC 4760 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Safi {
    /// Unicast forwarding (SAFI 1).
    Unicast,
    /// Multicast forwarding (SAFI 2).
    Multicast,
    /// Any other SAFI, kept as received.
    Other(u8),
}

impl Safi {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            Safi::Unicast => 1,
            Safi::Multicast => 2,
            Safi::Other(c) => c,
        }
    }
}

impl From<u8> for Safi {
    fn from(code: u8) -> Self {
        match code {
            1 => Safi::Unicast,
            2 => Safi::Multicast,
            c => Safi::Other(c),
        }
    }
}

/// An (AFI, SAFI) pair: what a capability, an MP attribute or a route refresh is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
}

impl Family {
    /// IPv4 unicast (1/1).
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::Ipv4,
        safi: Safi::Unicast,
    };
    /// IPv6 unicast (2/1).
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
    };

    /// Builds a family from wire values.
    pub fn new(afi: u16, safi: u8) -> Self {
        Family {
            afi: afi.into(),
            safi: safi.into(),
        }
    }

    /// True for the families whose NLRI this codec decodes into [`crate::Prefix`]es
    /// (IPv4/IPv6 unicast and multicast).
    pub fn is_ip(self) -> bool {
        matches!(self.afi, Afi::Ipv4 | Afi::Ipv6)
            && matches!(self.safi, Safi::Unicast | Safi::Multicast)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let afi = match self.afi {
            Afi::Ipv4 => "ipv4".to_string(),
            Afi::Ipv6 => "ipv6".to_string(),
            Afi::Other(c) => format!("afi{c}"),
        };
        let safi = match self.safi {
            Safi::Unicast => "unicast".to_string(),
            Safi::Multicast => "multicast".to_string(),
            Safi::Other(c) => format!("safi{c}"),
        };
        write!(f, "{afi}-{safi}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_round_trip_including_unknown_values() {
        for afi in [0u16, 1, 2, 25, 65535] {
            assert_eq!(Afi::from(afi).code(), afi);
        }
        for safi in [0u8, 1, 2, 4, 128, 255] {
            assert_eq!(Safi::from(safi).code(), safi);
        }
    }

    #[test]
    fn families_display_like_operators_write_them() {
        assert_eq!(Family::IPV4_UNICAST.to_string(), "ipv4-unicast");
        assert_eq!(Family::new(2, 128).to_string(), "ipv6-safi128");
    }
}
