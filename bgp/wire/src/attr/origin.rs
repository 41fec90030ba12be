//! ORIGIN (type 1, RFC 4271 §5.1.1); malformed → treat-as-withdraw (RFC 7606 §7.1).

use super::Raw;
use crate::error::DecodeError;

/// Where the route's information came from (RFC 4271 §4.3 ORIGIN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Origin {
    /// 0: interior to the originating AS.
    #[default]
    Igp,
    /// 1: learned via EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

pub(crate) fn decode(raw: &Raw<'_>) -> Result<Origin, DecodeError> {
    match raw.value {
        [0] => Ok(Origin::Igp),
        [1] => Ok(Origin::Egp),
        [2] => Ok(Origin::Incomplete),
        [_] => Err(DecodeError::InvalidOriginAttribute {
            attribute: raw.bytes.to_vec(),
        }),
        _ => Err(raw.length_error()),
    }
}

pub(crate) fn encode(origin: Origin, out: &mut Vec<u8>) {
    out.push(match origin {
        Origin::Igp => 0,
        Origin::Egp => 1,
        Origin::Incomplete => 2,
    });
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, attr_error};
    use super::*;
    use crate::PathAttributes;

    #[test]
    fn origin_vectors_both_ways() {
        for (v, o) in [(0, Origin::Igp), (1, Origin::Egp), (2, Origin::Incomplete)] {
            attr_both_ways(
                &[0x40, 1, 1, v],
                PathAttributes {
                    origin: Some(o),
                    ..Default::default()
                },
            );
        }
    }

    #[test]
    fn undefined_origin_value_is_invalid_origin() {
        let e = attr_error(&[0x40, 1, 1, 3]);
        assert!(matches!(e, DecodeError::InvalidOriginAttribute { .. }));
        let e = attr_error(&[0x40, 1, 2, 0, 0]);
        assert!(matches!(e, DecodeError::AttributeLengthError { .. }));
    }
}
