//! ORIGINATOR_ID (type 9, RFC 4456 §8); wrong length → treat-as-withdraw (RFC 7606 §7.9).
//! Decoded with `next_hop::decode` (both are one IPv4 address).

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, decode_attrs};
    use crate::{ErrorAction, PathAttributes};
    use std::net::Ipv4Addr;

    #[test]
    fn originator_id_vector() {
        attr_both_ways(
            &[0x80, 9, 4, 10, 0, 0, 1],
            PathAttributes {
                originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
                ..Default::default()
            },
        );
    }

    #[test]
    fn originator_id_of_wrong_length_withdraws() {
        let (_, errors) = decode_attrs(&[0x80, 9, 3, 10, 0, 0]).unwrap();
        assert_eq!(errors[0].action, ErrorAction::TreatAsWithdraw);
    }
}
