//! NEXT_HOP (type 3, RFC 4271 §5.1.3); wrong length → treat-as-withdraw (RFC 7606 §7.3).

use std::net::Ipv4Addr;

use super::Raw;
use crate::error::DecodeError;

pub(crate) fn decode(raw: &Raw<'_>) -> Result<Ipv4Addr, DecodeError> {
    let octets: [u8; 4] = raw.value.try_into().map_err(|_| raw.length_error())?;
    Ok(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, attr_error};
    use super::*;
    use crate::PathAttributes;

    #[test]
    fn next_hop_vector() {
        attr_both_ways(
            &[0x40, 3, 4, 10, 0, 1, 5],
            PathAttributes {
                next_hop: Some(Ipv4Addr::new(10, 0, 1, 5)),
                ..Default::default()
            },
        );
    }

    #[test]
    fn next_hop_of_five_octets_is_a_length_error() {
        assert!(matches!(
            attr_error(&[0x40, 3, 5, 10, 0, 1, 5, 0]),
            DecodeError::AttributeLengthError { .. }
        ));
    }
}
