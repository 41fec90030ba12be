//! ROUTE-REFRESH (RFC 2918 §3) with the RFC 7313 §3.2 message subtypes (BoRR/EoRR).

use crate::error::DecodeError;
use crate::family::Family;

/// RFC 7313 §3.2 Message Subtype (the former Reserved octet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// 0: a normal route refresh request (RFC 2918).
    Normal,
    /// 1: Beginning of Route Refresh.
    BeginningOfRouteRefresh,
    /// 2: End of Route Refresh.
    EndOfRouteRefresh,
    /// Anything else: RFC 7313 §4 says the receiver ignores the message.
    Other(u8),
}

/// A ROUTE-REFRESH message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefreshMsg {
    /// The family to refresh.
    pub family: Family,
    /// Request, BoRR or EoRR.
    pub subtype: RouteRefreshSubtype,
}

impl RouteRefreshMsg {
    /// A normal refresh request for `family`.
    pub fn request(family: Family) -> Self {
        RouteRefreshMsg {
            family,
            subtype: RouteRefreshSubtype::Normal,
        }
    }

    /// Decodes a body; `whole` is the complete message for the RFC 7313 §5 error data.
    pub(crate) fn decode_body(body: &[u8], whole: &[u8]) -> Result<Self, DecodeError> {
        let [a, b, sub, safi] = body else {
            return Err(DecodeError::InvalidRouteRefreshLength {
                message: whole.to_vec(),
            });
        };
        let subtype = match sub {
            0 => RouteRefreshSubtype::Normal,
            1 => RouteRefreshSubtype::BeginningOfRouteRefresh,
            2 => RouteRefreshSubtype::EndOfRouteRefresh,
            s => RouteRefreshSubtype::Other(*s),
        };
        Ok(RouteRefreshMsg {
            family: Family::new(u16::from_be_bytes([*a, *b]), *safi),
            subtype,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.code().to_be_bytes());
        out.push(match self.subtype {
            RouteRefreshSubtype::Normal => 0,
            RouteRefreshSubtype::BeginningOfRouteRefresh => 1,
            RouteRefreshSubtype::EndOfRouteRefresh => 2,
            RouteRefreshSubtype::Other(s) => s,
        });
        out.push(self.family.safi.code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borr_and_eorr_vectors_both_ways() {
        for (sub, st) in [
            (0u8, RouteRefreshSubtype::Normal),
            (1, RouteRefreshSubtype::BeginningOfRouteRefresh),
            (2, RouteRefreshSubtype::EndOfRouteRefresh),
            (7, RouteRefreshSubtype::Other(7)),
        ] {
            let bytes = [0, 2, sub, 1];
            let msg = RouteRefreshMsg {
                family: Family::IPV6_UNICAST,
                subtype: st,
            };
            assert_eq!(RouteRefreshMsg::decode_body(&bytes, &[]).unwrap(), msg);
            let mut out = Vec::new();
            msg.encode_body(&mut out);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn wrong_length_is_rfc7313_invalid_message_length_with_the_message() {
        let e = RouteRefreshMsg::decode_body(&[0, 1, 0], &[9, 9]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::InvalidRouteRefreshLength {
                message: vec![9, 9]
            }
        );
    }
}
