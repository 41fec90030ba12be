//! MP_UNREACH_NLRI (type 15, RFC 4760 §4); also the End-of-RIB marker for
//! families other than IPv4 unicast (RFC 4724 §2). Errors as MP_REACH (RFC 7606 §7.11).

use super::mp_reach::{family, MpFault};
use super::Raw;
use crate::family::Family;
use crate::nlri::{self, PathIds};
use crate::prefix::Nlri;
use crate::DecodeContext;

/// MP_UNREACH_NLRI: withdrawn routes of one family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family.
    pub family: Family,
    /// Withdrawn routes (empty for End-of-RIB).
    pub withdrawn: Vec<Nlri>,
}

pub(crate) fn decode(raw: &Raw<'_>, ctx: &DecodeContext) -> Result<MpUnreach, MpFault> {
    let (family, rest) = family(raw)?;
    let mut withdrawn = Vec::new();
    nlri::decode(rest, family.afi, PathIds::of(ctx, family), &mut withdrawn)
        .map_err(|_| MpFault::Disable(family, raw.optional_error()))?;
    Ok(MpUnreach { family, withdrawn })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, decode_attrs};
    use super::*;
    use crate::{ErrorAction, PathAttributes};

    #[test]
    fn ipv6_withdrawal_vector() {
        attr_both_ways(
            &[0x80, 15, 8, 0, 2, 1, 32, 0x20, 0x01, 0x0d, 0xb8],
            PathAttributes {
                mp_unreach: Some(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: vec![Nlri::new("2001:db8::/32".parse().unwrap())],
                }),
                ..Default::default()
            },
        );
    }

    #[test]
    fn truncated_withdrawal_disables_the_family() {
        let (_, errors) = decode_attrs(&[0x80, 15, 5, 0, 2, 1, 64, 0x20]).unwrap();
        assert_eq!(errors[0].action, ErrorAction::AfiSafiDisable);
    }
}
