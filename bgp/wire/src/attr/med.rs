//! MULTI_EXIT_DISC (type 4, RFC 4271 §5.1.4); wrong length → treat-as-withdraw (RFC 7606 §7.4).

use super::Raw;
use crate::error::DecodeError;

pub(crate) fn decode_u32(raw: &Raw<'_>) -> Result<u32, DecodeError> {
    let octets: [u8; 4] = raw.value.try_into().map_err(|_| raw.length_error())?;
    Ok(u32::from_be_bytes(octets))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, attr_error};
    use crate::{DecodeError, PathAttributes};

    #[test]
    fn med_vector() {
        attr_both_ways(
            &[0x80, 4, 4, 0, 0, 1, 0],
            PathAttributes {
                med: Some(256),
                ..Default::default()
            },
        );
    }

    #[test]
    fn med_of_two_octets_is_a_length_error() {
        assert!(matches!(
            attr_error(&[0x80, 4, 2, 0, 1]),
            DecodeError::AttributeLengthError { .. }
        ));
    }
}
