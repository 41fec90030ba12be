//! MP_REACH_NLRI (type 14, RFC 4760 §3) for IPv4/IPv6 unicast and multicast,
//! with IPv6 global + link-local next hops (RFC 2545 §3) and IPv6 next hops for
//! IPv4 NLRI (RFC 8950 §3). Errors → AFI/SAFI disable, or session reset when the
//! family cannot be read (RFC 7606 §7.11). Encoded first in the UPDATE (RFC 7606 §5.1)
//! and always with the Extended Length bit (as BIRD and FRR do).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Raw;
use crate::error::DecodeError;
use crate::family::{Afi, Family};
use crate::nlri::{self, PathIds};
use crate::prefix::Nlri;
use crate::DecodeContext;

/// A next hop carried in MP_REACH_NLRI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// An IPv4 next hop (4 octets).
    V4(Ipv4Addr),
    /// An IPv6 next hop: global (16 octets), plus link-local when 32 octets (RFC 2545 §3).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, when the peer shares a link.
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    /// Octets on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            NextHop::V4(_) => 4,
            NextHop::V6 {
                link_local: None, ..
            } => 16,
            NextHop::V6 { .. } => 32,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            NextHop::V4(a) => out.extend_from_slice(&a.octets()),
            NextHop::V6 { global, link_local } => {
                out.extend_from_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.extend_from_slice(&ll.octets());
                }
            }
        }
    }
}

/// MP_REACH_NLRI: reachable routes of one family and their next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family of the NLRI.
    pub family: Family,
    /// The next hop.
    pub next_hop: NextHop,
    /// Reachable routes.
    pub nlri: Vec<Nlri>,
}

/// What decoding an MP attribute produced when it could not be used.
pub(crate) enum MpFault {
    /// The family is known but the content is malformed: disable the family.
    Disable(Family, DecodeError),
    /// A family this codec does not carry: ignore the attribute.
    Unsupported(Family),
    /// Not even the family can be read: reset the session.
    Reset(DecodeError),
}

/// Reads AFI and SAFI, checking the family is one we decode.
pub(crate) fn family<'a>(raw: &Raw<'a>) -> Result<(Family, &'a [u8]), MpFault> {
    let [a, b, s, rest @ ..] = raw.value else {
        return Err(MpFault::Reset(raw.optional_error()));
    };
    let family = Family::new(u16::from_be_bytes([*a, *b]), *s);
    if !family.is_ip() {
        return Err(MpFault::Unsupported(family));
    }
    Ok((family, rest))
}

pub(crate) fn decode(raw: &Raw<'_>, ctx: &DecodeContext) -> Result<MpReach, MpFault> {
    let (family, rest) = family(raw)?;
    let disable = || MpFault::Disable(family, raw.optional_error());
    let (&nh_len, rest) = rest.split_first().ok_or_else(disable)?;
    let nh_len = usize::from(nh_len);
    let nh = rest.get(..nh_len).ok_or_else(disable)?;
    let next_hop = next_hop(family, nh).ok_or_else(disable)?;
    // One reserved octet (formerly the SNPA count, RFC 4760 §3), ignored.
    let nlri_field = rest.get(nh_len + 1..).ok_or_else(disable)?;
    let mut out = Vec::new();
    nlri::decode(nlri_field, family.afi, PathIds::of(ctx, family), &mut out)
        .map_err(|_| disable())?;
    Ok(MpReach {
        family,
        next_hop,
        nlri: out,
    })
}

fn next_hop(family: Family, nh: &[u8]) -> Option<NextHop> {
    let v6 = |b: &[u8]| -> Option<Ipv6Addr> { Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?)) };
    match (family.afi, nh.len()) {
        (Afi::Ipv4, 4) => Some(NextHop::V4(Ipv4Addr::from(<[u8; 4]>::try_from(nh).ok()?))),
        // RFC 8950: IPv4 NLRI with an IPv6 next hop; IPv6 NLRI as RFC 2545.
        (_, 16) => Some(NextHop::V6 {
            global: v6(nh)?,
            link_local: None,
        }),
        (_, 32) => Some(NextHop::V6 {
            global: v6(&nh[..16])?,
            link_local: Some(v6(&nh[16..])?),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, attr_both_ways_ctx, attr_reset, decode_attrs};
    use super::*;
    use crate::{ErrorAction, PathAttributes};

    fn reach(family: Family, next_hop: NextHop, nlri: &[&str]) -> PathAttributes {
        PathAttributes {
            mp_reach: Some(MpReach {
                family,
                next_hop,
                nlri: nlri.iter().map(|s| Nlri::new(s.parse().unwrap())).collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ipv6_unicast_with_global_and_link_local_next_hop_vector() {
        let mut bytes = vec![0x90, 14, 0, 0, 0, 2, 1, 32];
        bytes.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        bytes.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        bytes.extend_from_slice(&[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0]);
        bytes[3] = (bytes.len() - 4) as u8;
        attr_both_ways(
            &bytes,
            reach(
                Family::IPV6_UNICAST,
                NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                &["2001:db8:1::/64"],
            ),
        );
    }

    #[test]
    fn ipv4_unicast_with_ipv6_next_hop_vector() {
        let mut bytes = vec![0x90, 14, 0, 0, 0, 1, 1, 16];
        bytes.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        bytes.extend_from_slice(&[0, 26, 10, 244, 1, 64]);
        bytes[3] = (bytes.len() - 4) as u8;
        attr_both_ways(
            &bytes,
            reach(
                Family::IPV4_UNICAST,
                NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: None,
                },
                &["10.244.1.64/26"],
            ),
        );
    }

    #[test]
    fn ipv4_next_hop_with_add_path_vector() {
        let ctx = DecodeContext {
            four_octet_as: true,
            add_path: vec![Family::IPV4_UNICAST],
            ..Default::default()
        };
        let bytes = [
            0x90, 14, 0, 15, 0, 1, 1, 4, 10, 0, 0, 1, 0, 0, 0, 0, 3, 8, 10,
        ];
        let mut attrs = reach(
            Family::IPV4_UNICAST,
            NextHop::V4(Ipv4Addr::new(10, 0, 0, 1)),
            &[],
        );
        if let Some(r) = attrs.mp_reach.as_mut() {
            r.nlri
                .push(Nlri::with_path_id("10.0.0.0/8".parse().unwrap(), 3));
        }
        attr_both_ways_ctx(&bytes, attrs, &ctx);
    }

    #[test]
    fn bad_next_hop_length_disables_the_family() {
        let (attrs, errors) = decode_attrs(&[0x80, 14, 8, 0, 2, 1, 3, 1, 2, 3, 0]).unwrap();
        assert_eq!(attrs.mp_reach, None);
        assert_eq!(errors[0].action, ErrorAction::AfiSafiDisable);
        assert_eq!(errors[0].family, Some(Family::IPV6_UNICAST));
    }

    #[test]
    fn unreadable_family_resets_the_session() {
        assert!(matches!(
            attr_reset(&[0x80, 14, 2, 0, 2]),
            DecodeError::OptionalAttributeError { .. }
        ));
    }

    #[test]
    fn unsupported_family_is_ignored() {
        let (attrs, errors) = decode_attrs(&[0x80, 14, 5, 0, 25, 65, 0, 0]).unwrap();
        assert_eq!(attrs.mp_reach, None);
        assert_eq!(errors[0].action, ErrorAction::AttributeDiscard);
    }
}
