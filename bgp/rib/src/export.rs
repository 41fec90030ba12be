//! Export rules: which paths go to which update group and with what
//! attributes (`adj_out.rs` turns them into batches).
//!
//! Rules: RFC 4271 §9.2 (iBGP-learned routes are not sent to iBGP peers),
//! RFC 4456 §6 and §8 (reflection and its attributes), RFC 1997 well-known
//! communities, RFC 4271 §5.1 attribute handling, RFC 7911 path ids, and
//! the peers' BGPFilter export rules, then Calico's export filter
//! ([`crate::PolicyConfig::exportable`]).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use tortie_bgp_wire::{
    AsPath, AsSegment, Community, Family, MpReach, NextHop, Nlri, Origin, PathAttributes, Prefix,
    SegmentType,
};

use crate::config::{NextHopMode, PeerInfo, PeerRole};
use crate::filter::{FilterAction, FilterRule};
use crate::rib::{ptr_of, Rib};
use crate::table::{Dest, FastMap, Path, LOCAL_SLOT};

/// One path as a group is sent it.
#[derive(Clone, Debug)]
pub(crate) struct Export {
    /// The NLRI, with our path id under ADD-PATH send.
    pub(crate) nlri: Nlri,
    /// The attributes as sent.
    pub(crate) attrs: Arc<PathAttributes>,
    /// The peer slot the path came from (split horizon).
    pub(crate) src: u16,
}

/// What makes two peers receive identical UPDATEs for one family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct GroupKey {
    pub(crate) family: Family,
    pub(crate) role: PeerRole,
    pub(crate) next_hop_mode: NextHopMode,
    pub(crate) local_nh: Option<IpAddr>,
    pub(crate) add_path: bool,
    pub(crate) encode_class: u32,
    /// The peers' BGPFilter export rules for this family (peers with
    /// different filters are sent different routes).
    pub(crate) filter: Vec<FilterRule>,
}

impl GroupKey {
    /// The group of `info` for `family`.
    pub(crate) fn of(info: &PeerInfo, family: Family) -> Self {
        let local_nh = match family_of_is_v4(family) {
            true => info.local.v4.map(IpAddr::V4),
            false => info.local.v6.map(IpAddr::V6),
        };
        GroupKey {
            family,
            role: info.role,
            next_hop_mode: info.next_hop_mode,
            local_nh,
            add_path: info.add_path_tx.contains(&family),
            encode_class: info.encode_class,
            filter: info
                .filters
                .export
                .for_family(family_of_is_v4(family))
                .to_vec(),
        }
    }
}

fn family_of_is_v4(family: Family) -> bool {
    family.afi == tortie_bgp_wire::Afi::Ipv4
}

/// RFC 4271 §9.2 and RFC 4456 §6: may a path learned from `src` (`None` =
/// ours) be sent to a peer of role `dst`?
fn may_send(src: Option<PeerRole>, dst: PeerRole, reflector: bool) -> bool {
    match (src, dst) {
        (None, _) | (_, PeerRole::Ebgp) | (Some(PeerRole::Ebgp), _) => true,
        // RFC 4456 §6: a client's route is reflected to clients and non-clients.
        (Some(PeerRole::IbgpClient), _) => reflector,
        // RFC 4456 §6: a non-client's route is reflected to clients only.
        (Some(PeerRole::IbgpNonClient), PeerRole::IbgpClient) => reflector,
        // RFC 4271 §9.2: iBGP-learned routes are not sent to other iBGP peers.
        (Some(PeerRole::IbgpNonClient), PeerRole::IbgpNonClient) => false,
    }
}

/// Computes one group's exports, caching rewritten attributes.
pub(crate) struct Exporter<'a> {
    rib: &'a Rib,
    key: &'a GroupKey,
    /// Keyed per exported path (twice per changed prefix): foldhash, not SipHash.
    cache: FastMap<(usize, u16, u32), Option<Arc<PathAttributes>>>,
    interned: HashSet<Arc<PathAttributes>>,
}

impl<'a> Exporter<'a> {
    pub(crate) fn new(rib: &'a Rib, key: &'a GroupKey) -> Self {
        Exporter {
            rib,
            key,
            cache: FastMap::default(),
            interned: HashSet::new(),
        }
    }

    /// What this group is sent for `prefix` given destination `dest`.
    pub(crate) fn exports(&mut self, prefix: &Prefix, dest: Option<&Dest>) -> Vec<Export> {
        let Some(d) = dest else {
            return Vec::new();
        };
        let calico = self.rib.cfg.policy.exportable(prefix);
        if !calico && self.key.filter.is_empty() {
            return Vec::new();
        }
        // RFC 4271 §9.1.3: only the best path, unless ADD-PATH send is
        // negotiated (RFC 7911): then the whole multipath set, so ECMP and
        // anycast paths survive reflection.
        let paths = if self.key.add_path {
            d.ecmp()
        } else {
            &d.paths()[..1]
        };
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            if !self.passes_filters(prefix, p, calico) {
                continue;
            }
            if let Some(a) = self.attrs_for(prefix, p) {
                let nlri = match self.key.add_path {
                    true => Nlri::with_path_id(*prefix, p.tx_id()),
                    false => Nlri::new(*prefix),
                };
                out.push(Export {
                    nlri,
                    attrs: a,
                    src: p.peer,
                });
            }
        }
        out
    }

    /// The group's BGPFilter export rules, then Calico's export filter
    /// (`calico`), as confd's `export filter { 'bgp_f_exportFilterV4'();
    /// calico_export_to_bgp_peers(...); reject; }`.
    fn passes_filters(&self, prefix: &Prefix, path: &Path, calico: bool) -> bool {
        let learned = path.peer != LOCAL_SLOT;
        let first = self.key.filter.iter().find(|r| r.matches(prefix, learned));
        match first {
            Some(r) => r.action == FilterAction::Accept,
            None => calico,
        }
    }

    fn attrs_for(&mut self, prefix: &Prefix, path: &Path) -> Option<Arc<PathAttributes>> {
        let mask = self.rib.cfg.policy.advertisement_mask(prefix);
        let k = (ptr_of(&path.attrs), path.peer, mask);
        if let Some(v) = self.cache.get(&k) {
            return v.clone();
        }
        let v = self
            .rewrite(path, mask)
            .map(|a| match self.interned.get(&a) {
                Some(shared) => shared.clone(),
                None => {
                    let shared = Arc::new(a);
                    self.interned.insert(shared.clone());
                    shared
                }
            });
        self.cache.insert(k, v.clone());
        v
    }

    /// The attributes `path` is sent with, or `None` when it may not be sent.
    fn rewrite(&self, path: &Path, mask: u32) -> Option<PathAttributes> {
        let src = self
            .rib
            .peers
            .get(usize::from(path.peer))
            .and_then(|s| s.as_ref())
            .map(|s| &s.info);
        let reflector = self.rib.cfg.cluster_id.is_some();
        if !may_send(src.map(|s| s.role), self.key.role, reflector) {
            return None;
        }
        let mut a = path.attrs.attrs.clone();
        self.add_communities(&mut a, mask);
        // RFC 1997: NO_ADVERTISE goes to no peer, NO_EXPORT to no external peer.
        if a.communities.contains(&Community::NO_ADVERTISE) {
            return None;
        }
        if self.key.role == PeerRole::Ebgp && a.communities.contains(&Community::NO_EXPORT) {
            return None;
        }
        a.origin.get_or_insert(Origin::Igp);
        match self.key.role {
            PeerRole::Ebgp => self.to_external(&mut a, src.is_none()),
            _ => self.to_internal(&mut a, src),
        }
        self.set_next_hop(&mut a, path, src.is_none())?;
        Some(a)
    }

    fn add_communities(&self, a: &mut PathAttributes, mask: u32) {
        let advs = &self.rib.cfg.policy.prefix_advertisements;
        let applies = advs
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << (*i).min(31)) != 0);
        for (_, adv) in applies {
            for c in &adv.communities {
                if !a.communities.contains(c) {
                    a.communities.push(*c);
                }
            }
            for c in &adv.large_communities {
                if !a.large_communities.contains(c) {
                    a.large_communities.push(*c);
                }
            }
        }
    }

    fn to_external(&self, a: &mut PathAttributes, ours: bool) {
        prepend(
            a.as_path.get_or_insert_with(AsPath::default),
            self.rib.cfg.asn,
        );
        // RFC 4271 §5.1.5: LOCAL_PREF is not sent to external peers.
        a.local_pref = None;
        // RFC 4271 §5.1.4: a MED received from a neighbouring AS is not
        // propagated to other ASes; ours is.
        if !ours {
            a.med = None;
        }
        // RFC 4456 §8: reflection attributes stay inside the AS.
        a.originator_id = None;
        a.cluster_list.clear();
    }

    fn to_internal(&self, a: &mut PathAttributes, src: Option<&PeerInfo>) {
        // RFC 4271 §5.1.5: LOCAL_PREF is included in every UPDATE to an internal peer.
        a.local_pref.get_or_insert(100);
        // RFC 4271 §5.1.2 a: our own routes go to internal peers with an empty AS_PATH.
        a.as_path.get_or_insert_with(AsPath::default);
        if let Some(s) = src.filter(|s| s.role.is_ibgp()) {
            // RFC 4456 §8: the reflector sets ORIGINATOR_ID (if absent) and
            // prepends its CLUSTER_ID to the CLUSTER_LIST.
            a.originator_id.get_or_insert(s.router_id);
            let cluster = self.rib.cfg.cluster_id.unwrap_or(self.rib.cfg.router_id);
            a.cluster_list.insert(0, cluster);
        }
    }

    /// Next hop self or keep (Calico's nextHopMode; BIRD's `next hop self` /
    /// `next hop keep`); `None` when the family has no usable next hop.
    fn set_next_hop(&self, a: &mut PathAttributes, path: &Path, ours: bool) -> Option<()> {
        let use_self = ours
            || match self.key.next_hop_mode {
                NextHopMode::SelfAddr => true,
                NextHopMode::Keep => false,
                NextHopMode::Auto => self.key.role == PeerRole::Ebgp,
            };
        let nh = match use_self {
            true => self.key.local_nh?,
            false => path.attrs.next_hop.or(self.key.local_nh)?,
        };
        match (family_of_is_v4(self.key.family), nh) {
            (true, IpAddr::V4(v4)) => a.next_hop = Some(v4),
            (false, IpAddr::V6(global)) => {
                a.mp_reach = Some(MpReach {
                    family: self.key.family,
                    next_hop: NextHop::V6 {
                        global,
                        link_local: None,
                    },
                    nlri: Vec::new(),
                });
            }
            _ => return None,
        }
        Some(())
    }
}

/// RFC 4271 §5.1.2 b: our AS goes first, in a leading AS_SEQUENCE.
fn prepend(path: &mut AsPath, asn: u32) {
    match path.segments.first_mut() {
        Some(s) if s.kind == SegmentType::Sequence && s.asns.len() < 255 => s.asns.insert(0, asn),
        _ => path.segments.insert(
            0,
            AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![asn],
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_rules_follow_rfc_4456_section_6() {
        use PeerRole::*;
        assert!(may_send(Some(IbgpClient), IbgpClient, true));
        assert!(may_send(Some(IbgpClient), IbgpNonClient, true));
        assert!(may_send(Some(IbgpNonClient), IbgpClient, true));
        assert!(!may_send(Some(IbgpNonClient), IbgpNonClient, true));
        assert!(!may_send(Some(IbgpClient), IbgpClient, false));
        assert!(may_send(Some(Ebgp), IbgpNonClient, false));
        assert!(may_send(Some(IbgpNonClient), Ebgp, false));
        assert!(may_send(None, IbgpNonClient, false));
    }

    #[test]
    fn our_as_is_prepended_into_the_leading_sequence() {
        let mut p = AsPath::from_sequence([65001, 65002]);
        prepend(&mut p, 64512);
        assert_eq!(p, AsPath::from_sequence([64512, 65001, 65002]));
        let mut empty = AsPath::default();
        prepend(&mut empty, 64512);
        assert_eq!(empty, AsPath::from_sequence([64512]));
    }
}
