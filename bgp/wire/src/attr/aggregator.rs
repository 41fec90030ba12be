//! AGGREGATOR (type 7, RFC 4271 §5.1.7) with a 2- or 4-octet AS (RFC 6793 §3);
//! wrong length → attribute discard (RFC 7606 §7.7).

use std::net::Ipv4Addr;

use super::Raw;
use crate::error::DecodeError;

/// The AS and router that formed an aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The aggregating AS (4 octets wide here).
    pub asn: u32,
    /// The aggregating speaker's BGP identifier / address.
    pub address: Ipv4Addr,
}

/// Decodes an AGGREGATOR (or AS4_AGGREGATOR with `as_size` 4).
pub(crate) fn decode(raw: &Raw<'_>, as_size: usize) -> Result<Aggregator, DecodeError> {
    if raw.value.len() != as_size + 4 {
        return Err(raw.length_error());
    }
    let (asn, addr) = raw.value.split_at(as_size);
    let asn = asn.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let addr: [u8; 4] = addr.try_into().map_err(|_| raw.length_error())?;
    Ok(Aggregator {
        asn,
        address: Ipv4Addr::from(addr),
    })
}

/// Appends an AGGREGATOR value with `as_size` octets of AS (AS_TRANS substituted by the caller).
pub(crate) fn encode(agg: &Aggregator, as_size: usize, out: &mut Vec<u8>) {
    if as_size == 2 {
        out.extend_from_slice(&(agg.asn.min(0xffff) as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&agg.asn.to_be_bytes());
    }
    out.extend_from_slice(&agg.address.octets());
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, attr_both_ways_ctx, decode_attrs};
    use super::*;
    use crate::{DecodeContext, ErrorAction, PathAttributes};

    fn with(agg: Aggregator) -> PathAttributes {
        PathAttributes {
            aggregator: Some(agg),
            ..Default::default()
        }
    }

    #[test]
    fn four_octet_aggregator_vector() {
        attr_both_ways(
            &[0xc0, 7, 8, 0, 1, 0, 0, 192, 0, 2, 1],
            with(Aggregator {
                asn: 65536,
                address: Ipv4Addr::new(192, 0, 2, 1),
            }),
        );
    }

    #[test]
    fn two_octet_aggregator_vector() {
        attr_both_ways_ctx(
            &[0xc0, 7, 6, 0xfd, 0xe8, 192, 0, 2, 1],
            with(Aggregator {
                asn: 65000,
                address: Ipv4Addr::new(192, 0, 2, 1),
            }),
            &DecodeContext::default(),
        );
    }

    #[test]
    fn aggregator_of_wrong_length_is_discarded() {
        let (attrs, errors) = decode_attrs(&[0xc0, 7, 6, 0xfd, 0xe8, 192, 0, 2, 1]).unwrap();
        assert_eq!(attrs.aggregator, None);
        assert_eq!(errors[0].action, ErrorAction::AttributeDiscard);
    }
}
