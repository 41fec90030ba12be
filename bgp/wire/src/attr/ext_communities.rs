//! EXTENDED_COMMUNITIES (type 16, RFC 4360); length not a non-zero multiple of 8 →
//! treat-as-withdraw (RFC 7606 §7.14).

use super::Raw;
use crate::error::DecodeError;

/// An RFC 4360 extended community, kept as its 8 octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    /// The type high octet (RFC 4360 §2).
    pub fn type_high(&self) -> u8 {
        self.0[0]
    }

    /// The sub-type octet (for the regular types).
    pub fn sub_type(&self) -> u8 {
        self.0[1]
    }

    /// True when the IANA-authority bit says the community is not transitive (RFC 4360 §2).
    pub fn is_non_transitive(&self) -> bool {
        self.0[0] & 0x40 != 0
    }

    /// A 2-octet-AS route target (type 0x00, sub-type 0x02, RFC 4360 §4).
    pub fn route_target(asn: u16, value: u32) -> Self {
        let mut b = [0u8; 8];
        b[1] = 0x02;
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..8].copy_from_slice(&value.to_be_bytes());
        ExtendedCommunity(b)
    }
}

pub(crate) fn decode(raw: &Raw<'_>) -> Result<Vec<ExtendedCommunity>, DecodeError> {
    if raw.value.is_empty() || raw.value.len() % 8 != 0 {
        return Err(raw.length_error());
    }
    Ok(raw
        .value
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            ExtendedCommunity(b)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, decode_attrs};
    use super::*;
    use crate::{ErrorAction, PathAttributes};

    #[test]
    fn extended_communities_vector() {
        let rt = ExtendedCommunity::route_target(65000, 7);
        assert_eq!(
            (rt.type_high(), rt.sub_type(), rt.is_non_transitive()),
            (0, 2, false)
        );
        attr_both_ways(
            &[0xc0, 16, 8, 0, 2, 0xfd, 0xe8, 0, 0, 0, 7],
            PathAttributes {
                extended_communities: vec![rt],
                ..Default::default()
            },
        );
    }

    #[test]
    fn ragged_extended_communities_withdraw() {
        let (_, errors) = decode_attrs(&[0xc0, 16, 4, 0, 0, 0, 0]).unwrap();
        assert_eq!(errors[0].action, ErrorAction::TreatAsWithdraw);
    }
}
