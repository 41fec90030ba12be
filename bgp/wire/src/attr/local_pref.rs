//! LOCAL_PREF (type 5, RFC 4271 §5.1.5); wrong length → treat-as-withdraw (RFC 7606 §7.5).
//! Decoded with `med::decode_u32`; ignoring it from external peers is the session's job.

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, attr_error};
    use crate::{DecodeError, PathAttributes};

    #[test]
    fn local_pref_vector() {
        attr_both_ways(
            &[0x40, 5, 4, 0, 0, 0, 100],
            PathAttributes {
                local_pref: Some(100),
                ..Default::default()
            },
        );
    }

    #[test]
    fn local_pref_of_three_octets_is_a_length_error() {
        assert!(matches!(
            attr_error(&[0x40, 5, 3, 0, 0, 100]),
            DecodeError::AttributeLengthError { .. }
        ));
    }
}
