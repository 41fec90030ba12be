//! The attribute list walk: headers, flag checks, duplicates, dispatch to the
//! per-attribute files and the RFC 7606 action of each failure; and the encoder.

use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use super::mp_reach::MpFault;
use super::type_code as tc;
use super::{
    aggregator, as4, as_path, atomic_aggregate, cluster_list, communities, ext_communities, flags,
    large_communities, med, mp_reach, mp_unreach, next_hop, origin, Aggregator, AsPath, MpReach,
    PathAttributes, RawAttribute,
};
use crate::error::{DecodeError, EncodeError, ErrorAction, UpdateError};
use crate::family::Family;
use crate::nlri::{self, PathIds};
use crate::prefix::Nlri;
use crate::DecodeContext;

/// One attribute as found on the wire.
pub(crate) struct Raw<'a> {
    pub(crate) flags: u8,
    pub(crate) type_code: u8,
    pub(crate) value: &'a [u8],
    /// The whole attribute, header included: the data of its NOTIFICATION.
    pub(crate) bytes: &'a [u8],
}

impl Raw<'_> {
    pub(crate) fn length_error(&self) -> DecodeError {
        DecodeError::AttributeLengthError {
            attribute: self.bytes.to_vec(),
        }
    }

    pub(crate) fn optional_error(&self) -> DecodeError {
        DecodeError::OptionalAttributeError {
            attribute: self.bytes.to_vec(),
        }
    }
}

fn header(input: &[u8]) -> IResult<&[u8], Raw<'_>> {
    let whole = input;
    let (input, attr_flags) = be_u8(input)?;
    let (input, type_code) = be_u8(input)?;
    let (input, len) = if attr_flags & flags::EXTENDED_LENGTH != 0 {
        be_u16(input)?
    } else {
        let (i, l) = be_u8(input)?;
        (i, u16::from(l))
    };
    let (rest, value) = take(len)(input)?;
    let raw = Raw {
        flags: attr_flags,
        type_code,
        value,
        bytes: &whole[..whole.len() - rest.len()],
    };
    Ok((rest, raw))
}

/// RFC 7606 §7: what a malformed attribute of this type leads to.
fn action_for(type_code: u8) -> ErrorAction {
    match type_code {
        tc::ATOMIC_AGGREGATE | tc::AGGREGATOR | tc::AS4_PATH | tc::AS4_AGGREGATOR => {
            ErrorAction::AttributeDiscard
        }
        tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI => ErrorAction::SessionReset,
        _ => ErrorAction::TreatAsWithdraw,
    }
}

/// The Optional and Transitive bits a known attribute must carry (RFC 4271 §5).
fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = flags::TRANSITIVE;
    const OPT_NON_TRANS: u8 = flags::OPTIONAL;
    const OPT_TRANS: u8 = flags::OPTIONAL | flags::TRANSITIVE;
    Some(match type_code {
        tc::ORIGIN | tc::AS_PATH | tc::NEXT_HOP | tc::LOCAL_PREF | tc::ATOMIC_AGGREGATE => {
            WELL_KNOWN
        }
        tc::MED
        | tc::ORIGINATOR_ID
        | tc::CLUSTER_LIST
        | tc::MP_REACH_NLRI
        | tc::MP_UNREACH_NLRI => OPT_NON_TRANS,
        tc::AGGREGATOR
        | tc::COMMUNITIES
        | tc::EXTENDED_COMMUNITIES
        | tc::AS4_PATH
        | tc::AS4_AGGREGATOR
        | tc::LARGE_COMMUNITY => OPT_TRANS,
        _ => return None,
    })
}

/// A failure of one attribute and what to do about it.
struct Fault {
    action: ErrorAction,
    family: Option<Family>,
    error: DecodeError,
}

impl From<DecodeError> for Fault {
    fn from(error: DecodeError) -> Self {
        Fault {
            action: ErrorAction::SessionReset,
            family: None,
            error,
        }
    }
}

/// AS4 attributes held until the whole list is read (RFC 6793 §4.2.3).
#[derive(Default)]
struct As4 {
    path: Option<AsPath>,
    aggregator: Option<Aggregator>,
}

/// Decodes an UPDATE's attribute list. Problems RFC 7606 does not make fatal are
/// appended to `errors`; the rest are returned as the session-resetting error.
pub(crate) fn decode(
    mut input: &[u8],
    ctx: &DecodeContext,
    errors: &mut Vec<UpdateError>,
) -> Result<PathAttributes, DecodeError> {
    let mut attrs = PathAttributes::default();
    let mut as4 = As4::default();
    let mut seen = [false; 256];
    while !input.is_empty() {
        // RFC 7606 §4: an attribute overrunning the list leaves nothing reliable.
        let (rest, raw) = header(input).map_err(|_| DecodeError::MalformedAttributeList {
            reason: "attribute runs past the path attribute length",
        })?;
        input = rest;
        if std::mem::replace(&mut seen[usize::from(raw.type_code)], true) {
            duplicate(&raw, errors)?;
            continue;
        }
        if let Err(f) = decode_one(&raw, ctx, &mut attrs, &mut as4) {
            if f.action == ErrorAction::SessionReset {
                return Err(f.error);
            }
            errors.push(UpdateError {
                action: f.action,
                type_code: raw.type_code,
                family: f.family,
                error: f.error,
            });
        }
    }
    if !ctx.four_octet_as {
        let (path, agg) = as4::merge(
            attrs.as_path.take(),
            as4.path,
            attrs.aggregator.take(),
            as4.aggregator,
        );
        attrs.as_path = path;
        attrs.aggregator = agg;
    }
    Ok(attrs)
}

/// RFC 7606 §3 (g): repeated MP attributes reset the session; other repeats are discarded.
fn duplicate(raw: &Raw<'_>, errors: &mut Vec<UpdateError>) -> Result<(), DecodeError> {
    let error = DecodeError::MalformedAttributeList {
        reason: "attribute appears more than once",
    };
    if matches!(raw.type_code, tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI) {
        return Err(error);
    }
    errors.push(UpdateError {
        action: ErrorAction::AttributeDiscard,
        type_code: raw.type_code,
        family: None,
        error,
    });
    Ok(())
}

fn decode_one(
    raw: &Raw<'_>,
    ctx: &DecodeContext,
    attrs: &mut PathAttributes,
    as4: &mut As4,
) -> Result<(), Fault> {
    let action = action_for(raw.type_code);
    let with_action = |error: DecodeError| Fault {
        action,
        family: None,
        error,
    };
    match expected_flags(raw.type_code) {
        // RFC 7606 §3 (c): only the Optional and Transitive bits are compared.
        Some(want) if raw.flags & (flags::OPTIONAL | flags::TRANSITIVE) != want => {
            return Err(with_action(DecodeError::AttributeFlagsError {
                attribute: raw.bytes.to_vec(),
            }));
        }
        Some(_) => {}
        None => return unknown(raw, attrs),
    }
    match raw.type_code {
        tc::MP_REACH_NLRI => attrs.mp_reach = Some(mp_reach::decode(raw, ctx).map_err(mp_fault)?),
        tc::MP_UNREACH_NLRI => {
            attrs.mp_unreach = Some(mp_unreach::decode(raw, ctx).map_err(mp_fault)?)
        }
        // RFC 6793 §4.2.3: a NEW speaker ignores AS4 attributes from another NEW speaker.
        tc::AS4_PATH | tc::AS4_AGGREGATOR if ctx.four_octet_as => {}
        tc::AS4_PATH => {
            let p = as_path::decode_value(raw.value, 4)
                .map_err(|_| with_action(raw.optional_error()))?;
            as4.path = Some(as4::strip_confed(p));
        }
        tc::AS4_AGGREGATOR => {
            as4.aggregator = Some(aggregator::decode(raw, 4).map_err(with_action)?)
        }
        _ => decode_value(raw, ctx, attrs).map_err(with_action)?,
    }
    Ok(())
}

/// The attributes whose value decodes on its own into one field.
fn decode_value(
    raw: &Raw<'_>,
    ctx: &DecodeContext,
    attrs: &mut PathAttributes,
) -> Result<(), DecodeError> {
    let as_size = if ctx.four_octet_as { 4 } else { 2 };
    match raw.type_code {
        tc::ORIGIN => attrs.origin = Some(origin::decode(raw)?),
        tc::AS_PATH => attrs.as_path = Some(as_path::decode_value(raw.value, as_size)?),
        tc::NEXT_HOP => attrs.next_hop = Some(next_hop::decode(raw)?),
        tc::MED => attrs.med = Some(med::decode_u32(raw)?),
        tc::LOCAL_PREF => attrs.local_pref = Some(med::decode_u32(raw)?),
        tc::ATOMIC_AGGREGATE => attrs.atomic_aggregate = atomic_aggregate::decode(raw)?,
        tc::AGGREGATOR => attrs.aggregator = Some(aggregator::decode(raw, as_size)?),
        tc::COMMUNITIES => attrs.communities = communities::decode(raw)?,
        tc::ORIGINATOR_ID => attrs.originator_id = Some(next_hop::decode(raw)?),
        tc::CLUSTER_LIST => attrs.cluster_list = cluster_list::decode(raw)?,
        tc::EXTENDED_COMMUNITIES => attrs.extended_communities = ext_communities::decode(raw)?,
        tc::LARGE_COMMUNITY => attrs.large_communities = large_communities::decode(raw)?,
        _ => {}
    }
    Ok(())
}

fn mp_fault(f: MpFault) -> Fault {
    match f {
        MpFault::Disable(family, error) => Fault {
            action: ErrorAction::AfiSafiDisable,
            family: Some(family),
            error,
        },
        // RFC 4760 §7: a family that was not negotiated is ignored.
        MpFault::Unsupported(family) => Fault {
            action: ErrorAction::AttributeDiscard,
            family: Some(family),
            error: DecodeError::OptionalAttributeError {
                attribute: Vec::new(),
            },
        },
        MpFault::Reset(error) => error.into(),
    }
}

/// RFC 4271 §5 / §6.3: unrecognized attributes by category.
fn unknown(raw: &Raw<'_>, attrs: &mut PathAttributes) -> Result<(), Fault> {
    if raw.flags & flags::OPTIONAL == 0 {
        return Err(DecodeError::UnrecognizedWellKnownAttribute {
            attribute: raw.bytes.to_vec(),
        }
        .into());
    }
    if raw.flags & flags::TRANSITIVE != 0 {
        attrs.unknown.push(RawAttribute {
            flags: (raw.flags & !flags::EXTENDED_LENGTH) | flags::PARTIAL,
            type_code: raw.type_code,
            value: raw.value.to_vec(),
        });
    }
    Ok(())
}

/// Which attribute length field to write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LengthField {
    /// One octet when the value fits, else two.
    AsNeeded,
    /// Always two octets (Extended Length).
    Extended,
}

/// Appends one attribute: header, then what `value` writes; the Extended Length
/// bit is used only when the value needs it.
fn put(
    out: &mut Vec<u8>,
    attr_flags: u8,
    code: u8,
    value: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    put_with(out, attr_flags, code, LengthField::AsNeeded, value)
}

fn put_with(
    out: &mut Vec<u8>,
    attr_flags: u8,
    code: u8,
    field: LengthField,
    value: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[attr_flags | flags::EXTENDED_LENGTH, code, 0, 0]);
    value(out);
    let len = out.len() - start - 4;
    if len <= 255 && field == LengthField::AsNeeded {
        out[start] &= !flags::EXTENDED_LENGTH;
        out[start + 2] = len as u8;
        out.remove(start + 3);
    } else {
        let len16 = u16::try_from(len).map_err(|_| EncodeError::ValueTooLarge {
            what: "path attribute",
            len,
            max: 65535,
        })?;
        out[start + 2..start + 4].copy_from_slice(&len16.to_be_bytes());
    }
    Ok(())
}

const WK: u8 = flags::TRANSITIVE;
const ONT: u8 = flags::OPTIONAL;
const OT: u8 = flags::OPTIONAL | flags::TRANSITIVE;

/// Appends every attribute except MP_REACH/MP_UNREACH, in type-code order.
/// On 2-octet sessions it writes AS_TRANS and adds AS4_PATH/AS4_AGGREGATOR (RFC 6793 §4.2.2).
pub(crate) fn encode_common(
    a: &PathAttributes,
    ctx: &DecodeContext,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let as_size = if ctx.four_octet_as { 4 } else { 2 };
    if let Some(o) = a.origin {
        put(out, WK, tc::ORIGIN, |o2| origin::encode(o, o2))?;
    }
    if let Some(p) = &a.as_path {
        let two = (as_size == 2).then(|| p.to_two_octet());
        put(out, WK, tc::AS_PATH, |o| {
            as_path::encode_value(two.as_ref().unwrap_or(p), as_size, o)
        })?;
    }
    if let Some(nh) = a.next_hop {
        put(out, WK, tc::NEXT_HOP, |o| o.extend_from_slice(&nh.octets()))?;
    }
    if let Some(med) = a.med {
        put(out, ONT, tc::MED, |o| {
            o.extend_from_slice(&med.to_be_bytes())
        })?;
    }
    if let Some(lp) = a.local_pref {
        put(out, WK, tc::LOCAL_PREF, |o| {
            o.extend_from_slice(&lp.to_be_bytes())
        })?;
    }
    if a.atomic_aggregate {
        put(out, WK, tc::ATOMIC_AGGREGATE, |_| {})?;
    }
    if let Some(agg) = &a.aggregator {
        let mut shown = *agg;
        if as_size == 2 && agg.asn > 0xffff {
            shown.asn = as_path::AS_TRANS;
        }
        put(out, OT, tc::AGGREGATOR, |o| {
            aggregator::encode(&shown, as_size, o)
        })?;
    }
    encode_lists(a, out)?;
    if as_size == 2 {
        encode_as4(a, out)?;
    }
    if !a.large_communities.is_empty() {
        put(out, OT, tc::LARGE_COMMUNITY, |o| {
            large_communities::encode(&a.large_communities, o)
        })?;
    }
    for u in &a.unknown {
        // RFC 4271 §5: passed on with Partial set, as we do not recognize it.
        let f = (u.flags & !flags::EXTENDED_LENGTH) | flags::PARTIAL;
        put(out, f, u.type_code, |o| o.extend_from_slice(&u.value))?;
    }
    Ok(())
}

fn encode_lists(a: &PathAttributes, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if !a.communities.is_empty() {
        put(out, OT, tc::COMMUNITIES, |o| {
            a.communities
                .iter()
                .for_each(|c| o.extend_from_slice(&c.0.to_be_bytes()))
        })?;
    }
    if let Some(id) = a.originator_id {
        put(out, ONT, tc::ORIGINATOR_ID, |o| {
            o.extend_from_slice(&id.octets())
        })?;
    }
    if !a.cluster_list.is_empty() {
        put(out, ONT, tc::CLUSTER_LIST, |o| {
            a.cluster_list
                .iter()
                .for_each(|c| o.extend_from_slice(&c.octets()))
        })?;
    }
    if !a.extended_communities.is_empty() {
        put(out, OT, tc::EXTENDED_COMMUNITIES, |o| {
            a.extended_communities
                .iter()
                .for_each(|c| o.extend_from_slice(&c.0))
        })?;
    }
    Ok(())
}

/// RFC 6793 §4.2.2: AS4_PATH (without confederation segments) and AS4_AGGREGATOR
/// when the 2-octet attributes had to hide a 4-octet AS behind AS_TRANS.
fn encode_as4(a: &PathAttributes, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if let Some(p) = a.as_path.as_ref().filter(|p| p.has_four_octet_as()) {
        let p4 = as4::strip_confed(p.clone());
        put(out, OT, tc::AS4_PATH, |o| as_path::encode_value(&p4, 4, o))?;
    }
    if let Some(agg) = a.aggregator.as_ref().filter(|g| g.asn > 0xffff) {
        put(out, OT, tc::AS4_AGGREGATOR, |o| {
            aggregator::encode(agg, 4, o)
        })?;
    }
    Ok(())
}

/// Appends MP_REACH_NLRI for `reach`'s family and next hop with the given entries.
pub(crate) fn encode_mp_reach(
    reach: &MpReach,
    entries: &[Nlri],
    ctx: &DecodeContext,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let family = reach.family;
    let ids = PathIds::of(ctx, family);
    let mut value = Vec::new();
    value.extend_from_slice(&family.afi.code().to_be_bytes());
    value.push(family.safi.code());
    value.push(reach.next_hop.wire_len() as u8);
    reach.next_hop.encode(&mut value);
    value.push(0);
    nlri::encode_checked(entries, family, ids, &mut value)?;
    // Extended Length always, as BIRD and FRR write it: the attribute that carries
    // the NLRI is the one that grows.
    put_with(out, ONT, tc::MP_REACH_NLRI, LengthField::Extended, |o| {
        o.extend_from_slice(&value)
    })
}

/// Appends MP_UNREACH_NLRI for `family` with the given withdrawn entries.
pub(crate) fn encode_mp_unreach(
    family: Family,
    entries: &[Nlri],
    ctx: &DecodeContext,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let ids = PathIds::of(ctx, family);
    let mut value = Vec::new();
    value.extend_from_slice(&family.afi.code().to_be_bytes());
    value.push(family.safi.code());
    nlri::encode_checked(entries, family, ids, &mut value)?;
    put(out, ONT, tc::MP_UNREACH_NLRI, |o| {
        o.extend_from_slice(&value)
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_reset, decode_attrs};
    use super::*;

    #[test]
    fn flag_conflicts_withdraw_and_name_the_attribute() {
        // ORIGIN sent as optional.
        let (_, errors) = decode_attrs(&[0xc0, 1, 1, 0]).unwrap();
        assert_eq!(errors[0].action, ErrorAction::TreatAsWithdraw);
        assert_eq!(
            errors[0].error,
            DecodeError::AttributeFlagsError {
                attribute: vec![0xc0, 1, 1, 0]
            }
        );
    }

    #[test]
    fn repeated_attributes_keep_the_first_but_repeated_mp_reach_resets() {
        let (attrs, errors) = decode_attrs(&[0x40, 1, 1, 0, 0x40, 1, 1, 2]).unwrap();
        assert_eq!(attrs.origin, Some(super::super::Origin::Igp));
        assert_eq!(errors[0].action, ErrorAction::AttributeDiscard);
        let mp = [0x80, 15, 3, 0, 1, 1];
        let twice = [mp, mp].concat();
        assert!(matches!(
            attr_reset(&twice),
            DecodeError::MalformedAttributeList { .. }
        ));
    }

    #[test]
    fn attribute_overrunning_the_list_resets_the_session() {
        assert!(matches!(
            attr_reset(&[0x40, 1, 4, 0]),
            DecodeError::MalformedAttributeList { .. }
        ));
        assert!(matches!(
            attr_reset(&[0x40]),
            DecodeError::MalformedAttributeList { .. }
        ));
    }

    #[test]
    fn extended_length_is_accepted_and_used_only_when_needed() {
        let (attrs, _) = decode_attrs(&[0x50, 1, 0, 1, 2]).unwrap();
        assert_eq!(attrs.origin, Some(super::super::Origin::Incomplete));
        let mut out = Vec::new();
        put(&mut out, OT, 200, |o| o.extend_from_slice(&[0; 300])).unwrap();
        assert_eq!(&out[..4], &[0xd0, 200, 1, 44]);
        assert_eq!(out.len(), 304);
    }

    #[test]
    fn values_beyond_65535_octets_are_reported() {
        let mut out = Vec::new();
        let e = put(&mut out, OT, 200, |o| o.extend_from_slice(&vec![0; 70_000])).unwrap_err();
        assert!(matches!(e, EncodeError::ValueTooLarge { .. }));
    }
}
