//! The properties the fuzz targets check, shared with the regression test that
//! replays `fuzz/regressions/` (included by both with `#[path]`).
//!
//! Input layout: the first octet selects the session parameters, the rest is
//! the bytes to decode.

use tortie_bgp_wire::{
    decode, decode_path_attributes, encode, encode_path_attributes, DecodeContext, Family, Message,
    NotificationMsg,
};

/// Session parameters chosen by the bits of `selector`.
pub fn context_from(selector: u8) -> DecodeContext {
    let mut add_path = Vec::new();
    if selector & 2 != 0 {
        add_path.push(Family::IPV4_UNICAST);
    }
    if selector & 4 != 0 {
        add_path.push(Family::IPV6_UNICAST);
    }
    DecodeContext {
        four_octet_as: selector & 1 != 0,
        add_path,
        extended_message: selector & 8 != 0,
        extended_next_hop: Vec::new(),
    }
}

fn normalize(msg: Message) -> Message {
    match msg {
        Message::Update(mut u) => {
            u.errors.clear();
            Message::Update(u)
        }
        m => m,
    }
}

/// Decoding never panics; errors map to a NOTIFICATION; what decodes re-encodes
/// and decodes to the same value (exactly so on 4-octet sessions).
pub fn check_message(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let ctx = context_from(selector);
    let (msg, used) = match decode(bytes, &ctx) {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            let _ = NotificationMsg::from(&e).to_string();
            return;
        }
    };
    assert!(used <= bytes.len());
    let mut out = Vec::new();
    if encode(&msg, &ctx, &mut out).is_err() {
        // Only growth on 2-octet sessions (AS4_PATH added) can make it not fit.
        assert!(!ctx.four_octet_as, "re-encoding failed for {msg:?}");
        return;
    }
    let (again, len) = decode(&out, &ctx)
        .unwrap_or_else(|e| panic!("re-encoded message does not decode: {e:?}\n{msg:?}"))
        .expect("re-encoded message is complete");
    assert_eq!(len, out.len());
    if ctx.four_octet_as {
        assert_eq!(normalize(again), normalize(msg));
    }
}

/// The same properties for a bare attribute list.
pub fn check_attributes(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let ctx = context_from(selector);
    let Ok((attrs, _errors)) = decode_path_attributes(bytes, &ctx) else {
        return;
    };
    let mut out = Vec::new();
    encode_path_attributes(&attrs, &ctx, &mut out).expect("decoded attributes re-encode");
    let (again, _) = decode_path_attributes(&out, &ctx).expect("re-encoded attributes decode");
    if ctx.four_octet_as {
        assert_eq!(again, attrs);
    }
}
