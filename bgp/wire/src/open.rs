//! OPEN (RFC 4271 §4.2) with Capabilities optional parameters (RFC 5492 §4) in the
//! classic or the RFC 9072 extended optional parameters format.

use std::net::Ipv4Addr;

use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::IResult;

use crate::attr::AS_TRANS;
use crate::capability::{self, Capability};
use crate::error::{DecodeError, EncodeError};

/// Optional parameter type carrying capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 §2: marks the extended optional parameters format.
const PARAM_EXTENDED: u8 = 255;

/// An OPEN message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OpenMsg {
    /// Protocol version (4).
    pub version: u8,
    /// My Autonomous System: the 2-octet AS or AS_TRANS (RFC 6793 §4.1).
    pub my_as: u16,
    /// Proposed hold time in seconds (0 or ≥ 3).
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities in wire order (all encoded into one Capabilities parameter).
    pub capabilities: Vec<Capability>,
}

impl OpenMsg {
    /// An OPEN for `asn`: AS_TRANS in My Autonomous System when `asn` needs 4
    /// octets (RFC 6793 §4.1; include [`Capability::FourOctetAs`] yourself).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        OpenMsg {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS as u16),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The sender's AS: from the 4-octet AS capability if present, else My Autonomous System.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Decodes an OPEN body (after the 19-octet header).
    pub(crate) fn decode_body(body: &[u8], length: u16) -> Result<Self, DecodeError> {
        let (params, (version, my_as, hold_time, id)) =
            fixed(body).map_err(|_| DecodeError::BadMessageLength { length })?;
        // RFC 4271 §6.2 checks that depend on nothing but the message.
        if version != 4 {
            return Err(DecodeError::UnsupportedVersionNumber { version });
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::UnacceptableHoldTime { hold_time });
        }
        let bgp_id = Ipv4Addr::from(id);
        if id == 0 {
            return Err(DecodeError::BadBgpIdentifier { id: bgp_id });
        }
        Ok(OpenMsg {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities: decode_params(params)?,
        })
    }

    /// Appends the body (after the header).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.version);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            capability::encode(c, &mut caps)?;
        }
        if caps.is_empty() {
            out.push(0);
        } else if caps.len() + 2 <= 255 {
            out.push((caps.len() + 2) as u8);
            out.extend_from_slice(&[PARAM_CAPABILITIES, caps.len() as u8]);
            out.extend_from_slice(&caps);
        } else {
            // RFC 9072 §2: the extended format, used only when the classic one cannot hold it.
            let total = caps.len() + 3;
            let total16 = u16::try_from(total).map_err(|_| EncodeError::ValueTooLarge {
                what: "optional parameters",
                len: total,
                max: 65535,
            })?;
            out.extend_from_slice(&[255, PARAM_EXTENDED]);
            out.extend_from_slice(&total16.to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&((caps.len()) as u16).to_be_bytes());
            out.extend_from_slice(&caps);
        }
        Ok(())
    }
}

fn fixed(input: &[u8]) -> IResult<&[u8], (u8, u16, u16, u32)> {
    let (input, version) = be_u8(input)?;
    let (input, my_as) = be_u16(input)?;
    let (input, hold) = be_u16(input)?;
    let (input, id) = be_u32(input)?;
    Ok((input, (version, my_as, hold, id)))
}

/// Decodes the optional parameters, classic (RFC 4271 §4.2) or extended (RFC 9072 §2).
fn decode_params(input: &[u8]) -> Result<Vec<Capability>, DecodeError> {
    let malformed = |reason| DecodeError::MalformedOpen { reason };
    let (&len, rest) = input
        .split_first()
        .ok_or(malformed("optional parameters length missing"))?;
    let extended = len == 255 && rest.first() == Some(&PARAM_EXTENDED);
    let (params, size_octets) = if extended {
        let [_, a, b, params @ ..] = rest else {
            return Err(malformed("extended optional parameters length missing"));
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        (params.get(..len).filter(|_| params.len() == len), 2)
    } else {
        (
            rest.get(..usize::from(len))
                .filter(|_| rest.len() == usize::from(len)),
            1,
        )
    };
    let mut params = params.ok_or(malformed(
        "optional parameters length disagrees with the message length",
    ))?;
    let mut caps = Vec::new();
    while !params.is_empty() {
        let (rest, (ptype, value)) = param(params, size_octets)
            .map_err(|_| malformed("optional parameter overruns the list"))?;
        if ptype != PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter { param_type: ptype });
        }
        caps.extend(capability::decode_all(value)?);
        params = rest;
    }
    Ok(caps)
}

fn param(input: &[u8], size_octets: usize) -> IResult<&[u8], (u8, &[u8])> {
    let (input, ptype) = be_u8(input)?;
    let (input, len) = if size_octets == 2 {
        be_u16(input)?
    } else {
        let (i, l) = be_u8(input)?;
        (i, u16::from(l))
    };
    let (input, value) = take(len)(input)?;
    Ok((input, (ptype, value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;

    fn sample() -> OpenMsg {
        OpenMsg::new(
            4_200_000_000,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_000),
            ],
        )
    }

    #[test]
    fn open_vector_both_ways() {
        let bytes = [
            4, 0x5b, 0xa0, 0, 90, 10, 0, 0, 1, // version, AS_TRANS, hold, id
            16, 2, 14, 1, 4, 0, 1, 0, 1, 2, 0, 65, 4, 0xfa, 0x56, 0xea, 0,
        ];
        let open = sample();
        assert_eq!(open.asn(), 4_200_000_000);
        assert_eq!(OpenMsg::decode_body(&bytes, 0).unwrap(), open);
        let mut out = Vec::new();
        open.encode_body(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn one_parameter_per_capability_is_accepted() {
        let bytes = [4, 0xfd, 0xe8, 0, 3, 10, 0, 0, 1, 8, 2, 2, 2, 0, 2, 2, 70, 0];
        let open = OpenMsg::decode_body(&bytes, 0).unwrap();
        assert_eq!(
            open.capabilities,
            vec![Capability::RouteRefresh, Capability::EnhancedRouteRefresh]
        );
        assert_eq!(open.asn(), 65000);
    }

    #[test]
    fn many_capabilities_use_rfc9072_extended_parameters_both_ways() {
        let mut open = sample();
        for code in 0..100u8 {
            open.capabilities.push(Capability::Unknown {
                code: 128 + code,
                value: vec![code],
            });
        }
        let mut out = Vec::new();
        open.encode_body(&mut out).unwrap();
        assert_eq!(&out[9..11], &[255, 255]);
        assert_eq!(OpenMsg::decode_body(&out, 0).unwrap(), open);
    }

    #[test]
    fn rfc4271_open_checks_name_their_errors() {
        let base = [4u8, 0xfd, 0xe8, 0, 90, 10, 0, 0, 1, 0];
        let with = |i: usize, v: &[u8]| {
            let mut b = base.to_vec();
            b[i..i + v.len()].copy_from_slice(v);
            OpenMsg::decode_body(&b, 29)
        };
        assert_eq!(
            with(0, &[3]),
            Err(DecodeError::UnsupportedVersionNumber { version: 3 })
        );
        assert_eq!(
            with(3, &[0, 2]),
            Err(DecodeError::UnacceptableHoldTime { hold_time: 2 })
        );
        assert!(matches!(
            with(5, &[0, 0, 0, 0]),
            Err(DecodeError::BadBgpIdentifier { .. })
        ));
        assert_eq!(
            OpenMsg::decode_body(&[4, 0, 1, 0, 0, 1, 1, 1, 1, 3, 1, 1, 0], 32),
            Err(DecodeError::UnsupportedOptionalParameter { param_type: 1 })
        );
        assert!(matches!(
            with(9, &[4]),
            Err(DecodeError::MalformedOpen { .. })
        ));
        assert_eq!(
            OpenMsg::decode_body(&base[..5], 24),
            Err(DecodeError::BadMessageLength { length: 24 })
        );
    }
}
