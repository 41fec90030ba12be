//! AS4_PATH (type 17) and AS4_AGGREGATOR (type 18), RFC 6793 §4.2: how a 2-octet
//! session carries 4-octet AS numbers, and how the receiver merges them back
//! (§4.2.3). Malformed → attribute discard (RFC 6793 §6, RFC 7606 §7.?).

use super::aggregator::Aggregator;
use super::as_path::{AsPath, AsSegment, SegmentType, AS_TRANS};

/// RFC 6793 §6: confederation segments in AS4_PATH are discarded.
pub(crate) fn strip_confed(path: AsPath) -> AsPath {
    AsPath {
        segments: path
            .segments
            .into_iter()
            .filter(|s| !s.kind.is_confed())
            .collect(),
    }
}

/// The merged path and aggregator of an UPDATE received on a 2-octet session (RFC 6793 §4.2.3).
pub(crate) fn merge(
    as_path: Option<AsPath>,
    as4_path: Option<AsPath>,
    aggregator: Option<Aggregator>,
    as4_aggregator: Option<Aggregator>,
) -> (Option<AsPath>, Option<Aggregator>) {
    // §4.2.3: an AGGREGATOR with a real 2-octet AS means a 2-octet speaker aggregated
    // after the 4-octet information was added; ignore both AS4 attributes.
    if let (Some(agg), Some(_)) = (&aggregator, &as4_aggregator) {
        if agg.asn != AS_TRANS {
            return (as_path, aggregator);
        }
    }
    let aggregator = as4_aggregator.or(aggregator);
    let path = match (as_path, as4_path) {
        (Some(p), Some(p4)) => Some(merge_paths(p, p4)),
        (p, _) => p,
    };
    (path, aggregator)
}

fn merge_paths(path: AsPath, path4: AsPath) -> AsPath {
    let (n, n4) = (path.path_len(), path4.path_len());
    if n < n4 {
        return path;
    }
    let mut keep = n - n4;
    let mut segments = Vec::new();
    for seg in path.segments {
        // Leading confederation segments are kept even when no AS number is
        // (RFC 6793 §4.2.3 last paragraph); anything else stops at `keep`.
        if keep == 0 && !seg.kind.is_confed() {
            break;
        }
        match seg.kind {
            SegmentType::Sequence => {
                let take = keep.min(seg.asns.len());
                keep -= take;
                segments.push(AsSegment {
                    kind: seg.kind,
                    asns: seg.asns[..take].to_vec(),
                });
            }
            SegmentType::Set => {
                keep -= 1;
                segments.push(seg);
            }
            _ => segments.push(seg),
        }
    }
    // Join a trailing kept sequence with a leading AS4 sequence: they are one segment.
    let mut rest = path4.segments.into_iter();
    if let (Some(last), Some(first)) = (segments.last_mut(), rest.as_slice().first()) {
        if last.kind == SegmentType::Sequence
            && first.kind == SegmentType::Sequence
            && last.asns.len() + first.asns.len() <= 255
        {
            last.asns.extend_from_slice(&first.asns);
            rest.next();
        }
    }
    segments.extend(rest);
    AsPath { segments }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways_ctx, decode_attrs_ctx};
    use super::*;
    use crate::{DecodeContext, PathAttributes};
    use std::net::Ipv4Addr;

    #[test]
    fn as4_path_restores_four_octet_numbers_hidden_behind_as_trans() {
        // AS_PATH 65001 23456 23456, AS4_PATH 4200000001 4200000002
        let bytes = [
            0x40, 2, 8, 2, 3, 0xfd, 0xe9, 0x5b, 0xa0, 0x5b, 0xa0, //
            0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0x01, 0xfa, 0x56, 0xea, 0x02,
        ];
        let (attrs, errors) = decode_attrs_ctx(&bytes, &DecodeContext::default()).unwrap();
        assert!(errors.is_empty());
        assert_eq!(
            attrs.as_path,
            Some(AsPath::from_sequence([65001, 4_200_000_001, 4_200_000_002]))
        );
    }

    #[test]
    fn as4_path_longer_than_as_path_is_ignored() {
        let p = merge_paths(
            AsPath::from_sequence([1]),
            AsPath::from_sequence([70000, 70001]),
        );
        assert_eq!(p, AsPath::from_sequence([1]));
    }

    #[test]
    fn aggregator_with_real_two_octet_as_wins_over_as4_aggregator() {
        let agg = |asn| Aggregator {
            asn,
            address: Ipv4Addr::new(192, 0, 2, 1),
        };
        let (p, a) = merge(
            Some(AsPath::from_sequence([1, AS_TRANS])),
            Some(AsPath::from_sequence([70000])),
            Some(agg(65000)),
            Some(agg(70000)),
        );
        assert_eq!(p, Some(AsPath::from_sequence([1, AS_TRANS])));
        assert_eq!(a, Some(agg(65000)));
        let (_, a) = merge(None, None, Some(agg(AS_TRANS)), Some(agg(70000)));
        assert_eq!(a, Some(agg(70000)));
    }

    #[test]
    fn encoder_emits_as_trans_and_as4_attributes_on_two_octet_sessions() {
        let attrs = PathAttributes {
            as_path: Some(AsPath::from_sequence([65001, 4_200_000_001])),
            aggregator: Some(Aggregator {
                asn: 4_200_000_001,
                address: Ipv4Addr::new(10, 0, 0, 1),
            }),
            ..Default::default()
        };
        let bytes = [
            0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0, //
            0xc0, 7, 6, 0x5b, 0xa0, 10, 0, 0, 1, //
            0xc0, 17, 10, 2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x01, //
            0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x01, 10, 0, 0, 1,
        ];
        attr_both_ways_ctx(&bytes, attrs, &DecodeContext::default());
    }

    #[test]
    fn as4_attributes_from_a_four_octet_speaker_are_discarded() {
        let bytes = [0x40, 2, 6, 2, 1, 0, 0, 0, 1, 0xc0, 17, 6, 2, 1, 0, 1, 0, 0];
        let (attrs, _) = decode_attrs_ctx(&bytes, &DecodeContext::four_octet()).unwrap();
        assert_eq!(attrs.as_path, Some(AsPath::from_sequence([1])));
    }
}
