//! The message header (RFC 4271 §4.1), framing from a byte stream (`check` then
//! `parse`, `Ok(None)` when more bytes are needed), and dispatch per message type.

use crate::context::{DecodeContext, MAX_MESSAGE_LEN};
use crate::error::{DecodeError, EncodeError};
use crate::notification::NotificationMsg;
use crate::open::OpenMsg;
use crate::route_refresh::RouteRefreshMsg;
use crate::update::UpdateMsg;

/// Length of the fixed header: marker, length, type.
pub const HEADER_LEN: usize = 19;

/// Message type codes (RFC 4271 §4.1, RFC 2918 §3).
pub mod msg_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH.
    pub const ROUTE_REFRESH: u8 = 5;
}

/// A BGP message.
// UPDATE dominates traffic and is moved, not stored: boxing it would cost an
// allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN.
    Open(OpenMsg),
    /// UPDATE.
    Update(UpdateMsg),
    /// NOTIFICATION.
    Notification(NotificationMsg),
    /// KEEPALIVE (header only).
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefreshMsg),
}

impl Message {
    /// The wire type code.
    pub fn msg_type(&self) -> u8 {
        match self {
            Message::Open(_) => msg_type::OPEN,
            Message::Update(_) => msg_type::UPDATE,
            Message::Notification(_) => msg_type::NOTIFICATION,
            Message::Keepalive => msg_type::KEEPALIVE,
            Message::RouteRefresh(_) => msg_type::ROUTE_REFRESH,
        }
    }
}

/// Framing, step one: is a whole message at the start of `buf`?
///
/// `Ok(None)`: not yet, read more. `Ok(Some(len))`: the first `len` octets are one
/// message. `Err`: the stream is broken (bad marker or length, RFC 4271 §6.1).
pub fn check(buf: &[u8], ctx: &DecodeContext) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let length = u16::from_be_bytes([header[16], header[17]]);
    let len = usize::from(length);
    if !(HEADER_LEN..=ctx.max_message_len()).contains(&len) {
        return Err(DecodeError::BadMessageLength { length });
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Framing, step two: decodes exactly one whole message (as delimited by [`check`]).
pub fn parse(msg: &[u8], ctx: &DecodeContext) -> Result<Message, DecodeError> {
    let Some(len) = check(msg, ctx)? else {
        return Err(DecodeError::BadMessageLength {
            length: msg.len().min(usize::from(u16::MAX)) as u16,
        });
    };
    let msg = &msg[..len];
    let length = len as u16;
    let body = &msg[HEADER_LEN..];
    let bad_len = || DecodeError::BadMessageLength { length };
    match msg[18] {
        // RFC 8654 §4: OPEN and KEEPALIVE stay within 4096 octets.
        msg_type::OPEN if !(29..=MAX_MESSAGE_LEN).contains(&len) => Err(bad_len()),
        msg_type::OPEN => OpenMsg::decode_body(body, length).map(Message::Open),
        msg_type::UPDATE if len < 23 => Err(bad_len()),
        msg_type::UPDATE => UpdateMsg::decode_body(body, ctx).map(Message::Update),
        msg_type::NOTIFICATION => {
            NotificationMsg::decode_body(body, length).map(Message::Notification)
        }
        msg_type::KEEPALIVE if len != HEADER_LEN => Err(bad_len()),
        msg_type::KEEPALIVE => Ok(Message::Keepalive),
        msg_type::ROUTE_REFRESH => {
            RouteRefreshMsg::decode_body(body, msg).map(Message::RouteRefresh)
        }
        t => Err(DecodeError::BadMessageType { msg_type: t }),
    }
}

/// Decodes the first message of a byte stream: `Ok(None)` when more bytes are
/// needed, else the message and how many octets it took.
pub fn decode(buf: &[u8], ctx: &DecodeContext) -> Result<Option<(Message, usize)>, DecodeError> {
    match check(buf, ctx)? {
        None => Ok(None),
        Some(len) => parse(&buf[..len], ctx).map(|m| Some((m, len))),
    }
}

/// Starts a message of type `t` at the end of `out`; returns where it starts.
pub(crate) fn begin(out: &mut Vec<u8>, t: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, t]);
    start
}

/// Completes the message started at `start`, refusing one longer than `max`.
pub(crate) fn finish(out: &mut Vec<u8>, start: usize, max: usize) -> Result<(), EncodeError> {
    let len = out.len() - start;
    if len > max {
        out.truncate(start);
        return Err(EncodeError::MessageTooLarge { len, max });
    }
    out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(())
}

/// Appends one message to `out`. Nothing is appended when it fails.
///
/// An UPDATE is written exactly as given; to split many NLRI over as many
/// UPDATEs as needed use [`crate::encode_announcements`] / [`crate::encode_withdrawals`].
pub fn encode(msg: &Message, ctx: &DecodeContext, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin(out, msg.msg_type());
    let body = match msg {
        Message::Open(m) => m.encode_body(out),
        Message::Update(m) => m.encode_body(ctx, out),
        Message::Notification(m) => {
            m.encode_body(out);
            Ok(())
        }
        Message::Keepalive => Ok(()),
        Message::RouteRefresh(m) => {
            m.encode_body(out);
            Ok(())
        }
    };
    if let Err(e) = body {
        out.truncate(start);
        return Err(e);
    }
    let max = match msg {
        Message::Open(_) | Message::Keepalive => MAX_MESSAGE_LEN,
        _ => ctx.max_message_len(),
    };
    finish(out, start, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::{cease, ErrorCode};

    fn header(len: u16, t: u8) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&len.to_be_bytes());
        v.push(t);
        v
    }

    #[test]
    fn partial_headers_and_bodies_need_more_bytes() {
        let ctx = DecodeContext::default();
        let ka = header(19, 4);
        for n in 0..19 {
            assert_eq!(check(&ka[..n], &ctx), Ok(None));
        }
        assert_eq!(check(&ka, &ctx), Ok(Some(19)));
        let n = header(23, 3);
        assert_eq!(decode(&n, &ctx), Ok(None));
    }

    #[test]
    fn keepalive_vector_both_ways() {
        let ctx = DecodeContext::default();
        let bytes = header(19, 4);
        assert_eq!(decode(&bytes, &ctx), Ok(Some((Message::Keepalive, 19))));
        let mut out = Vec::new();
        encode(&Message::Keepalive, &ctx, &mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn notification_vector_both_ways() {
        let ctx = DecodeContext::default();
        let mut bytes = header(25, 3);
        bytes.extend_from_slice(&[6, 2, 3, b'b', b'y', b'e']);
        let n = NotificationMsg::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "bye").unwrap();
        assert_eq!(parse(&bytes, &ctx), Ok(Message::Notification(n.clone())));
        let mut out = Vec::new();
        encode(&Message::Notification(n), &ctx, &mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn header_errors_are_rfc4271_message_header_errors() {
        let ctx = DecodeContext::default();
        let mut bad_marker = header(19, 4);
        bad_marker[3] = 0;
        assert_eq!(
            check(&bad_marker, &ctx),
            Err(DecodeError::ConnectionNotSynchronized)
        );
        assert_eq!(
            check(&header(18, 4), &ctx),
            Err(DecodeError::BadMessageLength { length: 18 })
        );
        assert_eq!(
            check(&header(4097, 2), &ctx),
            Err(DecodeError::BadMessageLength { length: 4097 })
        );
        assert_eq!(
            parse(&header(19, 9), &ctx),
            Err(DecodeError::BadMessageType { msg_type: 9 })
        );
        let mut long_ka = header(20, 4);
        long_ka.push(0);
        assert_eq!(
            parse(&long_ka, &ctx),
            Err(DecodeError::BadMessageLength { length: 20 })
        );
        let mut short_n = header(20, 3);
        short_n.push(6);
        assert_eq!(
            parse(&short_n, &ctx),
            Err(DecodeError::BadMessageLength { length: 20 })
        );
        let n = NotificationMsg::from(&DecodeError::BadMessageLength { length: 20 });
        assert_eq!(n.code, ErrorCode::MessageHeader);
    }

    #[test]
    fn extended_messages_raise_the_limit_except_for_open_and_keepalive() {
        let ext = DecodeContext {
            extended_message: true,
            ..Default::default()
        };
        assert_eq!(check(&header(5000, 2), &ext), Ok(None));
        let mut open = header(5000, 1);
        open.resize(5000, 0);
        assert_eq!(
            parse(&open, &ext),
            Err(DecodeError::BadMessageLength { length: 5000 })
        );
    }

    #[test]
    fn oversized_messages_are_refused_and_nothing_is_written() {
        let n = NotificationMsg::new(ErrorCode::Cease, 0, vec![0; 5000]);
        let mut out = vec![1, 2, 3];
        let e = encode(
            &Message::Notification(n),
            &DecodeContext::default(),
            &mut out,
        )
        .unwrap_err();
        assert_eq!(
            e,
            EncodeError::MessageTooLarge {
                len: 5021,
                max: 4096
            }
        );
        assert_eq!(out, [1, 2, 3]);
    }
}
