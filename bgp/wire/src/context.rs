//! What decoding and encoding depend on: the parameters both OPENs negotiated.

use crate::capability::{AddPathMode, Capability};
use crate::family::{Afi, Family};

/// Largest message before RFC 8654 extended messages are negotiated (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message once RFC 8654 extended messages are negotiated.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// Which way a [`DecodeContext`] applies: ADD-PATH is negotiated per direction (RFC 7911 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Messages the peer sends to us.
    Receive,
    /// Messages we send to the peer.
    Send,
}

/// The session parameters one direction of a BGP session's wire format depends on.
///
/// `Default` is plain RFC 4271 (2-octet AS numbers, 4096-octet messages, no ADD-PATH);
/// it is also what an OPEN is decoded with. After both OPENs, build it with
/// [`DecodeContext::negotiated`] once per direction. The same value drives the encoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeContext {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH and
    /// AGGREGATOR carry 4-octet AS numbers, AS4_PATH/AS4_AGGREGATOR are not used.
    pub four_octet_as: bool,
    /// Families whose NLRI carry an RFC 7911 path identifier in this direction.
    pub add_path: Vec<Family>,
    /// Both sides advertised RFC 8654 extended messages (limit 65535 octets).
    pub extended_message: bool,
    /// NLRI families for which an IPv6 next hop is allowed (RFC 8950), with the next hop's AFI.
    pub extended_next_hop: Vec<(Family, Afi)>,
}

impl DecodeContext {
    /// A context with 4-octet AS numbers, the common case between modern speakers.
    pub fn four_octet() -> Self {
        DecodeContext {
            four_octet_as: true,
            ..Default::default()
        }
    }

    /// The largest message length allowed (RFC 4271 §4.1, RFC 8654 §4).
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    /// True when NLRI of `family` carry a path identifier in this direction.
    pub fn has_add_path(&self, family: Family) -> bool {
        self.add_path.contains(&family)
    }

    /// True when an IPv6 next hop is allowed for NLRI of `family` (RFC 8950).
    pub fn allows_ipv6_next_hop(&self, family: Family) -> bool {
        self.extended_next_hop
            .iter()
            .any(|&(f, nh)| f == family && nh == Afi::Ipv6)
    }

    /// The parameters of one direction, from the capabilities we sent (`local`)
    /// and the ones the peer sent (`remote`).
    ///
    /// A capability counts only when both sides advertised it; ADD-PATH for
    /// `Receive` needs us able to receive and the peer able to send (RFC 7911 §4).
    pub fn negotiated(local: &[Capability], remote: &[Capability], direction: Direction) -> Self {
        let has = |caps: &[Capability], f: fn(&Capability) -> bool| caps.iter().any(f);
        let four_octet_as = has(local, |c| matches!(c, Capability::FourOctetAs(_)))
            && has(remote, |c| matches!(c, Capability::FourOctetAs(_)));
        let extended_message = has(local, |c| matches!(c, Capability::ExtendedMessage))
            && has(remote, |c| matches!(c, Capability::ExtendedMessage));
        let (we, they) = match direction {
            Direction::Receive => (AddPathMode::Receive, AddPathMode::Send),
            Direction::Send => (AddPathMode::Send, AddPathMode::Receive),
        };
        let add_path = add_path_families(local, we)
            .into_iter()
            .filter(|f| add_path_families(remote, they).contains(f))
            .collect();
        let remote_enh = extended_next_hops(remote);
        let extended_next_hop = extended_next_hops(local)
            .into_iter()
            .filter(|e| remote_enh.contains(e))
            .collect();
        DecodeContext {
            four_octet_as,
            add_path,
            extended_message,
            extended_next_hop,
        }
    }
}

fn add_path_families(caps: &[Capability], wanted: AddPathMode) -> Vec<Family> {
    caps.iter()
        .filter_map(|c| match c {
            Capability::AddPath(entries) => Some(entries),
            _ => None,
        })
        .flatten()
        .filter(|e| e.mode == AddPathMode::Both || e.mode == wanted)
        .map(|e| e.family)
        .collect()
}

fn extended_next_hops(caps: &[Capability]) -> Vec<(Family, Afi)> {
    caps.iter()
        .filter_map(|c| match c {
            Capability::ExtendedNextHop(entries) => Some(entries),
            _ => None,
        })
        .flatten()
        .map(|e| (e.family, e.next_hop_afi))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{AddPathFamily, ExtendedNextHopEntry};

    #[test]
    fn add_path_is_negotiated_per_direction() {
        let local = vec![Capability::AddPath(vec![AddPathFamily {
            family: Family::IPV4_UNICAST,
            mode: AddPathMode::Receive,
        }])];
        let remote = vec![Capability::AddPath(vec![AddPathFamily {
            family: Family::IPV4_UNICAST,
            mode: AddPathMode::Both,
        }])];
        let rx = DecodeContext::negotiated(&local, &remote, Direction::Receive);
        let tx = DecodeContext::negotiated(&local, &remote, Direction::Send);
        assert!(rx.has_add_path(Family::IPV4_UNICAST));
        assert!(!tx.has_add_path(Family::IPV4_UNICAST));
    }

    #[test]
    fn capabilities_count_only_when_both_sides_advertise_them() {
        let local = vec![
            Capability::FourOctetAs(65001),
            Capability::ExtendedMessage,
            Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
                family: Family::IPV4_UNICAST,
                next_hop_afi: Afi::Ipv6,
            }]),
        ];
        let remote = vec![Capability::FourOctetAs(65002)];
        let ctx = DecodeContext::negotiated(&local, &remote, Direction::Receive);
        assert!(ctx.four_octet_as);
        assert!(!ctx.extended_message);
        assert_eq!(ctx.max_message_len(), MAX_MESSAGE_LEN);
        assert!(!ctx.allows_ipv6_next_hop(Family::IPV4_UNICAST));
        let both = DecodeContext::negotiated(&local, &local, Direction::Receive);
        assert!(both.allows_ipv6_next_hop(Family::IPV4_UNICAST));
        assert_eq!(both.max_message_len(), MAX_EXTENDED_MESSAGE_LEN);
    }
}
