//! UPDATE handling: received UPDATEs split into per-family changes for the
//! Adj-RIB-In, and our originated routes turned into UPDATEs for one peer.

use crate::rib::Path;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use tortie_bgp_wire::{
    encode_announcements, encode_withdrawals, AsPath, DecodeContext, EncodeError, ErrorAction,
    Family, MpReach, NextHop, Nlri, PathAttributes, Prefix, UpdateMsg,
};

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

/// How our routes look to one peer.
#[derive(Debug, Clone)]
pub struct Exporter {
    /// Our AS.
    pub local_asn: u32,
    /// The peer's AS (equal = iBGP).
    pub peer_asn: u32,
    /// IPv4 next hop we announce.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop we announce.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl Exporter {
    fn ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    /// The attributes sent for an originated route of `family`, or None when
    /// we have no next hop for that family.
    pub fn attrs_for(&self, family: Family, base: &PathAttributes) -> Option<PathAttributes> {
        let mut a = base.clone();
        a.origin = Some(a.origin.unwrap_or_default());
        // RFC 4271 §5.1.2: eBGP prepends our AS; iBGP originations carry an empty AS_PATH.
        let mut path = a.as_path.take().unwrap_or_default();
        if !self.ibgp() {
            let mut asns = vec![self.local_asn];
            asns.extend(path.segments.iter().flat_map(|s| s.asns.iter().copied()));
            path = AsPath::from_sequence(asns);
        }
        a.as_path = Some(path);
        // RFC 4271 §5.1.5: LOCAL_PREF only to internal peers.
        a.local_pref = if self.ibgp() {
            Some(a.local_pref.unwrap_or(100))
        } else {
            None
        };
        a.mp_unreach = None;
        if family == Family::IPV4_UNICAST {
            a.next_hop = Some(self.next_hop_v4?);
            a.mp_reach = None;
        } else {
            a.next_hop = None;
            let nh = NextHop::V6 {
                global: self.next_hop_v6?,
                link_local: None,
            };
            a.mp_reach = Some(MpReach {
                family,
                next_hop: nh,
                nlri: Vec::new(),
            });
        }
        Some(a)
    }

    /// Appends UPDATEs announcing `routes` of `family`; returns the prefixes
    /// actually announced (those we had a next hop for).
    pub fn announce(
        &self,
        family: Family,
        routes: &[(Prefix, Arc<PathAttributes>)],
        ctx: &DecodeContext,
        out: &mut Vec<u8>,
    ) -> Result<Vec<Prefix>, EncodeError> {
        let mut groups: HashMap<PathAttributes, Vec<Nlri>> = HashMap::new();
        for (p, base) in routes {
            if let Some(a) = self.attrs_for(family, base) {
                groups.entry(a).or_default().push(Nlri::new(*p));
            }
        }
        let mut sent = Vec::new();
        for (attrs, nlri) in groups {
            encode_announcements(&attrs, &nlri, ctx, out)?;
            sent.extend(nlri.iter().map(|n| n.prefix));
        }
        Ok(sent)
    }

    /// Appends UPDATEs withdrawing `prefixes` of `family`.
    pub fn withdraw(
        family: Family,
        prefixes: &[Prefix],
        ctx: &DecodeContext,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if prefixes.is_empty() {
            return Ok(());
        }
        let nlri: Vec<Nlri> = prefixes.iter().map(|p| Nlri::new(*p)).collect();
        encode_withdrawals(family, &nlri, ctx, out).map(|_| ())
    }
}

/// The family a prefix belongs to (unicast).
pub fn family_of(p: &Prefix) -> Family {
    if p.is_ipv4() {
        Family::IPV4_UNICAST
    } else {
        Family::IPV6_UNICAST
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_bgp_wire::{decode, Message, MpUnreach};

    fn exporter(peer_asn: u32) -> Exporter {
        Exporter {
            local_asn: 65001,
            peer_asn,
            next_hop_v4: Some("10.0.0.1".parse().unwrap()),
            next_hop_v6: Some("fd00::1".parse().unwrap()),
        }
    }

    fn roundtrip(family: Family, peer_asn: u32, prefixes: &[&str]) -> UpdateMsg {
        let ctx = DecodeContext::four_octet();
        let base = Arc::new(PathAttributes::default());
        let routes: Vec<_> = prefixes
            .iter()
            .map(|p| (p.parse().unwrap(), base.clone()))
            .collect();
        let mut out = Vec::new();
        let sent = exporter(peer_asn)
            .announce(family, &routes, &ctx, &mut out)
            .unwrap();
        assert_eq!(sent.len(), prefixes.len());
        match decode(&out, &ctx).unwrap().unwrap().0 {
            Message::Update(u) => u,
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn ebgp_ipv4_routes_carry_our_as_and_next_hop_and_no_local_pref() {
        let u = roundtrip(Family::IPV4_UNICAST, 65002, &["10.1.0.0/24"]);
        assert_eq!(u.attributes.as_path, Some(AsPath::from_sequence([65001])));
        assert_eq!(u.attributes.next_hop, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(u.attributes.local_pref, None);
        let c = split_update(&u, 65009);
        let v4 = &c[&Family::IPV4_UNICAST];
        assert_eq!(v4.announced.len(), 1);
        assert_eq!(
            v4.announced[0].1.next_hop,
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ibgp_ipv6_routes_go_in_mp_reach_with_local_pref_100() {
        let u = roundtrip(Family::IPV6_UNICAST, 65001, &["fd01::/64", "fd02::/64"]);
        assert_eq!(u.attributes.local_pref, Some(100));
        assert_eq!(u.attributes.as_path, Some(AsPath::default()));
        let c = split_update(&u, 65009);
        let v6 = &c[&Family::IPV6_UNICAST];
        assert_eq!(v6.announced.len(), 2);
        assert_eq!(
            v6.announced[0].1.next_hop,
            "fd00::1".parse::<IpAddr>().unwrap()
        );
        assert!(!c.contains_key(&Family::IPV4_UNICAST));
    }

    #[test]
    fn routes_with_our_own_as_in_the_path_are_withdrawn() {
        let u = roundtrip(Family::IPV4_UNICAST, 65002, &["10.1.0.0/24"]);
        let c = split_update(&u, 65001);
        let v4 = &c[&Family::IPV4_UNICAST];
        assert!(v4.announced.is_empty());
        assert_eq!(v4.withdrawn.len(), 1);
    }

    #[test]
    fn no_ipv6_next_hop_means_no_ipv6_announcement() {
        let mut e = exporter(65002);
        e.next_hop_v6 = None;
        assert!(e
            .attrs_for(Family::IPV6_UNICAST, &PathAttributes::default())
            .is_none());
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
