//! CLUSTER_LIST (type 10, RFC 4456 §8); length not a non-zero multiple of 4 →
//! treat-as-withdraw (RFC 7606 §7.10).

use std::net::Ipv4Addr;

use super::Raw;
use crate::error::DecodeError;

pub(crate) fn decode(raw: &Raw<'_>) -> Result<Vec<Ipv4Addr>, DecodeError> {
    if raw.value.is_empty() || raw.value.len() % 4 != 0 {
        return Err(raw.length_error());
    }
    Ok(raw
        .value
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, decode_attrs};
    use super::*;
    use crate::{ErrorAction, PathAttributes};

    #[test]
    fn cluster_list_vector() {
        attr_both_ways(
            &[0x80, 10, 8, 10, 0, 0, 1, 10, 0, 0, 2],
            PathAttributes {
                cluster_list: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
                ..Default::default()
            },
        );
    }

    #[test]
    fn empty_or_ragged_cluster_list_withdraws() {
        for bytes in [&[0x80u8, 10, 0][..], &[0x80, 10, 3, 1, 2, 3]] {
            let (_, errors) = decode_attrs(bytes).unwrap();
            assert_eq!(errors[0].action, ErrorAction::TreatAsWithdraw);
        }
    }
}
