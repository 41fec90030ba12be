//! NLRI fields: `(length, prefix)` entries (RFC 4271 §4.3, RFC 4760 §5), optionally
//! preceded by an RFC 7911 path identifier. This is the hot path of a full-table
//! load, so it is a hand-written loop over the slice rather than nom combinators:
//! one bounds check per entry, no allocation beyond the output `Vec`.

use crate::error::EncodeError;
use crate::family::{Afi, Family};
use crate::prefix::{Nlri, Prefix};
use crate::DecodeContext;

/// Whether entries carry an RFC 7911 path identifier (ADD-PATH in use for the
/// family and direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathIds {
    /// Plain `(length, prefix)` entries.
    Absent,
    /// Each entry starts with a 4-octet path identifier.
    Present,
}

impl PathIds {
    /// What `ctx` says for `family`.
    pub(crate) fn of(ctx: &DecodeContext, family: Family) -> Self {
        if ctx.has_add_path(family) {
            PathIds::Present
        } else {
            PathIds::Absent
        }
    }

    fn octets(self) -> usize {
        match self {
            PathIds::Absent => 0,
            PathIds::Present => 4,
        }
    }
}

/// Why an NLRI field could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NlriFault {
    /// A prefix length longer than the address.
    LengthTooLong,
    /// An entry runs past the end of the field.
    Truncated,
}

impl NlriFault {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            NlriFault::LengthTooLong => "prefix length longer than the address",
            NlriFault::Truncated => "prefix runs past the end of the field",
        }
    }
}

/// Decodes a whole NLRI field of IPv4 or IPv6 prefixes, appending to `out`.
pub(crate) fn decode(
    buf: &[u8],
    afi: Afi,
    ids: PathIds,
    out: &mut Vec<Nlri>,
) -> Result<(), NlriFault> {
    // Reserve for the common case: every entry the size of the first one.
    if let Some(&first) = buf.get(ids.octets()) {
        let entry = 1 + usize::from(first).div_ceil(8) + ids.octets();
        out.reserve(buf.len() / entry + 1);
    }
    match (afi, ids) {
        (Afi::Ipv6, _) => decode_v6(buf, ids, out),
        (_, PathIds::Absent) => decode_v4(buf, out),
        (_, PathIds::Present) => decode_v4_add_path(buf, out),
    }
}

#[inline(always)]
fn v4_entry(buf: &[u8], i: usize) -> Result<(Prefix, usize), NlriFault> {
    let len = buf[i];
    if len > 32 {
        return Err(NlriFault::LengthTooLong);
    }
    let n = usize::from(len).div_ceil(8);
    let end = i + 1 + n;
    if end > buf.len() {
        return Err(NlriFault::Truncated);
    }
    let bits = match buf.get(i + 1..i + 5) {
        // Four octets are readable: load them at once, the mask drops what is not ours.
        Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
        None => {
            let mut w = [0u8; 4];
            w[..n].copy_from_slice(&buf[i + 1..end]);
            u32::from_be_bytes(w)
        }
    };
    Ok((Prefix::v4_masked(bits, len), end))
}

fn decode_v4(buf: &[u8], out: &mut Vec<Nlri>) -> Result<(), NlriFault> {
    let mut i = 0;
    // Fast path: with five octets left, a length octet and its (at most four)
    // address octets are always readable, so one bounds check covers the entry.
    while let Some(&[len, a, b, c, d]) = buf.get(i..i + 5) {
        if len > 32 {
            return Err(NlriFault::LengthTooLong);
        }
        out.push(Nlri {
            path_id: None,
            prefix: Prefix::v4_masked(u32::from_be_bytes([a, b, c, d]), len),
        });
        i += 1 + usize::from(len).div_ceil(8);
    }
    while i < buf.len() {
        let (prefix, next) = v4_entry(buf, i)?;
        out.push(Nlri {
            path_id: None,
            prefix,
        });
        i = next;
    }
    Ok(())
}

fn path_id(buf: &[u8], i: usize) -> Result<u32, NlriFault> {
    // An entry needs its path id and at least the length octet.
    match buf.get(i..i + 5) {
        Some(w) => Ok(u32::from_be_bytes([w[0], w[1], w[2], w[3]])),
        None => Err(NlriFault::Truncated),
    }
}

fn decode_v4_add_path(buf: &[u8], out: &mut Vec<Nlri>) -> Result<(), NlriFault> {
    let mut i = 0;
    while i < buf.len() {
        let id = path_id(buf, i)?;
        let (prefix, next) = v4_entry(buf, i + 4)?;
        out.push(Nlri {
            path_id: Some(id),
            prefix,
        });
        i = next;
    }
    Ok(())
}

fn decode_v6(buf: &[u8], ids: PathIds, out: &mut Vec<Nlri>) -> Result<(), NlriFault> {
    let mut i = 0;
    while i < buf.len() {
        let id = if ids == PathIds::Present {
            let id = path_id(buf, i)?;
            i += 4;
            Some(id)
        } else {
            None
        };
        let len = buf[i];
        if len > 128 {
            return Err(NlriFault::LengthTooLong);
        }
        let n = usize::from(len).div_ceil(8);
        let bytes = buf.get(i + 1..i + 1 + n).ok_or(NlriFault::Truncated)?;
        let mut w = [0u8; 16];
        w[..n].copy_from_slice(bytes);
        out.push(Nlri {
            path_id: id,
            prefix: Prefix::v6_masked(u128::from_be_bytes(w), len),
        });
        i += 1 + n;
    }
    Ok(())
}

/// Octets `nlri` takes on the wire.
pub(crate) fn entry_len(nlri: &Nlri, ids: PathIds) -> usize {
    1 + nlri.prefix.wire_octets() + ids.octets()
}

/// Checks that `nlri` fits `family` and the ADD-PATH setting before it is encoded.
pub(crate) fn check(nlri: &Nlri, family: Family, ids: PathIds) -> Result<(), EncodeError> {
    let want_v4 = family.afi == Afi::Ipv4;
    if nlri.prefix.is_ipv4() != want_v4 {
        return Err(EncodeError::WrongFamily {
            what: format!("prefix {}", nlri.prefix),
            family,
        });
    }
    match (nlri.path_id, ids) {
        (None, PathIds::Present) => Err(EncodeError::MissingPathId {
            family,
            prefix: nlri.prefix.to_string(),
        }),
        (Some(_), PathIds::Absent) => Err(EncodeError::UnexpectedPathId {
            family,
            prefix: nlri.prefix.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Octets of slack [`encode_entries`] needs past the end: it copies whole
/// addresses and cuts the unused octets afterwards.
const SLACK: usize = 16;

/// Appends entries (already [`check`]ed) taking exactly `size` octets in total.
///
/// One fixed-size copy per entry into a buffer sized once, instead of a
/// variable-length copy each: this is what keeps encoding near decoding speed.
pub(crate) fn encode_entries(entries: &[Nlri], size: usize, out: &mut Vec<u8>) {
    let base = out.len();
    out.resize(base + size + SLACK, 0);
    let buf = &mut out[base..];
    let mut j = 0;
    for e in entries {
        if let Some(id) = e.path_id {
            buf[j..j + 4].copy_from_slice(&id.to_be_bytes());
            j += 4;
        }
        let len = e.prefix.len();
        match e.prefix.addr() {
            std::net::IpAddr::V4(a) => {
                let [b0, b1, b2, b3] = a.octets();
                buf[j..j + 5].copy_from_slice(&[len, b0, b1, b2, b3]);
            }
            std::net::IpAddr::V6(a) => {
                buf[j] = len;
                buf[j + 1..j + 17].copy_from_slice(&a.octets());
            }
        }
        j += 1 + e.prefix.wire_octets();
    }
    out.truncate(base + j);
}

/// Checks and appends entries of `family`.
pub(crate) fn encode_checked(
    entries: &[Nlri],
    family: Family,
    ids: PathIds,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut size = 0;
    for n in entries {
        check(n, family, ids)?;
        size += entry_len(n, ids);
    }
    encode_entries(entries, size, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_field_vector_decodes_every_length_class() {
        let bytes = [0, 8, 10, 25, 10, 1, 2, 128, 32, 192, 0, 2, 1];
        let mut out = Vec::new();
        decode(&bytes, Afi::Ipv4, PathIds::Absent, &mut out).unwrap();
        let want: Vec<Nlri> = ["0.0.0.0/0", "10.0.0.0/8", "10.1.2.128/25", "192.0.2.1/32"]
            .iter()
            .map(|s| Nlri::new(p(s)))
            .collect();
        assert_eq!(out, want);
        let mut enc = Vec::new();
        encode_checked(&want, Family::IPV4_UNICAST, PathIds::Absent, &mut enc).unwrap();
        assert_eq!(enc, bytes);
    }

    #[test]
    fn trailing_host_bits_on_the_wire_are_ignored() {
        let mut out = Vec::new();
        decode(
            &[26, 10, 244, 1, 0xff],
            Afi::Ipv4,
            PathIds::Absent,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![Nlri::new(p("10.244.1.192/26"))]);
    }

    #[test]
    fn add_path_entries_carry_their_path_id() {
        let bytes = [
            0, 0, 0, 7, 24, 10, 0, 1, 0, 0, 0, 9, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1,
        ];
        let mut out = Vec::new();
        decode(&bytes[..8], Afi::Ipv4, PathIds::Present, &mut out).unwrap();
        assert_eq!(out, vec![Nlri::with_path_id(p("10.0.1.0/24"), 7)]);
        out.clear();
        decode(&bytes[8..], Afi::Ipv6, PathIds::Present, &mut out).unwrap();
        assert_eq!(out, vec![Nlri::with_path_id(p("2001:db8:0:1::/64"), 9)]);
    }

    #[test]
    fn overlong_lengths_and_truncated_entries_are_faults() {
        let mut out = Vec::new();
        assert_eq!(
            decode(&[33, 1, 2, 3, 4, 5], Afi::Ipv4, PathIds::Absent, &mut out),
            Err(NlriFault::LengthTooLong)
        );
        assert_eq!(
            decode(&[24, 10, 0], Afi::Ipv4, PathIds::Absent, &mut out),
            Err(NlriFault::Truncated)
        );
        assert_eq!(
            decode(&[129], Afi::Ipv6, PathIds::Absent, &mut out),
            Err(NlriFault::LengthTooLong)
        );
        assert_eq!(
            decode(&[0, 0, 0], Afi::Ipv4, PathIds::Present, &mut out),
            Err(NlriFault::Truncated)
        );
    }

    #[test]
    fn encoding_checks_family_and_path_id_presence() {
        let v4 = Nlri::new(p("10.0.0.0/8"));
        assert!(check(&v4, Family::IPV4_UNICAST, PathIds::Absent).is_ok());
        assert!(matches!(
            check(&v4, Family::IPV6_UNICAST, PathIds::Absent),
            Err(EncodeError::WrongFamily { .. })
        ));
        assert!(matches!(
            check(&v4, Family::IPV4_UNICAST, PathIds::Present),
            Err(EncodeError::MissingPathId { .. })
        ));
        let with_id = Nlri::with_path_id(p("10.0.0.0/8"), 1);
        assert!(matches!(
            check(&with_id, Family::IPV4_UNICAST, PathIds::Absent),
            Err(EncodeError::UnexpectedPathId { .. })
        ));
        assert_eq!(entry_len(&with_id, PathIds::Present), 6);
    }
}
