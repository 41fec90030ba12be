//! LARGE_COMMUNITY (type 32, RFC 8092); length not a non-zero multiple of 12 →
//! treat-as-withdraw (RFC 8092 §5).

use std::fmt;

use super::Raw;
use crate::error::DecodeError;

/// An RFC 8092 large community `global:local1:local2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (an ASN).
    pub global_admin: u32,
    /// First local data part.
    pub local_data1: u32,
    /// Second local data part.
    pub local_data2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

pub(crate) fn decode(raw: &Raw<'_>) -> Result<Vec<LargeCommunity>, DecodeError> {
    if raw.value.is_empty() || raw.value.len() % 12 != 0 {
        return Err(raw.length_error());
    }
    let word = |c: &[u8], i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
    Ok(raw
        .value
        .chunks_exact(12)
        .map(|c| LargeCommunity {
            global_admin: word(c, 0),
            local_data1: word(c, 4),
            local_data2: word(c, 8),
        })
        .collect())
}

pub(crate) fn encode(list: &[LargeCommunity], out: &mut Vec<u8>) {
    for c in list {
        out.extend_from_slice(&c.global_admin.to_be_bytes());
        out.extend_from_slice(&c.local_data1.to_be_bytes());
        out.extend_from_slice(&c.local_data2.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, decode_attrs};
    use super::*;
    use crate::{ErrorAction, PathAttributes};

    #[test]
    fn large_community_vector() {
        let c = LargeCommunity {
            global_admin: 4_200_000_000,
            local_data1: 1,
            local_data2: 2,
        };
        assert_eq!(c.to_string(), "4200000000:1:2");
        attr_both_ways(
            &[0xc0, 32, 12, 0xfa, 0x56, 0xea, 0, 0, 0, 0, 1, 0, 0, 0, 2],
            PathAttributes {
                large_communities: vec![c],
                ..Default::default()
            },
        );
    }

    #[test]
    fn ragged_large_communities_withdraw() {
        let (_, errors) = decode_attrs(&[0xc0, 32, 8, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(errors[0].action, ErrorAction::TreatAsWithdraw);
    }
}
