//! Capabilities advertised in OPEN (RFC 5492) and their values.
//!
//! Known: multiprotocol (RFC 4760 §8), route refresh (RFC 2918 §2), enhanced
//! route refresh (RFC 7313 §3.1), 4-octet AS (RFC 6793 §3), graceful restart
//! (RFC 4724 §3), ADD-PATH (RFC 7911 §4), extended messages (RFC 8654 §3),
//! extended next hop (RFC 8950 §3). Anything else is kept as [`Capability::Unknown`].

use nom::bytes::complete::take;
use nom::multi::many0;
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::IResult;

use crate::error::{DecodeError, EncodeError};
use crate::family::{Afi, Family};

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// RFC 4760 multiprotocol extensions.
    pub const MULTIPROTOCOL: u8 = 1;
    /// RFC 2918 route refresh.
    pub const ROUTE_REFRESH: u8 = 2;
    /// RFC 8950 extended next hop encoding.
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// RFC 8654 extended messages.
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// RFC 4724 graceful restart.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// RFC 6793 4-octet AS numbers.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// RFC 7911 ADD-PATH.
    pub const ADD_PATH: u8 = 69;
    /// RFC 7313 enhanced route refresh.
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// One capability (RFC 5492 §4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// RFC 4760 §8: willing to exchange routes of this family.
    Multiprotocol(Family),
    /// RFC 2918: ROUTE-REFRESH supported.
    RouteRefresh,
    /// RFC 7313: BoRR/EoRR demarcation supported.
    EnhancedRouteRefresh,
    /// RFC 6793: 4-octet AS numbers, carrying the sender's AS.
    FourOctetAs(u32),
    /// RFC 4724 graceful restart.
    GracefulRestart(GracefulRestartCap),
    /// RFC 7911 ADD-PATH, per family.
    AddPath(Vec<AddPathFamily>),
    /// RFC 8654 extended messages.
    ExtendedMessage,
    /// RFC 8950 extended next hop encoding.
    ExtendedNextHop(Vec<ExtendedNextHopEntry>),
    /// A capability this codec does not interpret, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// RFC 4724 §3 graceful restart capability value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GracefulRestartCap {
    /// Restart State bit (R): the sender has restarted.
    pub restart_state: bool,
    /// Graceful Notification bit (N, RFC 8538).
    pub notification: bool,
    /// Restart Time in seconds (12 bits, at most 4095).
    pub restart_time: u16,
    /// Families the sender preserves state for.
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of a graceful restart capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// Forwarding State bit (F): forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// RFC 7911 §4 Send/Receive field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    /// Able to receive multiple paths (1).
    Receive,
    /// Able to send multiple paths (2).
    Send,
    /// Both (3).
    Both,
}

impl AddPathMode {
    fn code(self) -> u8 {
        match self {
            AddPathMode::Receive => 1,
            AddPathMode::Send => 2,
            AddPathMode::Both => 3,
        }
    }
}

/// One family of an ADD-PATH capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// The family.
    pub family: Family,
    /// Send, receive or both.
    pub mode: AddPathMode,
}

/// One tuple of an RFC 8950 extended next hop capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedNextHopEntry {
    /// NLRI family (the SAFI is 16 bits on the wire; only values ≤ 255 are meaningful).
    pub family: Family,
    /// AFI of the next hop that may be used for it.
    pub next_hop_afi: Afi,
}

type Res<'a, T> = IResult<&'a [u8], T>;

fn malformed(what: &'static str) -> DecodeError {
    DecodeError::MalformedOpen { reason: what }
}

/// Decodes the capabilities in one Capabilities optional parameter value (RFC 5492 §4).
pub(crate) fn decode_all(mut input: &[u8]) -> Result<Vec<Capability>, DecodeError> {
    let mut caps = Vec::new();
    while !input.is_empty() {
        let (rest, (code, value)) =
            tlv(input).map_err(|_| malformed("capability length overruns the parameter"))?;
        caps.push(decode_one(code, value)?);
        input = rest;
    }
    Ok(caps)
}

fn tlv(input: &[u8]) -> Res<'_, (u8, &[u8])> {
    let (input, code) = be_u8(input)?;
    let (input, len) = be_u8(input)?;
    let (input, value) = take(len)(input)?;
    Ok((input, (code, value)))
}

fn exact<'a, T>(
    value: &'a [u8],
    parser: impl FnMut(&'a [u8]) -> Res<'a, T>,
    what: &'static str,
) -> Result<T, DecodeError> {
    match nom::combinator::all_consuming(parser)(value) {
        Ok((_, v)) => Ok(v),
        Err(_) => Err(malformed(what)),
    }
}

fn empty(value: &[u8], cap: Capability, what: &'static str) -> Result<Capability, DecodeError> {
    if value.is_empty() {
        Ok(cap)
    } else {
        Err(malformed(what))
    }
}

fn decode_one(code: u8, value: &[u8]) -> Result<Capability, DecodeError> {
    match code {
        code::MULTIPROTOCOL => exact(value, multiprotocol, "multiprotocol capability length")
            .map(Capability::Multiprotocol),
        code::ROUTE_REFRESH => empty(
            value,
            Capability::RouteRefresh,
            "route refresh capability length",
        ),
        code::ENHANCED_ROUTE_REFRESH => empty(
            value,
            Capability::EnhancedRouteRefresh,
            "enhanced route refresh capability length",
        ),
        code::EXTENDED_MESSAGE => empty(
            value,
            Capability::ExtendedMessage,
            "extended message capability length",
        ),
        code::FOUR_OCTET_AS => {
            exact(value, be_u32, "4-octet AS capability length").map(Capability::FourOctetAs)
        }
        code::GRACEFUL_RESTART => exact(
            value,
            graceful_restart,
            "graceful restart capability length",
        )
        .map(Capability::GracefulRestart),
        code::ADD_PATH => exact(value, many0(add_path_family), "ADD-PATH capability length")?
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .map(Capability::AddPath)
            .ok_or_else(|| malformed("ADD-PATH Send/Receive value not 1, 2 or 3")),
        code::EXTENDED_NEXT_HOP => exact(
            value,
            many0(extended_next_hop),
            "extended next hop capability length",
        )
        .map(Capability::ExtendedNextHop),
        _ => Ok(Capability::Unknown {
            code,
            value: value.to_vec(),
        }),
    }
}

fn multiprotocol(input: &[u8]) -> Res<'_, Family> {
    let (input, afi) = be_u16(input)?;
    let (input, _reserved) = be_u8(input)?;
    let (input, safi) = be_u8(input)?;
    Ok((input, Family::new(afi, safi)))
}

fn graceful_restart(input: &[u8]) -> Res<'_, GracefulRestartCap> {
    let (input, head) = be_u16(input)?;
    let (input, families) = many0(|i| {
        let (i, afi) = be_u16(i)?;
        let (i, safi) = be_u8(i)?;
        let (i, flags) = be_u8(i)?;
        Ok((
            i,
            GracefulRestartFamily {
                family: Family::new(afi, safi),
                forwarding_preserved: flags & 0x80 != 0,
            },
        ))
    })(input)?;
    Ok((
        input,
        GracefulRestartCap {
            restart_state: head & 0x8000 != 0,
            notification: head & 0x4000 != 0,
            restart_time: head & 0x0fff,
            families,
        },
    ))
}

fn add_path_family(input: &[u8]) -> Res<'_, Option<AddPathFamily>> {
    let (input, afi) = be_u16(input)?;
    let (input, safi) = be_u8(input)?;
    let (input, mode) = be_u8(input)?;
    let mode = match mode {
        1 => Some(AddPathMode::Receive),
        2 => Some(AddPathMode::Send),
        3 => Some(AddPathMode::Both),
        _ => None,
    };
    let family = Family::new(afi, safi);
    Ok((input, mode.map(|mode| AddPathFamily { family, mode })))
}

fn extended_next_hop(input: &[u8]) -> Res<'_, ExtendedNextHopEntry> {
    let (input, afi) = be_u16(input)?;
    let (input, safi) = be_u16(input)?;
    let (input, nh_afi) = be_u16(input)?;
    let safi = u8::try_from(safi).unwrap_or(0);
    Ok((
        input,
        ExtendedNextHopEntry {
            family: Family::new(afi, safi),
            next_hop_afi: nh_afi.into(),
        },
    ))
}

/// Appends one capability (code, length, value) to `out`.
pub(crate) fn encode(cap: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let code = match cap {
        Capability::Multiprotocol(f) => {
            put_family(out, *f);
            code::MULTIPROTOCOL
        }
        Capability::RouteRefresh => code::ROUTE_REFRESH,
        Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
        Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
        Capability::FourOctetAs(asn) => {
            out.extend_from_slice(&asn.to_be_bytes());
            code::FOUR_OCTET_AS
        }
        Capability::GracefulRestart(gr) => {
            encode_graceful_restart(gr, out)?;
            code::GRACEFUL_RESTART
        }
        Capability::AddPath(entries) => {
            for e in entries {
                out.extend_from_slice(&e.family.afi.code().to_be_bytes());
                out.push(e.family.safi.code());
                out.push(e.mode.code());
            }
            code::ADD_PATH
        }
        Capability::ExtendedNextHop(entries) => {
            for e in entries {
                out.extend_from_slice(&e.family.afi.code().to_be_bytes());
                out.extend_from_slice(&u16::from(e.family.safi.code()).to_be_bytes());
                out.extend_from_slice(&e.next_hop_afi.code().to_be_bytes());
            }
            code::EXTENDED_NEXT_HOP
        }
        Capability::Unknown { code, value } => {
            out.extend_from_slice(value);
            *code
        }
    };
    let len = out.len() - start - 2;
    out[start] = code;
    out[start + 1] = u8::try_from(len).map_err(|_| EncodeError::ValueTooLarge {
        what: "capability value",
        len,
        max: 255,
    })?;
    Ok(())
}

fn put_family(out: &mut Vec<u8>, f: Family) {
    out.extend_from_slice(&f.afi.code().to_be_bytes());
    out.push(0);
    out.push(f.safi.code());
}

fn encode_graceful_restart(gr: &GracefulRestartCap, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if gr.restart_time > 0x0fff {
        return Err(EncodeError::ValueTooLarge {
            what: "graceful restart time",
            len: usize::from(gr.restart_time),
            max: 0x0fff,
        });
    }
    let mut head = gr.restart_time;
    if gr.restart_state {
        head |= 0x8000;
    }
    if gr.notification {
        head |= 0x4000;
    }
    out.extend_from_slice(&head.to_be_bytes());
    for f in &gr.families {
        out.extend_from_slice(&f.family.afi.code().to_be_bytes());
        out.push(f.family.safi.code());
        out.push(if f.forwarding_preserved { 0x80 } else { 0 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both_ways(bytes: &[u8], cap: Capability) {
        assert_eq!(
            decode_all(bytes).unwrap(),
            vec![cap.clone()],
            "decode {bytes:02x?}"
        );
        let mut out = Vec::new();
        encode(&cap, &mut out).unwrap();
        assert_eq!(out, bytes, "encode {cap:?}");
    }

    #[test]
    fn multiprotocol_ipv6_unicast_vector() {
        both_ways(
            &[1, 4, 0, 2, 0, 1],
            Capability::Multiprotocol(Family::IPV6_UNICAST),
        );
    }

    #[test]
    fn empty_valued_capabilities_vectors() {
        both_ways(&[2, 0], Capability::RouteRefresh);
        both_ways(&[70, 0], Capability::EnhancedRouteRefresh);
        both_ways(&[6, 0], Capability::ExtendedMessage);
    }

    #[test]
    fn four_octet_as_vector() {
        both_ways(&[65, 4, 0, 1, 0xfd, 0xe8], Capability::FourOctetAs(130_536));
    }

    #[test]
    fn graceful_restart_vector_with_flags_per_family() {
        both_ways(
            &[64, 10, 0xc0, 0x78, 0, 1, 1, 0x80, 0, 2, 1, 0],
            Capability::GracefulRestart(GracefulRestartCap {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily {
                        family: Family::IPV4_UNICAST,
                        forwarding_preserved: true,
                    },
                    GracefulRestartFamily {
                        family: Family::IPV6_UNICAST,
                        forwarding_preserved: false,
                    },
                ],
            }),
        );
    }

    #[test]
    fn add_path_vector() {
        both_ways(
            &[69, 8, 0, 1, 1, 3, 0, 2, 1, 1],
            Capability::AddPath(vec![
                AddPathFamily {
                    family: Family::IPV4_UNICAST,
                    mode: AddPathMode::Both,
                },
                AddPathFamily {
                    family: Family::IPV6_UNICAST,
                    mode: AddPathMode::Receive,
                },
            ]),
        );
    }

    #[test]
    fn extended_next_hop_vector() {
        both_ways(
            &[5, 6, 0, 1, 0, 1, 0, 2],
            Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
                family: Family::IPV4_UNICAST,
                next_hop_afi: Afi::Ipv6,
            }]),
        );
    }

    #[test]
    fn unknown_capabilities_are_kept_as_received() {
        both_ways(
            &[73, 3, 1, b'a', 0],
            Capability::Unknown {
                code: 73,
                value: vec![1, b'a', 0],
            },
        );
    }

    #[test]
    fn malformed_known_capabilities_are_an_unspecific_open_error() {
        assert!(matches!(
            decode_all(&[65, 2, 0, 1]),
            Err(DecodeError::MalformedOpen { .. })
        ));
        assert!(matches!(
            decode_all(&[69, 4, 0, 1, 1, 9]),
            Err(DecodeError::MalformedOpen { .. })
        ));
        assert!(matches!(
            decode_all(&[2, 5, 0]),
            Err(DecodeError::MalformedOpen { .. })
        ));
    }

    #[test]
    fn oversized_values_are_reported_not_truncated() {
        let cap = Capability::Unknown {
            code: 200,
            value: vec![0; 256],
        };
        assert!(matches!(
            encode(&cap, &mut Vec::new()),
            Err(EncodeError::ValueTooLarge { .. })
        ));
    }
}
