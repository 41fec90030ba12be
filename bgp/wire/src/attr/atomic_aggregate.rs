//! ATOMIC_AGGREGATE (type 6, RFC 4271 §5.1.6); non-zero length → attribute discard (RFC 7606 §7.6).

use super::Raw;
use crate::error::DecodeError;

pub(crate) fn decode(raw: &Raw<'_>) -> Result<bool, DecodeError> {
    if raw.value.is_empty() {
        Ok(true)
    } else {
        Err(raw.length_error())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, decode_attrs};
    use crate::{ErrorAction, PathAttributes};

    #[test]
    fn atomic_aggregate_vector() {
        attr_both_ways(
            &[0x40, 6, 0],
            PathAttributes {
                atomic_aggregate: true,
                ..Default::default()
            },
        );
    }

    #[test]
    fn atomic_aggregate_with_a_value_is_discarded_not_fatal() {
        let (attrs, errors) = decode_attrs(&[0x40, 6, 1, 0]).unwrap();
        assert!(!attrs.atomic_aggregate);
        assert_eq!(errors[0].action, ErrorAction::AttributeDiscard);
    }
}
