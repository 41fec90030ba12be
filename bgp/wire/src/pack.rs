//! Packing many NLRI that share attributes into as few UPDATEs as fit the
//! negotiated message size (RFC 4271 §4.3, RFC 8654). Never truncates: a set of
//! attributes that leaves no room for one prefix is an [`EncodeError`].

use crate::attr::{self, PathAttributes};
use crate::error::EncodeError;
use crate::family::Family;
use crate::message::{begin, finish, msg_type, HEADER_LEN};
use crate::nlri::{self, PathIds};
use crate::prefix::Nlri;
use crate::update::patch_len;
use crate::DecodeContext;

/// Octets of an UPDATE without prefixes: header, two length fields.
const UPDATE_FIXED: usize = HEADER_LEN + 2 + 2;
/// Largest MP attribute header (flags, type, extended length).
const MP_HEADER: usize = 4;

/// Where a chunk of entries goes.
#[derive(Clone, Copy)]
struct Field {
    family: Family,
    ids: PathIds,
    /// Octets available for entries in one message.
    room: usize,
    /// Octets of the message besides the entries.
    fixed: usize,
}

/// Checks entries and finds how many fit in one message (at least one, or an
/// error) and their size.
fn fitting(entries: &[Nlri], f: Field) -> Result<(usize, usize), EncodeError> {
    let mut used = 0;
    for (i, n) in entries.iter().enumerate() {
        nlri::check(n, f.family, f.ids)?;
        let len = nlri::entry_len(n, f.ids);
        if used + len > f.room {
            if i == 0 {
                return Err(EncodeError::MessageTooLarge {
                    len: f.fixed + len,
                    max: f.fixed + f.room,
                });
            }
            return Ok((i, used));
        }
        used += len;
    }
    Ok((entries.len(), used))
}

fn room(max: usize, fixed: usize) -> Result<usize, EncodeError> {
    max.checked_sub(fixed)
        .ok_or(EncodeError::MessageTooLarge { len: fixed, max })
}

/// Appends UPDATEs announcing `nlri` with `attrs` to `out`; returns how many.
///
/// Without `attrs.mp_reach` the prefixes are IPv4 unicast in the NLRI field (with
/// `attrs.next_hop`); with it they go into MP_REACH_NLRI with its family and next
/// hop (its own `nlri` list is ignored). `attrs.mp_unreach` is ignored. On error
/// `out` is left as it was.
pub fn encode_announcements(
    attrs: &PathAttributes,
    nlri: &[Nlri],
    ctx: &DecodeContext,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    all_or_nothing(out, |out| announce(attrs, nlri, ctx, out))
}

/// Runs `write` on `out`; when it fails, `out` is truncated back to what it
/// held before, so a caller never sees half an UPDATE (encoding never truncates
/// silently, and never leaves a partial message behind).
fn all_or_nothing(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<usize, EncodeError>,
) -> Result<usize, EncodeError> {
    let before = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(before);
    }
    result
}

fn announce(
    attrs: &PathAttributes,
    nlri: &[Nlri],
    ctx: &DecodeContext,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let max = ctx.max_message_len();
    let mut common = Vec::new();
    attr::encode_common(attrs, ctx, &mut common)?;
    let family = attrs
        .mp_reach
        .as_ref()
        .map_or(Family::IPV4_UNICAST, |r| r.family);
    let ids = PathIds::of(ctx, family);
    let mp_fixed = attrs
        .mp_reach
        .as_ref()
        .map_or(0, |r| MP_HEADER + 4 + r.next_hop.wire_len() + 1);
    let fixed = UPDATE_FIXED + common.len() + mp_fixed;
    let field = Field {
        family,
        ids,
        room: room(max, fixed)?,
        fixed,
    };
    each_update(nlri, field, max, out, |chunk, size, out| {
        out.extend_from_slice(&[0, 0]);
        let attr_start = out.len();
        out.extend_from_slice(&[0, 0]);
        match &attrs.mp_reach {
            Some(reach) => {
                attr::encode_mp_reach(reach, chunk, ctx, out)?;
                out.extend_from_slice(&common);
                patch_len(out, attr_start, "total path attribute length")
            }
            None => {
                out.extend_from_slice(&common);
                patch_len(out, attr_start, "total path attribute length")?;
                nlri::encode_entries(chunk, size, out);
                Ok(())
            }
        }
    })
}

/// Splits `nlri` into as many UPDATEs as `field` allows and appends each to
/// `out`: the header, then `body` with the chunk and its encoded NLRI size,
/// then the length check; returns how many UPDATEs were written.
fn each_update(
    nlri: &[Nlri],
    field: Field,
    max: usize,
    out: &mut Vec<u8>,
    mut body: impl FnMut(&[Nlri], usize, &mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let mut rest = nlri;
    let mut count = 0;
    while !rest.is_empty() {
        let (n, size) = fitting(rest, field)?;
        let (chunk, tail) = rest.split_at(n);
        out.reserve(field.fixed + size);
        let start = begin(out, msg_type::UPDATE);
        body(chunk, size, out)?;
        finish(out, start, max)?;
        count += 1;
        rest = tail;
    }
    Ok(count)
}

/// Appends UPDATEs withdrawing `nlri` of `family` to `out`; returns how many.
///
/// IPv4 unicast uses the Withdrawn Routes field, other families MP_UNREACH_NLRI.
/// On error `out` is left as it was.
pub fn encode_withdrawals(
    family: Family,
    nlri: &[Nlri],
    ctx: &DecodeContext,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    all_or_nothing(out, |out| withdraw(family, nlri, ctx, out))
}

fn withdraw(
    family: Family,
    nlri: &[Nlri],
    ctx: &DecodeContext,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let max = ctx.max_message_len();
    let ids = PathIds::of(ctx, family);
    let v4 = family == Family::IPV4_UNICAST;
    let fixed = UPDATE_FIXED + if v4 { 0 } else { MP_HEADER + 3 };
    let field = Field {
        family,
        ids,
        room: room(max, fixed)?,
        fixed,
    };
    each_update(nlri, field, max, out, |chunk, size, out| {
        if v4 {
            let wd = out.len();
            out.extend_from_slice(&[0, 0]);
            nlri::encode_entries(chunk, size, out);
            patch_len(out, wd, "withdrawn routes length")?;
            out.extend_from_slice(&[0, 0]);
            Ok(())
        } else {
            out.extend_from_slice(&[0, 0]);
            let attr_start = out.len();
            out.extend_from_slice(&[0, 0]);
            attr::encode_mp_unreach(family, chunk, ctx, out)?;
            patch_len(out, attr_start, "total path attribute length")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{AsPath, MpReach, NextHop, Origin};
    use crate::message::{check, parse, Message};
    use crate::prefix::Prefix;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4_prefixes(n: u32, len: u8) -> Vec<Nlri> {
        (0..n)
            .map(|i| {
                Nlri::new(
                    Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << (32 - len))).into(), len)
                        .unwrap(),
                )
            })
            .collect()
    }

    fn attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([65001])),
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ..Default::default()
        }
    }

    fn split(mut bytes: &[u8], ctx: &DecodeContext) -> Vec<(Message, usize)> {
        let mut msgs = Vec::new();
        while let Some(len) = check(bytes, ctx).unwrap() {
            msgs.push((parse(&bytes[..len], ctx).unwrap(), len));
            bytes = &bytes[len..];
        }
        assert!(bytes.is_empty());
        msgs
    }

    fn announced(msgs: &[(Message, usize)]) -> Vec<Nlri> {
        msgs.iter()
            .flat_map(|(m, _)| match m {
                Message::Update(u) => {
                    let mut v = u.nlri.clone();
                    v.extend(u.attributes.mp_reach.iter().flat_map(|r| r.nlri.clone()));
                    v.extend(u.withdrawn.clone());
                    v.extend(
                        u.attributes
                            .mp_unreach
                            .iter()
                            .flat_map(|r| r.withdrawn.clone()),
                    );
                    v
                }
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn ipv4_announcements_fill_each_update_to_the_limit() {
        let ctx = DecodeContext::four_octet();
        let nlri = v4_prefixes(2000, 32);
        let mut out = Vec::new();
        let n = encode_announcements(&attrs(), &nlri, &ctx, &mut out).unwrap();
        let msgs = split(&out, &ctx);
        assert_eq!(msgs.len(), n);
        // 4096 - 23 - 25 octets of attributes leave room for 809 /32s.
        assert_eq!(n, 3);
        assert!(msgs[..2].iter().all(|(_, len)| *len > 4096 - 5));
        assert_eq!(announced(&msgs), nlri);
    }

    #[test]
    fn extended_messages_pack_more_per_update() {
        let ctx = DecodeContext {
            four_octet_as: true,
            extended_message: true,
            ..Default::default()
        };
        let nlri = v4_prefixes(10_000, 26);
        let mut out = Vec::new();
        assert_eq!(
            encode_announcements(&attrs(), &nlri, &ctx, &mut out).unwrap(),
            1
        );
    }

    #[test]
    fn ipv6_announcements_use_mp_reach_with_the_given_next_hop() {
        let ctx = DecodeContext::four_octet();
        let mut a = attrs();
        a.next_hop = None;
        a.mp_reach = Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: None,
            },
            nlri: vec![],
        });
        let nlri: Vec<Nlri> = (0..1000u128)
            .map(|i| {
                Nlri::new(
                    Prefix::new(
                        Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64)).into(),
                        64,
                    )
                    .unwrap(),
                )
            })
            .collect();
        let mut out = Vec::new();
        let n = encode_announcements(&a, &nlri, &ctx, &mut out).unwrap();
        let msgs = split(&out, &ctx);
        assert_eq!(msgs.len(), n);
        assert!(n >= 3);
        assert_eq!(announced(&msgs), nlri);
    }

    #[test]
    fn withdrawals_pack_for_ipv4_and_mp_families() {
        let ctx = DecodeContext::default();
        let nlri = v4_prefixes(3000, 24);
        let mut out = Vec::new();
        let n = encode_withdrawals(Family::IPV4_UNICAST, &nlri, &ctx, &mut out).unwrap();
        let msgs = split(&out, &ctx);
        assert_eq!((msgs.len(), n), (3, 3));
        assert_eq!(announced(&msgs), nlri);
        let v6 = vec![Nlri::new("2001:db8::/32".parse().unwrap())];
        out.clear();
        assert_eq!(
            encode_withdrawals(Family::IPV6_UNICAST, &v6, &ctx, &mut out).unwrap(),
            1
        );
        assert_eq!(announced(&split(&out, &ctx)), v6);
    }

    #[test]
    fn attributes_too_large_for_any_prefix_are_reported_and_nothing_written() {
        let ctx = DecodeContext::four_octet();
        let mut a = attrs();
        a.as_path = Some(AsPath::from_sequence(0..1100));
        let mut out = vec![7];
        let e = encode_announcements(&a, &v4_prefixes(1, 32), &ctx, &mut out).unwrap_err();
        assert!(matches!(e, EncodeError::MessageTooLarge { .. }));
        assert_eq!(out, [7]);
    }

    #[test]
    fn path_ids_must_match_the_add_path_setting() {
        let ctx = DecodeContext {
            four_octet_as: true,
            add_path: vec![Family::IPV4_UNICAST],
            ..Default::default()
        };
        let mut out = Vec::new();
        let e = encode_announcements(&attrs(), &v4_prefixes(1, 32), &ctx, &mut out).unwrap_err();
        assert!(matches!(e, EncodeError::MissingPathId { .. }));
        let with_ids: Vec<Nlri> = v4_prefixes(900, 32)
            .into_iter()
            .enumerate()
            .map(|(i, n)| Nlri::with_path_id(n.prefix, i as u32))
            .collect();
        let n = encode_announcements(&attrs(), &with_ids, &ctx, &mut out).unwrap();
        assert_eq!(announced(&split(&out, &ctx)), with_ids);
        assert_eq!(n, 2);
    }
}
