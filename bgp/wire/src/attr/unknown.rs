//! Attributes this codec does not interpret (RFC 4271 §5, §9): optional transitive
//! ones are kept and passed on with the Partial bit set; optional non-transitive ones
//! are quietly ignored; unrecognized well-known ones are an UPDATE error.

/// An attribute kept as received (optional transitive, unrecognized).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Attribute flags; the decoder sets Partial (RFC 4271 §5) since we do not recognize it.
    pub flags: u8,
    /// Attribute type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::super::flags;
    use super::super::tests::{attr_reset, decode_attrs, encode_attrs};
    use super::*;
    use crate::{DecodeContext, DecodeError};

    #[test]
    fn unknown_optional_transitive_is_kept_and_marked_partial() {
        let (attrs, errors) = decode_attrs(&[0xc0, 99, 2, 7, 8]).unwrap();
        assert!(errors.is_empty());
        let raw = RawAttribute {
            flags: flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL,
            type_code: 99,
            value: vec![7, 8],
        };
        assert_eq!(attrs.unknown, vec![raw]);
        let out = encode_attrs(&attrs, &DecodeContext::four_octet());
        assert_eq!(out, [0xe0, 99, 2, 7, 8]);
    }

    #[test]
    fn unknown_optional_non_transitive_is_ignored() {
        let (attrs, errors) = decode_attrs(&[0x80, 99, 1, 0]).unwrap();
        assert!(attrs.unknown.is_empty() && errors.is_empty());
    }

    #[test]
    fn unknown_well_known_attribute_resets_the_session() {
        let e = attr_reset(&[0x40, 99, 1, 5]);
        assert_eq!(
            e,
            DecodeError::UnrecognizedWellKnownAttribute {
                attribute: vec![0x40, 99, 1, 5]
            }
        );
    }
}
