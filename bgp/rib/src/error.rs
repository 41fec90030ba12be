//! Errors of RIB inputs that cannot be applied.

use std::net::IpAddr;

/// Why an input was refused (the RIB is unchanged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// The peer was never brought up with `peer_up` (or was forgotten).
    #[error("peer {peer} is not known to the RIB: call peer_up first")]
    UnknownPeer {
        /// The peer.
        peer: IpAddr,
    },
    /// The peer's session is down (its routes may be kept as stale).
    #[error("peer {peer} is not established: UPDATEs are only taken from established peers")]
    PeerNotUp {
        /// The peer.
        peer: IpAddr,
    },
    /// More than 65,534 peers.
    #[error("too many peers: the RIB holds at most 65534")]
    TooManyPeers,
}
