//! NOTIFICATION (RFC 4271 §4.5), its codes (RFC 4271 §6, RFC 4486, RFC 6608,
//! RFC 7313, RFC 8538), the RFC 9003 shutdown communication, and the one place
//! where a [`DecodeError`] becomes the NOTIFICATION to send.

use std::fmt;

use crate::error::{DecodeError, EncodeError};

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader,
    /// 2: OPEN Message Error.
    Open,
    /// 3: UPDATE Message Error.
    Update,
    /// 4: Hold Timer Expired.
    HoldTimerExpired,
    /// 5: Finite State Machine Error.
    Fsm,
    /// 6: Cease.
    Cease,
    /// 7: ROUTE-REFRESH Message Error (RFC 7313).
    RouteRefresh,
    /// Any other code, kept as received.
    Other(u8),
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            ErrorCode::MessageHeader => 1,
            ErrorCode::Open => 2,
            ErrorCode::Update => 3,
            ErrorCode::HoldTimerExpired => 4,
            ErrorCode::Fsm => 5,
            ErrorCode::Cease => 6,
            ErrorCode::RouteRefresh => 7,
            ErrorCode::Other(c) => c,
        }
    }
}

impl From<u8> for ErrorCode {
    fn from(c: u8) -> Self {
        match c {
            1 => ErrorCode::MessageHeader,
            2 => ErrorCode::Open,
            3 => ErrorCode::Update,
            4 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::Fsm,
            6 => ErrorCode::Cease,
            7 => ErrorCode::RouteRefresh,
            c => ErrorCode::Other(c),
        }
    }
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    /// 1: Connection Not Synchronized.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// 2: Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// 3: Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5).
pub mod open {
    /// 0: Unspecific.
    pub const UNSPECIFIC: u8 = 0;
    /// 1: Unsupported Version Number.
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    /// 2: Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// 3: Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// 4: Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// 6: Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// 7: Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    /// 1: Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// 2: Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// 3: Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// 4: Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// 5: Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// 6: Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// 8: Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// 9: Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// 10: Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// 11: Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608 §3).
pub mod fsm {
    /// 0: Unspecified Error.
    pub const UNSPECIFIED: u8 = 0;
    /// 1: Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// 2: Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// 3: Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486 §4, RFC 8538 §5, RFC 9384).
pub mod cease {
    /// 1: Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// 2: Administrative Shutdown (may carry an RFC 9003 communication).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// 3: Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// 4: Administrative Reset (may carry an RFC 9003 communication).
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// 5: Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// 6: Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// 7: Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// 8: Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// 9: Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
    /// 10: BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh {
    /// 1: Invalid Message Length.
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// Longest RFC 9003 shutdown communication, in octets of UTF-8.
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NotificationMsg {
    /// Error code.
    pub code: ErrorCode,
    /// Error subcode (meaning depends on the code; see the constant modules).
    pub subcode: u8,
    /// Data, as defined for the code and subcode.
    pub data: Vec<u8>,
}

/// Why an RFC 9003 shutdown communication could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownCommunicationError {
    /// The length octet runs past the data.
    #[error("shutdown communication length {len} exceeds the {available} octets present")]
    Truncated {
        /// The length octet.
        len: usize,
        /// Octets after it.
        available: usize,
    },
    /// The text is not UTF-8.
    #[error("shutdown communication is not valid UTF-8")]
    NotUtf8,
}

impl NotificationMsg {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: ErrorCode, subcode: u8, data: Vec<u8>) -> Self {
        NotificationMsg {
            code,
            subcode,
            data,
        }
    }

    /// A Cease with `subcode` and no data.
    pub fn cease(subcode: u8) -> Self {
        NotificationMsg::new(ErrorCode::Cease, subcode, Vec::new())
    }

    /// A Cease (Administrative Shutdown or Reset) carrying an RFC 9003 communication.
    pub fn shutdown(subcode: u8, communication: &str) -> Result<Self, EncodeError> {
        let len = communication.len();
        if len > MAX_SHUTDOWN_COMMUNICATION {
            return Err(EncodeError::ValueTooLarge {
                what: "shutdown communication",
                len,
                max: MAX_SHUTDOWN_COMMUNICATION,
            });
        }
        let mut data = Vec::with_capacity(len + 1);
        data.push(len as u8);
        data.extend_from_slice(communication.as_bytes());
        Ok(NotificationMsg::new(ErrorCode::Cease, subcode, data))
    }

    /// The RFC 9003 communication of an Administrative Shutdown/Reset Cease, if any.
    ///
    /// `None` for other codes and for an empty data field.
    pub fn shutdown_communication(&self) -> Option<Result<&str, ShutdownCommunicationError>> {
        let is_shutdown = self.code == ErrorCode::Cease
            && matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            );
        let (&len, text) = self.data.split_first().filter(|_| is_shutdown)?;
        let len = usize::from(len);
        Some(match text.get(..len) {
            None => Err(ShutdownCommunicationError::Truncated {
                len,
                available: text.len(),
            }),
            Some(t) => std::str::from_utf8(t).map_err(|_| ShutdownCommunicationError::NotUtf8),
        })
    }

    /// Decodes a NOTIFICATION body (after the 19-octet header).
    pub(crate) fn decode_body(body: &[u8], length: u16) -> Result<Self, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(NotificationMsg::new(
                (*code).into(),
                *subcode,
                data.to_vec(),
            )),
            _ => Err(DecodeError::BadMessageLength { length }),
        }
    }

    /// Appends the body (after the header).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.code.code());
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }

    /// The RFC name of the code and subcode, e.g. "Cease / Administrative Shutdown".
    pub fn describe(&self) -> String {
        format!(
            "{} / {}",
            code_name(self.code),
            subcode_name(self.code, self.subcode)
        )
    }
}

fn code_name(code: ErrorCode) -> String {
    match code {
        ErrorCode::MessageHeader => "Message Header Error".into(),
        ErrorCode::Open => "OPEN Message Error".into(),
        ErrorCode::Update => "UPDATE Message Error".into(),
        ErrorCode::HoldTimerExpired => "Hold Timer Expired".into(),
        ErrorCode::Fsm => "Finite State Machine Error".into(),
        ErrorCode::Cease => "Cease".into(),
        ErrorCode::RouteRefresh => "ROUTE-REFRESH Message Error".into(),
        ErrorCode::Other(c) => format!("code {c}"),
    }
}

fn subcode_name(code: ErrorCode, sub: u8) -> String {
    let name = match (code, sub) {
        (ErrorCode::MessageHeader, 1) => "Connection Not Synchronized",
        (ErrorCode::MessageHeader, 2) => "Bad Message Length",
        (ErrorCode::MessageHeader, 3) => "Bad Message Type",
        (ErrorCode::Open, 0) => "Unspecific",
        (ErrorCode::Open, 1) => "Unsupported Version Number",
        (ErrorCode::Open, 2) => "Bad Peer AS",
        (ErrorCode::Open, 3) => "Bad BGP Identifier",
        (ErrorCode::Open, 4) => "Unsupported Optional Parameter",
        (ErrorCode::Open, 6) => "Unacceptable Hold Time",
        (ErrorCode::Open, 7) => "Unsupported Capability",
        (ErrorCode::Update, 1) => "Malformed Attribute List",
        (ErrorCode::Update, 2) => "Unrecognized Well-known Attribute",
        (ErrorCode::Update, 3) => "Missing Well-known Attribute",
        (ErrorCode::Update, 4) => "Attribute Flags Error",
        (ErrorCode::Update, 5) => "Attribute Length Error",
        (ErrorCode::Update, 6) => "Invalid ORIGIN Attribute",
        (ErrorCode::Update, 8) => "Invalid NEXT_HOP Attribute",
        (ErrorCode::Update, 9) => "Optional Attribute Error",
        (ErrorCode::Update, 10) => "Invalid Network Field",
        (ErrorCode::Update, 11) => "Malformed AS_PATH",
        (ErrorCode::Fsm, 0) => "Unspecified Error",
        (ErrorCode::Fsm, 1) => "Receive Unexpected Message in OpenSent State",
        (ErrorCode::Fsm, 2) => "Receive Unexpected Message in OpenConfirm State",
        (ErrorCode::Fsm, 3) => "Receive Unexpected Message in Established State",
        (ErrorCode::Cease, 1) => "Maximum Number of Prefixes Reached",
        (ErrorCode::Cease, 2) => "Administrative Shutdown",
        (ErrorCode::Cease, 3) => "Peer De-configured",
        (ErrorCode::Cease, 4) => "Administrative Reset",
        (ErrorCode::Cease, 5) => "Connection Rejected",
        (ErrorCode::Cease, 6) => "Other Configuration Change",
        (ErrorCode::Cease, 7) => "Connection Collision Resolution",
        (ErrorCode::Cease, 8) => "Out of Resources",
        (ErrorCode::Cease, 9) => "Hard Reset",
        (ErrorCode::Cease, 10) => "BFD Down",
        (ErrorCode::RouteRefresh, 1) => "Invalid Message Length",
        (_, s) => return format!("subcode {s}"),
    };
    name.to_string()
}

impl fmt::Display for NotificationMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())?;
        if let Some(Ok(text)) = self.shutdown_communication() {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

impl From<&DecodeError> for NotificationMsg {
    /// RFC 4271 §6 (and RFC 7313 §5): the code, subcode and data for each error.
    fn from(err: &DecodeError) -> Self {
        let (code, subcode) = code_and_subcode(err);
        NotificationMsg::new(code, subcode, data_of(err))
    }
}

fn code_and_subcode(err: &DecodeError) -> (ErrorCode, u8) {
    use DecodeError as E;
    match err {
        E::ConnectionNotSynchronized => (
            ErrorCode::MessageHeader,
            header::CONNECTION_NOT_SYNCHRONIZED,
        ),
        E::BadMessageLength { .. } => (ErrorCode::MessageHeader, header::BAD_MESSAGE_LENGTH),
        E::BadMessageType { .. } => (ErrorCode::MessageHeader, header::BAD_MESSAGE_TYPE),
        E::UnsupportedVersionNumber { .. } => (ErrorCode::Open, open::UNSUPPORTED_VERSION_NUMBER),
        E::BadBgpIdentifier { .. } => (ErrorCode::Open, open::BAD_BGP_IDENTIFIER),
        E::UnsupportedOptionalParameter { .. } => {
            (ErrorCode::Open, open::UNSUPPORTED_OPTIONAL_PARAMETER)
        }
        E::UnacceptableHoldTime { .. } => (ErrorCode::Open, open::UNACCEPTABLE_HOLD_TIME),
        E::MalformedOpen { .. } => (ErrorCode::Open, open::UNSPECIFIC),
        E::MalformedAttributeList { .. } => (ErrorCode::Update, update::MALFORMED_ATTRIBUTE_LIST),
        E::UnrecognizedWellKnownAttribute { .. } => {
            (ErrorCode::Update, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE)
        }
        E::MissingWellKnownAttribute { .. } => {
            (ErrorCode::Update, update::MISSING_WELL_KNOWN_ATTRIBUTE)
        }
        E::AttributeFlagsError { .. } => (ErrorCode::Update, update::ATTRIBUTE_FLAGS_ERROR),
        E::AttributeLengthError { .. } => (ErrorCode::Update, update::ATTRIBUTE_LENGTH_ERROR),
        E::InvalidOriginAttribute { .. } => (ErrorCode::Update, update::INVALID_ORIGIN_ATTRIBUTE),
        E::InvalidNextHopAttribute { .. } => {
            (ErrorCode::Update, update::INVALID_NEXT_HOP_ATTRIBUTE)
        }
        E::OptionalAttributeError { .. } => (ErrorCode::Update, update::OPTIONAL_ATTRIBUTE_ERROR),
        E::InvalidNetworkField { .. } => (ErrorCode::Update, update::INVALID_NETWORK_FIELD),
        E::MalformedAsPath => (ErrorCode::Update, update::MALFORMED_AS_PATH),
        E::InvalidRouteRefreshLength { .. } => (
            ErrorCode::RouteRefresh,
            route_refresh::INVALID_MESSAGE_LENGTH,
        ),
    }
}

/// The Data field RFC 4271 §6 (RFC 7313 §5) names for each error.
fn data_of(err: &DecodeError) -> Vec<u8> {
    use DecodeError as E;
    match err {
        E::BadMessageLength { length } => length.to_be_bytes().to_vec(),
        E::BadMessageType { msg_type } => vec![*msg_type],
        // RFC 4271 §6.2: the largest locally supported version.
        E::UnsupportedVersionNumber { .. } => vec![0, 4],
        E::MissingWellKnownAttribute { type_code } => vec![*type_code],
        E::UnrecognizedWellKnownAttribute { attribute }
        | E::AttributeFlagsError { attribute }
        | E::AttributeLengthError { attribute }
        | E::InvalidOriginAttribute { attribute }
        | E::InvalidNextHopAttribute { attribute }
        | E::OptionalAttributeError { attribute } => attribute.clone(),
        E::InvalidRouteRefreshLength { message } => message.clone(),
        _ => Vec::new(),
    }
}

impl From<DecodeError> for NotificationMsg {
    fn from(err: DecodeError) -> Self {
        NotificationMsg::from(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trips_utf8_text() {
        let n = NotificationMsg::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "maintenance ✓").unwrap();
        assert_eq!(n.data[0] as usize, "maintenance ✓".len());
        assert_eq!(n.shutdown_communication(), Some(Ok("maintenance ✓")));
        assert_eq!(
            n.to_string(),
            "Cease / Administrative Shutdown: \"maintenance ✓\""
        );
    }

    #[test]
    fn shutdown_communication_longer_than_255_octets_is_refused() {
        let long = "x".repeat(256);
        assert!(matches!(
            NotificationMsg::shutdown(cease::ADMINISTRATIVE_RESET, &long),
            Err(EncodeError::ValueTooLarge { max: 255, .. })
        ));
    }

    #[test]
    fn truncated_or_non_utf8_communications_are_reported() {
        let n = NotificationMsg::new(
            ErrorCode::Cease,
            cease::ADMINISTRATIVE_SHUTDOWN,
            vec![5, b'a'],
        );
        assert!(matches!(
            n.shutdown_communication(),
            Some(Err(ShutdownCommunicationError::Truncated { .. }))
        ));
        let n = NotificationMsg::new(ErrorCode::Cease, cease::ADMINISTRATIVE_RESET, vec![1, 0xff]);
        assert_eq!(
            n.shutdown_communication(),
            Some(Err(ShutdownCommunicationError::NotUtf8))
        );
        assert_eq!(
            NotificationMsg::cease(cease::HARD_RESET).shutdown_communication(),
            None
        );
    }

    #[test]
    fn decode_errors_map_to_rfc4271_codes_subcodes_and_data() {
        let n = NotificationMsg::from(&DecodeError::BadMessageLength { length: 5000 });
        assert_eq!(
            (n.code, n.subcode, n.data),
            (ErrorCode::MessageHeader, 2, vec![0x13, 0x88])
        );
        let n = NotificationMsg::from(&DecodeError::UnsupportedVersionNumber { version: 3 });
        assert_eq!(
            (n.code, n.subcode, n.data),
            (ErrorCode::Open, 1, vec![0, 4])
        );
        let n = NotificationMsg::from(&DecodeError::MissingWellKnownAttribute { type_code: 3 });
        assert_eq!((n.code, n.subcode, n.data), (ErrorCode::Update, 3, vec![3]));
        let n = NotificationMsg::from(DecodeError::MalformedAsPath);
        assert_eq!(n.describe(), "UPDATE Message Error / Malformed AS_PATH");
    }

    #[test]
    fn every_rfc_code_and_subcode_has_a_name() {
        for (code, subs) in [
            (1u8, &[1u8, 2, 3][..]),
            (2, &[0, 1, 2, 3, 4, 6, 7]),
            (3, &[1, 2, 3, 4, 5, 6, 8, 9, 10, 11]),
            (5, &[0, 1, 2, 3]),
            (6, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            (7, &[1]),
        ] {
            for &s in subs {
                let n = NotificationMsg::new(code.into(), s, vec![]);
                assert!(
                    !n.describe().contains("subcode"),
                    "{code}/{s}: {}",
                    n.describe()
                );
            }
        }
        assert_eq!(ErrorCode::from(4).code(), 4);
        assert_eq!(ErrorCode::from(99), ErrorCode::Other(99));
    }
}
