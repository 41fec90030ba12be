//! Connection collision resolution (RFC 4271 §6.8).

use std::net::Ipv4Addr;

/// Which of two connections to the same peer to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep the connection this side initiated.
    LocallyInitiated,
    /// Keep the connection the peer initiated.
    RemotelyInitiated,
}

/// RFC 4271 §6.8: compare BGP Identifiers as host-order integers; if ours
/// is lower, close the connection we initiated (keep the peer's), else close
/// the one the peer initiated.
pub fn resolve(local_id: Ipv4Addr, remote_id: Ipv4Addr) -> Keep {
    if u32::from(local_id) < u32::from(remote_id) {
        Keep::RemotelyInitiated
    } else {
        Keep::LocallyInitiated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_identifier_keeps_its_own_connection() {
        let lo = Ipv4Addr::new(10, 0, 0, 1);
        let hi = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(resolve(lo, hi), Keep::RemotelyInitiated);
        assert_eq!(resolve(hi, lo), Keep::LocallyInitiated);
    }

    #[test]
    fn identifiers_compare_as_integers_not_strings() {
        // "9.0.0.1" > "10.0.0.1" as strings, but 9.0.0.1 < 10.0.0.1 as integers.
        let a = Ipv4Addr::new(9, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(resolve(a, b), Keep::RemotelyInitiated);
    }
}
