//! Decode and encode errors. A [`DecodeError`] names the NOTIFICATION that
//! RFC 4271 §6 prescribes; the mapping to code, subcode and data lives in
//! `notification.rs` (`From<&DecodeError> for NotificationMsg`), nowhere else.

use std::net::Ipv4Addr;

use crate::family::Family;

/// A message that cannot be accepted. Each variant is one RFC 4271 §6 (or RFC 7313 §5)
/// error; turn it into the NOTIFICATION to send with `NotificationMsg::from(&err)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// RFC 4271 §6.1: the marker is not all ones.
    #[error("connection not synchronized: marker is not all ones")]
    ConnectionNotSynchronized,
    /// RFC 4271 §6.1: the length field is out of range for the message (type).
    #[error("bad message length {length}")]
    BadMessageLength {
        /// The length field as received.
        length: u16,
    },
    /// RFC 4271 §6.1: unknown message type.
    #[error("bad message type {msg_type}")]
    BadMessageType {
        /// The type as received.
        msg_type: u8,
    },
    /// RFC 4271 §6.2: version is not 4.
    #[error("unsupported version number {version}")]
    UnsupportedVersionNumber {
        /// The version as received.
        version: u8,
    },
    /// RFC 4271 §6.2 / RFC 6286 §2.2: the BGP Identifier is zero.
    #[error("bad BGP identifier {id}")]
    BadBgpIdentifier {
        /// The identifier as received.
        id: Ipv4Addr,
    },
    /// RFC 4271 §6.2: an optional parameter this speaker does not know.
    #[error("unsupported optional parameter type {param_type}")]
    UnsupportedOptionalParameter {
        /// The parameter type.
        param_type: u8,
    },
    /// RFC 4271 §6.2: hold time of one or two seconds.
    #[error("unacceptable hold time {hold_time}")]
    UnacceptableHoldTime {
        /// The hold time as received.
        hold_time: u16,
    },
    /// RFC 4271 §6.2 (subcode 0): an optional parameter or capability is malformed.
    #[error("malformed OPEN: {reason}")]
    MalformedOpen {
        /// What was wrong.
        reason: &'static str,
    },
    /// RFC 4271 §6.3 / RFC 7606 §3: attribute or withdrawn-routes lengths are inconsistent.
    #[error("malformed attribute list: {reason}")]
    MalformedAttributeList {
        /// What was wrong.
        reason: &'static str,
    },
    /// RFC 4271 §6.3: a well-known attribute this speaker does not know.
    #[error("unrecognized well-known attribute")]
    UnrecognizedWellKnownAttribute {
        /// The attribute (type, length and value) as received.
        attribute: Vec<u8>,
    },
    /// RFC 4271 §6.3: a mandatory well-known attribute is absent.
    #[error("missing well-known attribute {type_code}")]
    MissingWellKnownAttribute {
        /// The missing attribute's type code.
        type_code: u8,
    },
    /// RFC 4271 §6.3: attribute flags conflict with the attribute type.
    #[error("attribute flags error")]
    AttributeFlagsError {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// RFC 4271 §6.3: attribute length wrong for its type.
    #[error("attribute length error")]
    AttributeLengthError {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// RFC 4271 §6.3: ORIGIN value undefined.
    #[error("invalid ORIGIN attribute")]
    InvalidOriginAttribute {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// RFC 4271 §6.3: NEXT_HOP syntactically wrong.
    #[error("invalid NEXT_HOP attribute")]
    InvalidNextHopAttribute {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// RFC 4271 §6.3: an optional attribute's value is malformed.
    #[error("optional attribute error")]
    OptionalAttributeError {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// RFC 4271 §6.3: the NLRI or withdrawn routes field is syntactically wrong.
    #[error("invalid network field: {reason}")]
    InvalidNetworkField {
        /// What was wrong.
        reason: &'static str,
    },
    /// RFC 4271 §6.3: the AS_PATH is syntactically wrong.
    #[error("malformed AS_PATH")]
    MalformedAsPath,
    /// RFC 7313 §5: a ROUTE-REFRESH whose length is wrong.
    #[error("ROUTE-REFRESH with invalid message length")]
    InvalidRouteRefreshLength {
        /// The complete message as received.
        message: Vec<u8>,
    },
}

/// RFC 7606 §2 error handling approaches, least severe first (`Ord` follows severity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorAction {
    /// The attribute is dropped; the UPDATE is otherwise processed.
    AttributeDiscard,
    /// Every NLRI of the UPDATE (IPv4 field and MP_REACH) is handled as withdrawn.
    TreatAsWithdraw,
    /// The family named in the report stops being exchanged (RFC 4760 §7).
    AfiSafiDisable,
    /// The session is reset with the error's NOTIFICATION (a decode `Err`, never a report).
    SessionReset,
}

impl ErrorAction {
    /// RFC 7606 §2: true when no announcement of the UPDATE may be used
    /// (treat-as-withdraw or anything more severe: AFI/SAFI disable, whose
    /// family stop is the speaker's to apply, and session reset); only
    /// attribute discard leaves the routes usable. The one rule every
    /// reader of an UPDATE applies.
    pub fn withdraws_announcements(self) -> bool {
        self >= ErrorAction::TreatAsWithdraw
    }
}

/// One RFC 7606 problem found while decoding an UPDATE that did not reset the session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpdateError {
    /// What the receiver must do.
    pub action: ErrorAction,
    /// The attribute type code concerned (0 for problems of the message as a whole).
    pub type_code: u8,
    /// The family concerned for [`ErrorAction::AfiSafiDisable`].
    pub family: Option<Family>,
    /// The error RFC 4271 would have sent, for logs and counters.
    pub error: DecodeError,
}

/// A value that cannot be put on the wire. The encoder never truncates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncodeError {
    /// A field is longer (or larger) than its wire field allows.
    #[error("{what} of {len} exceeds the maximum {max}")]
    ValueTooLarge {
        /// Which field.
        what: &'static str,
        /// The size (or value) that did not fit.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// One message would exceed the negotiated maximum length.
    #[error("message of {len} octets exceeds the negotiated maximum {max}")]
    MessageTooLarge {
        /// The length it would have.
        len: usize,
        /// The negotiated maximum (4096 or 65535).
        max: usize,
    },
    /// ADD-PATH is in use for the family but an entry has no path identifier (RFC 7911 §3).
    #[error("ADD-PATH is negotiated for {family} but {prefix} has no path identifier")]
    MissingPathId {
        /// The family.
        family: Family,
        /// The entry's prefix, as text.
        prefix: String,
    },
    /// An entry carries a path identifier but ADD-PATH is not in use for its family.
    #[error("{prefix} has a path identifier but ADD-PATH is not negotiated for {family}")]
    UnexpectedPathId {
        /// The family.
        family: Family,
        /// The entry's prefix, as text.
        prefix: String,
    },
    /// A prefix or next hop of the wrong address family for where it is placed.
    #[error("{what} does not belong to {family}")]
    WrongFamily {
        /// What was misplaced.
        what: String,
        /// The family of the field.
        family: Family,
    },
}
