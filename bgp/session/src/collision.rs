//! The (at most) two connections to one peer and connection collision
//! resolution (RFC 4271 §6.8, RFC 6286 §2.3).

use std::net::Ipv4Addr;

/// One of the two connections a session may have at a time, named by who
/// opened it (RFC 4271 §6.8 "locally / remotely initiated").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conn {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to our listener.
    Incoming,
}

impl Conn {
    /// Both, in a fixed order.
    pub const BOTH: [Conn; 2] = [Conn::Outgoing, Conn::Incoming];

    /// The other connection.
    pub fn other(self) -> Conn {
        match self {
            Conn::Outgoing => Conn::Incoming,
            Conn::Incoming => Conn::Outgoing,
        }
    }

    /// `outgoing` or `incoming`, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Conn::Outgoing => "outgoing",
            Conn::Incoming => "incoming",
        }
    }
}

/// One side of a collision: its BGP Identifier and AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaker {
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Autonomous System.
    pub asn: u32,
}

/// Which connection to keep when both reached OpenConfirm.
///
/// RFC 4271 §6.8: compare the BGP Identifiers as host-order integers; the
/// connection initiated by the side with the higher one is kept. RFC 6286
/// §2.3: with equal identifiers (possible between ASes), the side with the
/// larger AS number wins.
pub fn resolve(local: Speaker, remote: Speaker) -> Conn {
    let local_key = (u32::from(local.router_id), local.asn);
    let remote_key = (u32::from(remote.router_id), remote.asn);
    if local_key < remote_key {
        Conn::Incoming
    } else {
        Conn::Outgoing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(id: [u8; 4], asn: u32) -> Speaker {
        Speaker {
            router_id: Ipv4Addr::from(id),
            asn,
        }
    }

    #[test]
    fn the_higher_identifier_keeps_its_own_connection() {
        let lo = sp([10, 0, 0, 1], 65001);
        let hi = sp([10, 0, 0, 2], 65001);
        assert_eq!(resolve(lo, hi), Conn::Incoming);
        assert_eq!(resolve(hi, lo), Conn::Outgoing);
    }

    #[test]
    fn identifiers_compare_as_integers_not_strings() {
        // "9.0.0.1" > "10.0.0.1" as strings, but 9.0.0.1 < 10.0.0.1 as integers.
        assert_eq!(
            resolve(sp([9, 0, 0, 1], 1), sp([10, 0, 0, 1], 1)),
            Conn::Incoming
        );
    }

    #[test]
    fn equal_identifiers_fall_back_to_the_larger_as_number() {
        let id = [10, 0, 0, 1];
        assert_eq!(resolve(sp(id, 65001), sp(id, 65002)), Conn::Incoming);
        assert_eq!(resolve(sp(id, 65002), sp(id, 65001)), Conn::Outgoing);
    }

    #[test]
    fn the_other_connection_of_each_is_the_opposite_one() {
        assert_eq!(Conn::Outgoing.other(), Conn::Incoming);
        assert_eq!(Conn::Incoming.other(), Conn::Outgoing);
    }
}
