//! Path attributes (RFC 4271 §4.3, §5): the attribute list of an UPDATE, decoded
//! into one [`PathAttributes`] value with RFC 7606 error handling, and encoded back.
//! One file per attribute; this file holds the list walk, flag checks and the
//! RFC 7606 action of each attribute type.

pub mod aggregator;
pub mod as4;
pub mod as_path;
pub mod atomic_aggregate;
pub mod cluster_list;
pub mod communities;
pub mod ext_communities;
pub mod large_communities;
pub mod local_pref;
pub mod med;
pub mod mp_reach;
pub mod mp_unreach;
pub mod next_hop;
pub mod origin;
pub mod originator_id;
pub mod unknown;

mod codec;

use std::net::Ipv4Addr;

pub use aggregator::Aggregator;
pub use as_path::{AsPath, AsSegment, SegmentType, AS_TRANS};
pub use communities::Community;
pub use ext_communities::ExtendedCommunity;
pub use large_communities::LargeCommunity;
pub use mp_reach::{MpReach, NextHop};
pub use mp_unreach::MpUnreach;
pub use origin::Origin;
pub use unknown::RawAttribute;

pub(crate) use codec::{decode, encode_common, encode_mp_reach, encode_mp_unreach, Raw};

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: some speaker on the path did not recognize this optional transitive attribute.
    pub const PARTIAL: u8 = 0x20;
    /// Extended Length: the length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod type_code {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MED: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED_COMMUNITIES (RFC 4360).
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// The path attributes of one UPDATE.
///
/// AS numbers are always 4 octets wide here: on 2-octet sessions the decoder has
/// already merged AS4_PATH/AS4_AGGREGATOR (RFC 6793 §4.2.3) and the encoder
/// produces them. Empty lists mean the attribute is absent (an empty COMMUNITIES,
/// CLUSTER_LIST, ... is malformed per RFC 7606 anyway).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 unicast NLRI in the UPDATE's own NLRI field).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// ORIGINATOR_ID (RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456).
    pub cluster_list: Vec<Ipv4Addr>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// EXTENDED_COMMUNITIES.
    pub extended_communities: Vec<ExtendedCommunity>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognized optional transitive attributes, in wire order.
    pub unknown: Vec<RawAttribute>,
}

/// Decodes a path attribute list on its own (the Path Attributes field of an UPDATE).
///
/// RFC 7606 problems that do not reset the session are returned with the value;
/// mandatory-attribute checks need the NLRI and are done by UPDATE decoding only.
pub fn decode_path_attributes(
    bytes: &[u8],
    ctx: &crate::DecodeContext,
) -> Result<(PathAttributes, Vec<crate::UpdateError>), crate::DecodeError> {
    let mut errors = Vec::new();
    let attrs = decode(bytes, ctx, &mut errors)?;
    errors.sort_by_key(|e| std::cmp::Reverse(e.action));
    Ok((attrs, errors))
}

/// Appends a path attribute list: MP_REACH_NLRI (with its NLRI) and MP_UNREACH_NLRI
/// first, then the others in type-code order.
pub fn encode_path_attributes(
    attrs: &PathAttributes,
    ctx: &crate::DecodeContext,
    out: &mut Vec<u8>,
) -> Result<(), crate::EncodeError> {
    if let Some(r) = &attrs.mp_reach {
        encode_mp_reach(r, &r.nlri, ctx, out)?;
    }
    if let Some(u) = &attrs.mp_unreach {
        encode_mp_unreach(u.family, &u.withdrawn, ctx, out)?;
    }
    encode_common(attrs, ctx, out)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers for the per-attribute vector tests.

    use super::*;
    use crate::error::{DecodeError, UpdateError};
    use crate::DecodeContext;

    pub(crate) fn decode_attrs_ctx(
        bytes: &[u8],
        ctx: &DecodeContext,
    ) -> Result<(PathAttributes, Vec<UpdateError>), DecodeError> {
        let mut errors = Vec::new();
        let attrs = decode(bytes, ctx, &mut errors)?;
        Ok((attrs, errors))
    }

    pub(crate) fn decode_attrs(
        bytes: &[u8],
    ) -> Result<(PathAttributes, Vec<UpdateError>), DecodeError> {
        decode_attrs_ctx(bytes, &DecodeContext::four_octet())
    }

    pub(crate) fn encode_attrs(attrs: &PathAttributes, ctx: &DecodeContext) -> Vec<u8> {
        let mut out = Vec::new();
        encode_path_attributes(attrs, ctx, &mut out).unwrap();
        out
    }

    pub(crate) fn attr_both_ways_ctx(bytes: &[u8], attrs: PathAttributes, ctx: &DecodeContext) {
        let (decoded, errors) = decode_attrs_ctx(bytes, ctx).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(decoded, attrs, "decode {bytes:02x?}");
        assert_eq!(encode_attrs(&attrs, ctx), bytes, "encode {attrs:?}");
    }

    pub(crate) fn attr_both_ways(bytes: &[u8], attrs: PathAttributes) {
        attr_both_ways_ctx(bytes, attrs, &DecodeContext::four_octet());
    }

    /// The error of a malformed attribute, whether it resets the session or is reported.
    pub(crate) fn attr_error(bytes: &[u8]) -> DecodeError {
        match decode_attrs(bytes) {
            Err(e) => e,
            Ok((_, errors)) => errors.first().expect("an error").error.clone(),
        }
    }

    /// The error of an attribute that must reset the session.
    pub(crate) fn attr_reset(bytes: &[u8]) -> DecodeError {
        decode_attrs(bytes).expect_err("session reset")
    }
}
