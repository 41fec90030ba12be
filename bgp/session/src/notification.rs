//! NOTIFICATION codes (RFC 4271 §4.5, §6; RFC 4486 Cease subcodes; RFC 6608
//! FSM error subcodes; RFC 5492 capability errors) and their words.

use std::fmt;

/// NOTIFICATION error codes, RFC 4271 §4.5.
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open_subcode {
    /// Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492 §5).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Cease subcodes (RFC 4486 §4).
pub mod cease_subcode {
    /// Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown.
    pub const ADMIN_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset.
    pub const ADMIN_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const CONFIG_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
}

/// FSM error subcodes (RFC 6608 §3).
pub mod fsm_subcode {
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// A NOTIFICATION's content, independent of the wire codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code (RFC 4271 §4.5).
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data field.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: u8, subcode: u8) -> Self {
        Self {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A NOTIFICATION with data.
    pub fn with_data(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }

    /// Cease with the given subcode (RFC 4486).
    pub fn cease(subcode: u8) -> Self {
        Self::new(code::CEASE, subcode)
    }

    /// Hold Timer Expired (RFC 4271 §6.5).
    pub fn hold_timer_expired() -> Self {
        Self::new(code::HOLD_TIMER_EXPIRED, 0)
    }

    /// The error code in words.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown error code",
        }
    }

    /// The subcode in words (empty when the code has no subcodes).
    pub fn subcode_name(&self) -> &'static str {
        match (self.code, self.subcode) {
            (_, 0) => "",
            (code::MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (code::MESSAGE_HEADER, 2) => "Bad Message Length",
            (code::MESSAGE_HEADER, 3) => "Bad Message Type",
            (code::OPEN_MESSAGE, s) => open_subcode_name(s),
            (code::UPDATE_MESSAGE, s) => update_subcode_name(s),
            (code::FSM, 1) => "Unexpected Message in OpenSent",
            (code::FSM, 2) => "Unexpected Message in OpenConfirm",
            (code::FSM, 3) => "Unexpected Message in Established",
            (code::CEASE, s) => cease_subcode_name(s),
            (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
            _ => "Unknown subcode",
        }
    }
}

fn open_subcode_name(s: u8) -> &'static str {
    match s {
        1 => "Unsupported Version Number",
        2 => "Bad Peer AS",
        3 => "Bad BGP Identifier",
        4 => "Unsupported Optional Parameter",
        6 => "Unacceptable Hold Time",
        7 => "Unsupported Capability",
        _ => "Unknown subcode",
    }
}

fn update_subcode_name(s: u8) -> &'static str {
    match s {
        1 => "Malformed Attribute List",
        2 => "Unrecognized Well-known Attribute",
        3 => "Missing Well-known Attribute",
        4 => "Attribute Flags Error",
        5 => "Attribute Length Error",
        6 => "Invalid ORIGIN Attribute",
        8 => "Invalid NEXT_HOP Attribute",
        9 => "Optional Attribute Error",
        10 => "Invalid Network Field",
        11 => "Malformed AS_PATH",
        _ => "Unknown subcode",
    }
}

fn cease_subcode_name(s: u8) -> &'static str {
    match s {
        1 => "Maximum Number of Prefixes Reached",
        2 => "Administrative Shutdown",
        3 => "Peer De-configured",
        4 => "Administrative Reset",
        5 => "Connection Rejected",
        6 => "Other Configuration Change",
        7 => "Connection Collision Resolution",
        8 => "Out of Resources",
        9 => "Hard Reset",
        _ => "Unknown subcode",
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sub = self.subcode_name();
        if sub.is_empty() {
            write!(f, "{} ({})", self.code_name(), self.code)
        } else {
            write!(
                f,
                "{} / {} ({}/{})",
                self.code_name(),
                sub,
                self.code,
                self.subcode
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_read_as_words() {
        assert_eq!(
            Notification::cease(cease_subcode::MAX_PREFIXES).to_string(),
            "Cease / Maximum Number of Prefixes Reached (6/1)"
        );
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "Hold Timer Expired (4)"
        );
        assert_eq!(
            Notification::new(code::OPEN_MESSAGE, open_subcode::UNACCEPTABLE_HOLD_TIME).to_string(),
            "OPEN Message Error / Unacceptable Hold Time (2/6)"
        );
    }
}
