//! Received UPDATEs split into per-family changes for the plain Adj-RIB-In
//! behind `SpeakerEvent::Routes` (the RIB takes the UPDATE itself).

use crate::rib::Path;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tortie_bgp_wire::{Family, NextHop, Nlri, UpdateMsg};

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
    // RFC 7606 §2: the wire crate's one rule, as the RIB applies it.
    let as_withdraw = looped || u.announcements_withdrawn();
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
    use std::time::Duration;
    use tortie_bgp_wire::MpUnreach;
    use tortie_bgp_wire::{decode, AsPath, DecodeContext, ErrorAction, Message, PathAttributes};

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

    /// One RFC 7606 case: the attributes of an UPDATE for 10.244.2.0/26
    /// from iBGP peer 10.0.0.2, one of them broken (or none).
    struct Case {
        what: &'static str,
        attrs: Vec<Vec<u8>>,
        action: Option<ErrorAction>,
    }

    fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
        let mut a = vec![flags, code, value.len() as u8];
        a.extend_from_slice(value);
        a
    }

    fn update_bytes(attrs: &[Vec<u8>]) -> Vec<u8> {
        let attrs: Vec<u8> = attrs.concat();
        let nlri = [26u8, 10, 244, 2, 0];
        let mut body = vec![0, 0];
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(&attrs);
        body.extend_from_slice(&nlri);
        let mut msg = vec![0xff; 16];
        msg.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        msg.push(2);
        msg.extend_from_slice(&body);
        msg
    }

    fn cases() -> Vec<Case> {
        let origin = attr(0x40, 1, &[0]);
        let as_path = attr(0x40, 2, &[]);
        let next_hop = attr(0x40, 3, &[10, 0, 0, 2]);
        let good = || vec![origin.clone(), as_path.clone(), next_hop.clone()];
        let with = |extra: Vec<u8>| {
            let mut v = good();
            v.push(extra);
            v
        };
        let tw = Some(ErrorAction::TreatAsWithdraw);
        let discard = Some(ErrorAction::AttributeDiscard);
        vec![
            Case {
                what: "well formed",
                attrs: good(),
                action: None,
            },
            Case {
                what: "ORIGIN value 7",
                attrs: vec![attr(0x40, 1, &[7]), as_path.clone(), next_hop.clone()],
                action: tw,
            },
            Case {
                what: "AS_PATH segment overrun",
                attrs: vec![
                    origin.clone(),
                    attr(0x40, 2, &[2, 5, 0, 0]),
                    next_hop.clone(),
                ],
                action: tw,
            },
            Case {
                what: "NEXT_HOP of 3 octets",
                attrs: vec![origin.clone(), as_path.clone(), attr(0x40, 3, &[10, 0, 0])],
                action: tw,
            },
            Case {
                what: "NEXT_HOP missing",
                attrs: vec![origin.clone(), as_path.clone()],
                action: tw,
            },
            Case {
                what: "MED of 2 octets",
                attrs: with(attr(0x80, 4, &[0, 1])),
                action: tw,
            },
            Case {
                what: "LOCAL_PREF of 2 octets",
                attrs: with(attr(0x40, 5, &[0, 1])),
                action: tw,
            },
            Case {
                what: "ATOMIC_AGGREGATE with a value",
                attrs: with(attr(0x40, 6, &[1])),
                action: discard,
            },
            Case {
                what: "AGGREGATOR of 3 octets",
                attrs: with(attr(0xc0, 7, &[0, 1, 2])),
                action: discard,
            },
            Case {
                what: "COMMUNITIES of 3 octets",
                attrs: with(attr(0xc0, 8, &[0, 1, 2])),
                action: tw,
            },
            Case {
                what: "ORIGINATOR_ID of 2 octets",
                attrs: with(attr(0x80, 9, &[0, 1])),
                action: tw,
            },
            Case {
                what: "CLUSTER_LIST of 3 octets",
                attrs: with(attr(0x80, 10, &[0, 1, 2])),
                action: tw,
            },
            Case {
                what: "EXTENDED_COMMUNITIES of 7 octets",
                attrs: with(attr(0xc0, 16, &[0; 7])),
                action: tw,
            },
            Case {
                what: "LARGE_COMMUNITY of 11 octets",
                attrs: with(attr(0xc0, 32, &[0; 11])),
                action: tw,
            },
        ]
    }

    /// (the Adj-RIB-In split announced it, the RIB holds it)
    fn both_readings(u: &UpdateMsg) -> (bool, bool) {
        use tortie_bgp_rib::{LocalAddrs, PeerInfo, PoolConfig, Rib, RibConfig};
        let split = split_update(u, 64512)
            .get(&Family::IPV4_UNICAST)
            .is_some_and(|c| !c.announced.is_empty());
        let mut cfg = RibConfig::new(64512, "10.0.0.1".parse().unwrap());
        cfg.policy.pools.push(PoolConfig {
            cidr: "10.244.0.0/16".parse().unwrap(),
            disable_bgp_export: false,
        });
        let mut rib = Rib::new(cfg, Duration::ZERO);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let mut info = PeerInfo::new(peer, 64512, "10.0.0.2".parse().unwrap(), 64512);
        info.local = LocalAddrs {
            v4: Some("10.0.0.1".parse().unwrap()),
            v6: None,
        };
        rib.peer_up(info, Duration::ZERO).unwrap();
        rib.update(peer, u, Duration::ZERO).unwrap();
        (split, !rib.query(None).is_empty())
    }

    #[test]
    fn the_adj_rib_in_split_and_the_rib_agree_on_each_attribute_error() {
        for c in cases() {
            let bytes = update_bytes(&c.attrs);
            let msg = match decode(&bytes, &DecodeContext::four_octet()) {
                Ok(Some((Message::Update(u), _))) => u,
                other => panic!("{}: {other:?}", c.what),
            };
            assert_eq!(msg.action(), c.action, "{}: {:?}", c.what, msg.errors);
            let usable = !c.action.is_some_and(ErrorAction::withdraws_announcements);
            assert_eq!(both_readings(&msg), (usable, usable), "{}", c.what);
        }
    }

    #[test]
    fn every_action_reads_the_same_in_both() {
        // AFI/SAFI disable and session reset are never reported for the
        // IPv4 NLRI field by the decoder; set them by hand.
        for action in [
            ErrorAction::AttributeDiscard,
            ErrorAction::TreatAsWithdraw,
            ErrorAction::AfiSafiDisable,
            ErrorAction::SessionReset,
        ] {
            let mut u = announcement(&[]);
            u.attributes.next_hop = Some("10.0.0.2".parse().unwrap());
            u.nlri = vec![Nlri::new("10.244.2.0/26".parse().unwrap())];
            u.errors.push(tortie_bgp_wire::UpdateError {
                action,
                type_code: 0,
                family: None,
                error: tortie_bgp_wire::DecodeError::MalformedAttributeList { reason: "test" },
            });
            let usable = !action.withdraws_announcements();
            assert_eq!(both_readings(&u), (usable, usable), "{action:?}");
        }
    }
}
