//! The rules of one nftables table as the kernel holds them — chain and
//! comment (our fingerprint) of each, in order — read with one
//! `NFT_MSG_GETRULE` dump over nfnetlink. Listing a large table with
//! `nft -j` costs about a second of `nft`'s own CPU; the kernel's dump of
//! the same rules takes milliseconds, which is what lets a repair loop look
//! often.

use std::collections::BTreeMap;
use std::path::Path;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::netns::in_netns;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_USERDATA: u16 = 7;
/// libnftnl's rule user-data TLV holding the comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
const NFPROTO_INET: u8 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Comments of each chain's rules, in order.
pub type RuleComments = BTreeMap<String, Vec<String>>;

/// Why the dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Socket I/O.
    #[error("nfnetlink: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused (e.g. ENOENT: no such table).
    #[error("nfnetlink: the kernel answered errno {0}")]
    Kernel(i32),
    /// A reply that does not parse.
    #[error("nfnetlink: malformed reply")]
    Malformed,
    /// The ruleset changed during the dump.
    #[error("nfnetlink: the ruleset changed during the dump")]
    Interrupted,
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

impl DumpError {
    /// True when the table does not exist.
    pub fn no_table(&self) -> bool {
        matches!(self, DumpError::Kernel(e) if *e == libc::ENOENT)
    }
}

fn request(table: &str) -> Vec<u8> {
    let mut attr = table.as_bytes().to_vec();
    attr.push(0);
    let attr_len = 4 + attr.len();
    let padded = (attr_len + 3) & !3;
    let len = 16 + 4 + padded;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE).to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
    b.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    b.extend_from_slice(&NFTA_RULE_TABLE.to_ne_bytes());
    b.extend_from_slice(&attr);
    b.resize(len, 0);
    b
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Iterates `(type, value)` of the netlink attributes in `b`.
fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)? & NLA_TYPE_MASK;
        if len < 4 {
            return None;
        }
        let value = b.get(at + 4..at + len)?;
        at += (len + 3) & !3;
        Some((kind, value))
    })
}

fn c_string(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// The comment in a rule's user data, if any.
fn comment(udata: &[u8]) -> Option<String> {
    let mut at = 0;
    while at + 2 <= udata.len() {
        let (kind, len) = (udata[at], usize::from(udata[at + 1]));
        let value = udata.get(at + 2..at + 2 + len)?;
        if kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(c_string(value));
        }
        at += 2 + len;
    }
    None
}

/// Handles one reply message; `Ok(true)` when the dump is done.
fn on_message(
    kind: u16,
    flags: u16,
    body: &[u8],
    out: &mut RuleComments,
) -> Result<bool, DumpError> {
    if flags & NLM_F_DUMP_INTR != 0 {
        return Err(DumpError::Interrupted);
    }
    match kind {
        NLMSG_DONE => Ok(true),
        NLMSG_ERROR => {
            let errno = u32_at(body, 0).ok_or(DumpError::Malformed)? as i32;
            if errno == 0 {
                Ok(false)
            } else {
                Err(DumpError::Kernel(-errno))
            }
        }
        k if k == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE => {
            let rule = body.get(4..).ok_or(DumpError::Malformed)?;
            let (mut chain, mut text) = (None, String::from("<none>"));
            for (t, v) in attrs(rule) {
                match t {
                    NFTA_RULE_CHAIN => chain = Some(c_string(v)),
                    NFTA_RULE_USERDATA => text = comment(v).unwrap_or(text),
                    _ => {}
                }
            }
            out.entry(chain.ok_or(DumpError::Malformed)?)
                .or_default()
                .push(text);
            Ok(false)
        }
        _ => Ok(false),
    }
}

fn dump_here(table: &str) -> Result<RuleComments, DumpError> {
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind(&SocketAddr::new(0, 0))?;
    sock.send(&request(table), 0)?;
    let mut out = RuleComments::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    loop {
        buf.clear();
        sock.recv(&mut buf, 0)?;
        let mut at = 0;
        while at + 16 <= buf.len() {
            let len = u32_at(&buf, at).ok_or(DumpError::Malformed)? as usize;
            let kind = u16_at(&buf, at + 4).ok_or(DumpError::Malformed)?;
            let flags = u16_at(&buf, at + 6).ok_or(DumpError::Malformed)?;
            let body = buf.get(at + 16..at + len).ok_or(DumpError::Malformed)?;
            if on_message(kind, flags, body, &mut out)? {
                return Ok(out);
            }
            at += (len + 3) & !3;
        }
    }
}

/// The rules of table `inet TABLE` in the namespace at `netns`, by chain;
/// retried once when the ruleset changed during the dump.
pub fn dump(netns: Option<&Path>, table: &str) -> Result<RuleComments, DumpError> {
    let table = table.to_string();
    in_netns(netns, move || match dump_here(&table) {
        Err(DumpError::Interrupted) => dump_here(&table),
        other => other,
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_table_and_ask_for_a_dump() {
        let r = request("tortie-policy");
        assert_eq!(r.len() % 4, 0);
        assert_eq!(u32_at(&r, 0), Some(r.len() as u32));
        assert_eq!(u16_at(&r, 4), Some((10 << 8) | 7));
        assert_eq!(u16_at(&r, 6), Some(0x301));
        let (t, v) = attrs(&r[20..]).next().unwrap();
        assert_eq!((t, c_string(v).as_str()), (1, "tortie-policy"));
    }

    #[test]
    fn comments_come_from_the_rule_user_data() {
        let udata = [3u8, 2, 9, 9, 0, 5, b'a', b'b', b'c', b'd', 0];
        assert_eq!(comment(&udata).as_deref(), Some("abcd"));
        assert_eq!(comment(&[1, 1, 7]), None);
    }
}
