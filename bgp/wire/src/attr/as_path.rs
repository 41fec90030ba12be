//! AS_PATH (type 2, RFC 4271 §5.1.2) with 2- or 4-octet AS numbers (RFC 6793 §3),
//! AS_SET/AS_SEQUENCE and confederation segments (RFC 5065 §3).
//! Malformed → treat-as-withdraw (RFC 7606 §7.2).

use crate::error::DecodeError;

/// AS_TRANS (RFC 6793 §9): stands in for a 4-octet AS on 2-octet sessions.
pub const AS_TRANS: u32 = 23456;

/// Path segment types (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentType {
    /// 1: AS_SET, unordered.
    Set,
    /// 2: AS_SEQUENCE, ordered.
    Sequence,
    /// 3: AS_CONFED_SEQUENCE.
    ConfedSequence,
    /// 4: AS_CONFED_SET.
    ConfedSet,
}

impl SegmentType {
    fn code(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return None,
        })
    }

    /// True for the RFC 5065 confederation segment types.
    pub fn is_confed(self) -> bool {
        matches!(self, SegmentType::ConfedSequence | SegmentType::ConfedSet)
    }
}

/// One AS_PATH segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// AS numbers (1..=255 of them on the wire per segment).
    pub asns: Vec<u32>,
}

/// An AS_PATH: segments in wire order, AS numbers always 4 octets wide here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    /// The segments.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty input gives the empty path).
    pub fn from_sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Path length for best-path selection (RFC 4271 §9.1.2.2 a): a set counts 1,
    /// confederation segments count 0 (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                _ => 0,
            })
            .sum()
    }

    /// The first AS of the first AS_SEQUENCE (the neighbour AS, RFC 4271 §6.3).
    pub fn first_as(&self) -> Option<u32> {
        let s = self.segments.first()?;
        (s.kind == SegmentType::Sequence)
            .then(|| s.asns.first().copied())
            .flatten()
    }

    /// True when any AS number needs 4 octets.
    pub fn has_four_octet_as(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .any(|&a| a > 0xffff)
    }

    /// The same path with every 4-octet AS replaced by [`AS_TRANS`] (RFC 6793 §4.2.2).
    pub fn to_two_octet(&self) -> AsPath {
        let mut p = self.clone();
        for a in p.segments.iter_mut().flat_map(|s| s.asns.iter_mut()) {
            if *a > 0xffff {
                *a = AS_TRANS;
            }
        }
        p
    }
}

/// Decodes an AS_PATH (or AS4_PATH) value with `as_size` octets per AS (2 or 4).
pub(crate) fn decode_value(mut value: &[u8], as_size: usize) -> Result<AsPath, DecodeError> {
    let mut segments = Vec::new();
    while !value.is_empty() {
        let (seg, rest) = segment(value, as_size).ok_or(DecodeError::MalformedAsPath)?;
        segments.push(seg);
        value = rest;
    }
    Ok(AsPath { segments })
}

fn segment(input: &[u8], as_size: usize) -> Option<(AsSegment, &[u8])> {
    let (&kind, input) = input.split_first()?;
    let (&count, input) = input.split_first()?;
    let kind = SegmentType::from_code(kind)?;
    // RFC 7606 §7.2: a zero-length segment is malformed.
    if count == 0 {
        return None;
    }
    let n = usize::from(count) * as_size;
    let body = input.get(..n)?;
    let asns = body
        .chunks_exact(as_size)
        .map(|c| match *c {
            [a, b] => u32::from(u16::from_be_bytes([a, b])),
            [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        })
        .collect();
    Some((AsSegment { kind, asns }, &input[n..]))
}

/// Appends an AS_PATH value with `as_size` octets per AS; segments longer than
/// 255 AS numbers are split into consecutive segments of the same type.
pub(crate) fn encode_value(path: &AsPath, as_size: usize, out: &mut Vec<u8>) {
    for seg in &path.segments {
        for chunk in seg.asns.chunks(255) {
            out.push(seg.kind.code());
            out.push(chunk.len() as u8);
            for &a in chunk {
                if as_size == 2 {
                    out.extend_from_slice(&(a.min(0xffff) as u16).to_be_bytes());
                } else {
                    out.extend_from_slice(&a.to_be_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{attr_both_ways, attr_both_ways_ctx, attr_error};
    use super::*;
    use crate::{DecodeContext, PathAttributes};

    fn with_path(p: AsPath) -> PathAttributes {
        PathAttributes {
            as_path: Some(p),
            ..Default::default()
        }
    }

    #[test]
    fn four_octet_sequence_vector() {
        attr_both_ways(
            &[0x40, 2, 10, 2, 2, 0, 0, 0xfd, 0xe8, 0, 1, 0, 0],
            with_path(AsPath::from_sequence([65000, 65536])),
        );
    }

    #[test]
    fn two_octet_set_and_sequence_vector() {
        let path = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![65001, 65002],
                },
                AsSegment {
                    kind: SegmentType::Set,
                    asns: vec![1, 2],
                },
            ],
        };
        attr_both_ways_ctx(
            &[0x40, 2, 12, 2, 2, 0xfd, 0xe9, 0xfd, 0xea, 1, 2, 0, 1, 0, 2],
            with_path(path),
            &DecodeContext::default(),
        );
    }

    #[test]
    fn confederation_segments_vector_and_path_length() {
        let path = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![64512],
                },
                AsSegment {
                    kind: SegmentType::ConfedSet,
                    asns: vec![64513],
                },
                AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![1, 2],
                },
                AsSegment {
                    kind: SegmentType::Set,
                    asns: vec![3, 4, 5],
                },
            ],
        };
        assert_eq!(path.path_len(), 3);
        assert_eq!(path.first_as(), None);
        let mut bytes = vec![0x40, 2, 0];
        for (t, asns) in [
            (3u8, &[64512u32][..]),
            (4, &[64513]),
            (2, &[1, 2]),
            (1, &[3, 4, 5]),
        ] {
            bytes.push(t);
            bytes.push(asns.len() as u8);
            for a in asns {
                bytes.extend_from_slice(&a.to_be_bytes());
            }
        }
        bytes[2] = (bytes.len() - 3) as u8;
        attr_both_ways(&bytes, with_path(path));
    }

    #[test]
    fn empty_as_path_vector() {
        attr_both_ways(&[0x40, 2, 0], with_path(AsPath::default()));
    }

    #[test]
    fn long_sequences_are_split_into_255_as_segments() {
        let p = AsPath::from_sequence(1..=300);
        let mut out = Vec::new();
        encode_value(&p, 4, &mut out);
        assert_eq!(out.len(), 2 + 255 * 4 + 2 + 45 * 4);
        let back = decode_value(&out, 4).unwrap();
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.path_len(), 300);
    }

    #[test]
    fn bad_segment_type_zero_count_or_overrun_is_malformed() {
        for v in [&[5u8, 1, 0, 0, 0, 1][..], &[2, 0], &[2, 2, 0, 0, 0, 1]] {
            let mut bytes = vec![0x40, 2, v.len() as u8];
            bytes.extend_from_slice(v);
            assert_eq!(attr_error(&bytes), DecodeError::MalformedAsPath, "{v:?}");
        }
    }

    #[test]
    fn four_octet_numbers_become_as_trans_for_old_speakers() {
        let p = AsPath::from_sequence([65000, 4_200_000_000]);
        assert!(p.has_four_octet_as());
        assert_eq!(p.to_two_octet(), AsPath::from_sequence([65000, AS_TRANS]));
        assert_eq!(p.first_as(), Some(65000));
    }
}
