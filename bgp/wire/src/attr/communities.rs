//! COMMUNITIES (type 8, RFC 1997); length not a non-zero multiple of 4 →
//! treat-as-withdraw (RFC 7606 §7.8).

use std::fmt;

use super::Raw;
use crate::error::DecodeError;

/// An RFC 1997 community: `asn:value` packed in 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997).
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);

    /// `asn:value`.
    pub fn new(asn: u16, value: u16) -> Self {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

pub(crate) fn decode(raw: &Raw<'_>) -> Result<Vec<Community>, DecodeError> {
    if raw.value.is_empty() || raw.value.len() % 4 != 0 {
        return Err(raw.length_error());
    }
    Ok(raw
        .value
        .chunks_exact(4)
        .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, decode_attrs};
    use super::*;
    use crate::{ErrorAction, PathAttributes};

    #[test]
    fn communities_vector() {
        attr_both_ways(
            &[0xc0, 8, 8, 0xfd, 0xe8, 0, 100, 0xff, 0xff, 0xff, 0x01],
            PathAttributes {
                communities: vec![Community::new(65000, 100), Community::NO_EXPORT],
                ..Default::default()
            },
        );
        assert_eq!(Community::new(65000, 100).to_string(), "65000:100");
    }

    #[test]
    fn ragged_communities_withdraw() {
        let (_, errors) = decode_attrs(&[0xc0, 8, 3, 0, 0, 0]).unwrap();
        assert_eq!(errors[0].action, ErrorAction::TreatAsWithdraw);
    }
}
