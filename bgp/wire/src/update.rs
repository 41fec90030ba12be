//! UPDATE (RFC 4271 §4.3): withdrawn routes, path attributes and NLRI, with the
//! RFC 7606 revised error handling and End-of-RIB markers (RFC 4724 §2).

use crate::attr::{self, type_code as tc, MpUnreach, PathAttributes};
use crate::error::{DecodeError, EncodeError, ErrorAction, UpdateError};
use crate::family::{Afi, Family};
use crate::nlri::{self, PathIds};
use crate::prefix::Nlri;
use crate::DecodeContext;

/// An UPDATE message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UpdateMsg {
    /// Withdrawn IPv4 unicast routes (the Withdrawn Routes field).
    pub withdrawn: Vec<Nlri>,
    /// Path attributes, MP_REACH_NLRI/MP_UNREACH_NLRI included.
    pub attributes: PathAttributes,
    /// Announced IPv4 unicast routes (the NLRI field).
    pub nlri: Vec<Nlri>,
    /// RFC 7606 problems found while decoding, most severe first. Empty for
    /// messages built locally; the encoder ignores it.
    pub errors: Vec<UpdateError>,
}

impl UpdateMsg {
    /// The End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4
    /// unicast, an UPDATE with only an empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(family: Family) -> Self {
        let mut msg = UpdateMsg::default();
        if family != Family::IPV4_UNICAST {
            msg.attributes.mp_unreach = Some(MpUnreach {
                family,
                withdrawn: Vec::new(),
            });
        }
        msg
    }

    /// The family this UPDATE marks End-of-RIB for, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let bare = PathAttributes {
            mp_unreach: self.attributes.mp_unreach.clone(),
            ..Default::default()
        };
        if bare != self.attributes {
            return None;
        }
        match &self.attributes.mp_unreach {
            None => Some(Family::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
    }

    /// The most severe RFC 7606 action the decoder reported, if any.
    pub fn action(&self) -> Option<ErrorAction> {
        self.errors.iter().map(|e| e.action).max()
    }

    /// True when RFC 7606 makes every announcement of this UPDATE (IPv4
    /// NLRI and MP_REACH) a withdrawal ([`ErrorAction::withdraws_announcements`]
    /// of the most severe reported action). Its withdrawals still apply.
    pub fn announcements_withdrawn(&self) -> bool {
        self.action()
            .is_some_and(ErrorAction::withdraws_announcements)
    }

    /// Decodes an UPDATE body (after the 19-octet header).
    pub(crate) fn decode_body(body: &[u8], ctx: &DecodeContext) -> Result<Self, DecodeError> {
        let (withdrawn_field, rest) =
            length_prefixed(body, "withdrawn routes length overruns the message")?;
        let (attr_field, nlri_field) =
            length_prefixed(rest, "total path attribute length overruns the message")?;
        let v4_ids = PathIds::of(ctx, Family::IPV4_UNICAST);
        let mut withdrawn = Vec::new();
        // RFC 7606 §5.3: an unparsable prefix field leaves nothing to withdraw reliably.
        nlri::decode(withdrawn_field, Afi::Ipv4, v4_ids, &mut withdrawn)
            .map_err(|f| DecodeError::InvalidNetworkField { reason: f.reason() })?;
        let mut errors = Vec::new();
        let attributes = attr::decode(attr_field, ctx, &mut errors)?;
        let mut nlri = Vec::new();
        nlri::decode(nlri_field, Afi::Ipv4, v4_ids, &mut nlri)
            .map_err(|f| DecodeError::InvalidNetworkField { reason: f.reason() })?;
        let mut msg = UpdateMsg {
            withdrawn,
            attributes,
            nlri,
            errors,
        };
        msg.check_mandatory();
        // Most severe first; stable, so wire order within one severity.
        msg.errors.sort_by_key(|e| std::cmp::Reverse(e.action));
        Ok(msg)
    }

    /// RFC 4271 §5 / RFC 7606 §3 (d): ORIGIN and AS_PATH with any NLRI, NEXT_HOP
    /// with IPv4 NLRI in the NLRI field; a missing one means treat-as-withdraw.
    fn check_mandatory(&mut self) {
        let has_mp_nlri = self
            .attributes
            .mp_reach
            .as_ref()
            .is_some_and(|r| !r.nlri.is_empty());
        if self.nlri.is_empty() && !has_mp_nlri {
            return;
        }
        let a = &self.attributes;
        let mut missing = Vec::new();
        if a.origin.is_none() {
            missing.push(tc::ORIGIN);
        }
        if a.as_path.is_none() {
            missing.push(tc::AS_PATH);
        }
        if a.next_hop.is_none() && !self.nlri.is_empty() {
            missing.push(tc::NEXT_HOP);
        }
        for type_code in missing {
            // Already reported as malformed: one report per attribute is enough.
            if self.errors.iter().any(|e| e.type_code == type_code) {
                continue;
            }
            self.errors.push(UpdateError {
                action: ErrorAction::TreatAsWithdraw,
                type_code,
                family: None,
                error: DecodeError::MissingWellKnownAttribute { type_code },
            });
        }
    }

    /// Appends the body (after the header) exactly as this value describes it.
    pub(crate) fn encode_body(
        &self,
        ctx: &DecodeContext,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let v4_ids = PathIds::of(ctx, Family::IPV4_UNICAST);
        let wd_start = out.len();
        out.extend_from_slice(&[0, 0]);
        nlri::encode_checked(&self.withdrawn, Family::IPV4_UNICAST, v4_ids, out)?;
        patch_len(out, wd_start, "withdrawn routes length")?;
        let at_start = out.len();
        out.extend_from_slice(&[0, 0]);
        attr::encode_path_attributes(&self.attributes, ctx, out)?;
        patch_len(out, at_start, "total path attribute length")?;
        nlri::encode_checked(&self.nlri, Family::IPV4_UNICAST, v4_ids, out)?;
        Ok(())
    }
}

/// Splits `input` at a 2-octet length prefix.
fn length_prefixed<'a>(
    input: &'a [u8],
    reason: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    let err = || DecodeError::MalformedAttributeList { reason };
    let [a, b, rest @ ..] = input else {
        return Err(err());
    };
    let len = usize::from(u16::from_be_bytes([*a, *b]));
    if len > rest.len() {
        return Err(err());
    }
    Ok(rest.split_at(len))
}

/// Writes the length of what follows the 2-octet field at `start`.
pub(crate) fn patch_len(
    out: &mut [u8],
    start: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    let len = out.len() - start - 2;
    let len16 = u16::try_from(len).map_err(|_| EncodeError::ValueTooLarge {
        what,
        len,
        max: 65535,
    })?;
    out[start..start + 2].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{AsPath, Origin};
    use std::net::Ipv4Addr;

    fn p(s: &str) -> Nlri {
        Nlri::new(s.parse().unwrap())
    }

    #[test]
    fn ipv4_announcement_vector_both_ways() {
        let bytes = [
            0, 2, 8, 10, // withdrawn 10.0.0.0/8
            0, 14, 0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 0, 1, // attributes
            26, 10, 244, 1, 64, // NLRI 10.244.1.64/26
        ];
        let msg = UpdateMsg {
            withdrawn: vec![p("10.0.0.0/8")],
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
                ..Default::default()
            },
            nlri: vec![p("10.244.1.64/26")],
            errors: vec![],
        };
        let ctx = DecodeContext::four_octet();
        assert_eq!(UpdateMsg::decode_body(&bytes, &ctx).unwrap(), msg);
        let mut out = Vec::new();
        msg.encode_body(&ctx, &mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn end_of_rib_markers_for_every_family() {
        for f in [
            Family::IPV4_UNICAST,
            Family::IPV6_UNICAST,
            Family::new(1, 2),
            Family::new(2, 2),
        ] {
            let eor = UpdateMsg::end_of_rib(f);
            assert_eq!(eor.end_of_rib_family(), Some(f));
            let mut out = Vec::new();
            eor.encode_body(&DecodeContext::default(), &mut out)
                .unwrap();
            let back = UpdateMsg::decode_body(&out, &DecodeContext::default()).unwrap();
            assert_eq!(back.end_of_rib_family(), Some(f));
        }
        assert_eq!(UpdateMsg::end_of_rib(Family::IPV4_UNICAST).encode_len(), 4);
    }

    impl UpdateMsg {
        fn encode_len(&self) -> usize {
            let mut out = Vec::new();
            self.encode_body(&DecodeContext::default(), &mut out)
                .unwrap();
            out.len()
        }
    }

    #[test]
    fn missing_mandatory_attributes_mean_treat_as_withdraw() {
        // NLRI with only ORIGIN.
        let bytes = [0, 0, 0, 4, 0x40, 1, 1, 0, 8, 10];
        let msg = UpdateMsg::decode_body(&bytes, &DecodeContext::four_octet()).unwrap();
        assert_eq!(msg.action(), Some(ErrorAction::TreatAsWithdraw));
        let missing: Vec<u8> = msg.errors.iter().map(|e| e.type_code).collect();
        assert_eq!(missing, vec![tc::AS_PATH, tc::NEXT_HOP]);
        assert_eq!(msg.nlri, vec![p("10.0.0.0/8")]);
        assert!(msg.announcements_withdrawn());
    }

    #[test]
    fn only_attribute_discard_leaves_announcements_usable() {
        // ATOMIC_AGGREGATE with a value, the rest well formed.
        let bytes = [
            0, 0, 0, 18, 0x40, 6, 1, 0, 0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 0, 1, 8, 10,
        ];
        let msg = UpdateMsg::decode_body(&bytes, &DecodeContext::default()).unwrap();
        assert_eq!(msg.action(), Some(ErrorAction::AttributeDiscard));
        assert!(!msg.announcements_withdrawn());
        let severity = [
            ErrorAction::AttributeDiscard,
            ErrorAction::TreatAsWithdraw,
            ErrorAction::AfiSafiDisable,
            ErrorAction::SessionReset,
        ];
        let withdraws: Vec<bool> = severity
            .iter()
            .map(|a| a.withdraws_announcements())
            .collect();
        assert_eq!(withdraws, [false, true, true, true]);
    }

    #[test]
    fn withdrawal_only_updates_need_no_attributes() {
        let msg = UpdateMsg::decode_body(&[0, 2, 8, 10, 0, 0], &DecodeContext::default()).unwrap();
        assert!(msg.errors.is_empty());
        assert_eq!(msg.action(), None);
    }

    #[test]
    fn reports_are_ordered_most_severe_first() {
        // ATOMIC_AGGREGATE with a value (discard), then a bad ORIGIN (withdraw).
        let bytes = [
            0, 0, 0, 14, 0x40, 6, 1, 0, 0x40, 1, 1, 9, 0x40, 2, 0, 0x40, 3, 0,
        ];
        let msg = UpdateMsg::decode_body(&bytes, &DecodeContext::default()).unwrap();
        let actions: Vec<ErrorAction> = msg.errors.iter().map(|e| e.action).collect();
        assert_eq!(actions[0], ErrorAction::TreatAsWithdraw);
        assert_eq!(*actions.last().unwrap(), ErrorAction::AttributeDiscard);
    }

    #[test]
    fn inconsistent_field_lengths_are_a_malformed_attribute_list() {
        for bytes in [&[0u8, 5, 8][..], &[0, 0, 0, 9, 0x40], &[0]] {
            let e = UpdateMsg::decode_body(bytes, &DecodeContext::default()).unwrap_err();
            assert!(
                matches!(e, DecodeError::MalformedAttributeList { .. }),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn unparsable_nlri_is_an_invalid_network_field() {
        let e = UpdateMsg::decode_body(&[0, 0, 0, 0, 40, 1, 2, 3, 4, 5], &DecodeContext::default())
            .unwrap_err();
        assert!(matches!(e, DecodeError::InvalidNetworkField { .. }));
    }
}
