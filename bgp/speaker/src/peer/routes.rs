//! Received UPDATEs split into per-family changes for the plain Adj-RIB-In
//! behind `SpeakerEvent::Routes` (the RIB takes the UPDATE itself).

use crate::rib::Path;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tortie_bgp_wire::{ErrorAction, Family, NextHop, Nlri, UpdateMsg};

/// Routes of one family changed by one UPDATE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyChange {
    /// Reachable NLRI with their path.
    pub announced: Vec<(Nlri, Arc<Path>)>,
    /// Unreachable NLRI.
    pub withdrawn: Vec<Nlri>,
}

/// Splits a received UPDATE into changes per family. RFC 7606
/// treat-as-withdraw (and AFI/SAFI disable, which we apply to this UPDATE
/// only) turn every announcement into a withdrawal (RFC 7606 §2); so does
/// our own AS in the AS_PATH (RFC 4271 §9.1.2 loop detection: FRR, for one,
/// sends an eBGP peer's routes back to it).
pub fn split_update(u: &UpdateMsg, local_asn: u32) -> HashMap<Family, FamilyChange> {
    let mut out: HashMap<Family, FamilyChange> = HashMap::new();
    let looped = u
        .attributes
        .as_path
        .as_ref()
        .is_some_and(|p| p.segments.iter().any(|s| s.asns.contains(&local_asn)));
    let as_withdraw = looped
        || matches!(
            u.action(),
            Some(ErrorAction::TreatAsWithdraw | ErrorAction::AfiSafiDisable)
        );
    let mut base = u.attributes.clone();
    base.next_hop = None;
    base.mp_reach = None;
    base.mp_unreach = None;
    let base = Arc::new(base);
    let v4 = out.entry(Family::IPV4_UNICAST).or_default();
    v4.withdrawn.extend(u.withdrawn.iter().copied());
    let mut announce = |family: Family, nlri: &[Nlri], next_hop: Option<IpAddr>| {
        let c = out.entry(family).or_default();
        match next_hop {
            Some(nh) if !as_withdraw => {
                let path = Arc::new(Path {
                    next_hop: nh,
                    attrs: base.clone(),
                });
                c.announced.extend(nlri.iter().map(|n| (*n, path.clone())));
            }
            // No usable next hop or a treat-as-withdraw error: withdraw.
            _ => c.withdrawn.extend(nlri.iter().copied()),
        }
    };
    if !u.nlri.is_empty() {
        announce(
            Family::IPV4_UNICAST,
            &u.nlri,
            u.attributes.next_hop.map(IpAddr::V4),
        );
    }
    if let Some(r) = &u.attributes.mp_reach {
        let nh = match r.next_hop {
            NextHop::V4(a) => IpAddr::V4(a),
            NextHop::V6 { global, .. } => IpAddr::V6(global),
        };
        announce(r.family, &r.nlri, Some(nh));
    }
    if let Some(w) = &u.attributes.mp_unreach {
        out.entry(w.family)
            .or_default()
            .withdrawn
            .extend(w.withdrawn.iter().copied());
    }
    out.retain(|_, c| !c.announced.is_empty() || !c.withdrawn.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_bgp_wire::MpUnreach;
    use tortie_bgp_wire::{AsPath, PathAttributes};

    fn announcement(as_path: &[u32]) -> UpdateMsg {
        UpdateMsg {
            attributes: PathAttributes {
                origin: Some(Default::default()),
                as_path: Some(AsPath::from_sequence(as_path.iter().copied())),
                next_hop: Some("10.0.0.1".parse().unwrap()),
                ..Default::default()
            },
            nlri: vec![Nlri::new("10.1.0.0/24".parse().unwrap())],
            ..Default::default()
        }
    }

    #[test]
    fn ipv4_announcements_carry_their_next_hop() {
        let c = split_update(&announcement(&[65001]), 65009);
        let v4 = &c[&Family::IPV4_UNICAST];
        assert_eq!(v4.announced.len(), 1);
        assert_eq!(
            v4.announced[0].1.next_hop,
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn routes_with_our_own_as_in_the_path_are_withdrawn() {
        let c = split_update(&announcement(&[65002, 65001]), 65001);
        let v4 = &c[&Family::IPV4_UNICAST];
        assert!(v4.announced.is_empty());
        assert_eq!(v4.withdrawn.len(), 1);
    }

    #[test]
    fn withdrawals_of_both_families_are_split() {
        let u = UpdateMsg {
            withdrawn: vec![Nlri::new("10.1.0.0/24".parse().unwrap())],
            attributes: PathAttributes {
                mp_unreach: Some(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: vec![Nlri::new("fd01::/64".parse().unwrap())],
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = split_update(&u, 65009);
        assert_eq!(c[&Family::IPV4_UNICAST].withdrawn.len(), 1);
        assert_eq!(c[&Family::IPV6_UNICAST].withdrawn.len(), 1);
    }
}
