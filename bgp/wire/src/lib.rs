//! BGP-4 wire codec: turns bytes into typed BGP messages and back, and turns every
//! malformed input into the NOTIFICATION (or RFC 7606 action) the RFCs prescribe.
//!
//! **Must not:** do I/O, read clocks, log, know about sessions or the RIB, or panic
//! on peer input. (`nom` is used inside and never appears in the API.)
//!
//! **Implements:** RFC 4271 (§4 messages, §5 attributes, §6 errors), RFC 1997,
//! RFC 2545, RFC 2918, RFC 4360, RFC 4456, RFC 4486, RFC 4724 (capability, End-of-RIB),
//! RFC 4760, RFC 5065 (segments), RFC 5492, RFC 6608 (subcodes), RFC 6793, RFC 7313,
//! RFC 7606, RFC 7911, RFC 8092, RFC 8538 (subcode, N bit), RFC 8654, RFC 8950,
//! RFC 9003, RFC 9072. Section-level map: `docs/rfc-coverage.md`.
//!
//! # API overview
//!
//! | what | items |
//! |---|---|
//! | decode from a stream | [`check`] (→ `Ok(None)` = need more bytes, `Ok(Some(len))`), then [`parse`]; or [`decode`] doing both |
//! | encode | [`encode`] (one message), [`encode_announcements`] / [`encode_withdrawals`] (packs NLRI into as few UPDATEs as fit) |
//! | attribute lists alone | [`decode_path_attributes`] / [`encode_path_attributes`] (e.g. for MRT/BMP or fuzzing) |
//! | session parameters | [`DecodeContext`] (4-octet AS, ADD-PATH families, extended messages, extended next hop); [`DecodeContext::negotiated`] from both OPENs |
//! | messages | [`Message`] = [`OpenMsg`] / [`UpdateMsg`] / [`NotificationMsg`] / `Keepalive` / [`RouteRefreshMsg`] |
//! | OPEN | [`Capability`] and its value types ([`GracefulRestartCap`], [`AddPathFamily`], [`ExtendedNextHopEntry`]) |
//! | UPDATE | [`PathAttributes`] (one field per attribute), [`AsPath`], [`MpReach`]/[`MpUnreach`], [`NextHop`], [`Community`], [`ExtendedCommunity`], [`LargeCommunity`], [`RawAttribute`]; [`UpdateMsg::end_of_rib`] |
//! | prefixes | [`Prefix`] (Copy, host bits zero), [`Nlri`] (prefix + optional RFC 7911 path id), [`Family`] = [`Afi`] + [`Safi`] |
//! | errors | [`DecodeError`] (each variant *is* an RFC 4271 §6 error; `NotificationMsg::from(&err)`), [`UpdateError`] + [`ErrorAction`] (RFC 7606, in `UpdateMsg::errors`), [`EncodeError`] |
//!
//! ```
//! use tortie_bgp_wire::{decode, encode, DecodeContext, Message, NotificationMsg};
//! let ctx = DecodeContext::four_octet();
//! let mut bytes = Vec::new();
//! encode(&Message::Keepalive, &ctx, &mut bytes).unwrap();
//! assert_eq!(decode(&bytes[..10], &ctx), Ok(None)); // need more bytes
//! let (msg, used) = decode(&bytes, &ctx).unwrap().unwrap();
//! assert_eq!((msg, used), (Message::Keepalive, 19));
//! bytes[0] = 0; // broken marker → the NOTIFICATION to send
//! let err = decode(&bytes, &ctx).unwrap_err();
//! assert_eq!(NotificationMsg::from(&err).describe(), "Message Header Error / Connection Not Synchronized");
//! ```

pub mod attr;
pub mod capability;
mod context;
mod error;
mod family;
mod message;
mod nlri;
pub mod notification;
mod open;
mod pack;
mod prefix;
mod route_refresh;
mod update;

pub use attr::{
    decode_path_attributes, encode_path_attributes, Aggregator, AsPath, AsSegment, Community,
    ExtendedCommunity, LargeCommunity, MpReach, MpUnreach, NextHop, Origin, PathAttributes,
    RawAttribute, SegmentType, AS_TRANS,
};
pub use capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHopEntry, GracefulRestartCap,
    GracefulRestartFamily,
};
pub use context::{DecodeContext, Direction, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
pub use error::{DecodeError, EncodeError, ErrorAction, UpdateError};
pub use family::{Afi, Family, Safi};
pub use message::{check, decode, encode, msg_type, parse, Message, HEADER_LEN};
pub use notification::{ErrorCode, NotificationMsg, ShutdownCommunicationError};
pub use open::OpenMsg;
pub use pack::{encode_announcements, encode_withdrawals};
pub use prefix::{Nlri, Prefix, PrefixError};
pub use route_refresh::{RouteRefreshMsg, RouteRefreshSubtype};
pub use update::UpdateMsg;
