//! Inputs from sessions: a peer comes up or goes down, an UPDATE arrives.
//! Import checks (RFC 4271 §9.1.2 AS loop, RFC 4456 §8 reflection loops,
//! RFC 4271 §5.1.5 LOCAL_PREF from eBGP) and Calico's import rules run here.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tortie_bgp_wire::{Family, NextHop, Nlri, PathAttributes, Prefix, UpdateMsg};

use crate::adj_out;
use crate::config::{DownKind, ImportScope, PeerInfo};
use crate::error::RibError;
use crate::filter::FilterAction;
use crate::output::{Output, RibEvent};
use crate::rib::{Changes, PeerSlot, Rib};
use crate::table::{family_of, supported, Path, RouteAttrs, Upsert};

/// The families the RIB stores.
pub(crate) const UNICAST: [Family; 2] = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];

impl Rib {
    /// A session reached Established with `info` negotiated. A peer that
    /// was restarting gets its stale routes handled per RFC 4724 §4.2; the
    /// peer is sent our whole table and End-of-RIB (unless our own restart
    /// still defers selection).
    pub fn peer_up(&mut self, info: PeerInfo, now: Duration) -> Result<Output, RibError> {
        let addr = info.addr;
        let mut changes = Changes::default();
        let slot = match self.by_addr.get(&addr) {
            Some(&i) => {
                self.on_reconnect(i, &info, now, &mut changes);
                i
            }
            None => {
                let i = self.allocate_slot()?;
                self.by_addr.insert(addr, i);
                i
            }
        };
        let previous = self.peers[usize::from(slot)].take();
        if previous.as_ref().is_some_and(|p| p.paths > 0) {
            // Its paths' export decisions depend on the peer's settings.
            self.generation += 1;
        }
        // Up only after this input's own changes are exported: the peer gets
        // the whole table below instead.
        self.peers[usize::from(slot)] = Some(PeerSlot {
            info,
            up: false,
            paths: previous.as_ref().map_or(0, |p| p.paths),
            limit_hit: false,
            stale: previous.and_then(|p| p.stale),
            eor: Vec::new(),
            forget: false,
        });
        let mut out = self.finish(changes);
        if let Some(s) = self.slot_mut(slot) {
            s.up = true;
        }
        if self.restart.is_none() {
            out.updates.extend(adj_out::full_dump(self, slot));
        }
        self.check_restart_done(now, &mut out);
        Ok(out)
    }

    /// A session left Established. [`DownKind::Graceful`] toward a peer that
    /// advertised graceful restart keeps its routes as stale (RFC 4724 §4.2);
    /// otherwise its routes are removed now.
    pub fn peer_down(
        &mut self,
        peer: IpAddr,
        how: DownKind,
        now: Duration,
    ) -> Result<Output, RibError> {
        let slot = self.slot_index(peer)?;
        let mut changes = Changes::default();
        let keep = how == DownKind::Graceful && self.retain_stale(slot, now, &mut changes);
        if !keep {
            self.flush_peer(slot, &mut changes);
        }
        let mut out = self.finish(changes);
        self.check_restart_done(now, &mut out);
        Ok(out)
    }

    /// Removes every path of `slot` and forgets the peer at the end of the input.
    pub(crate) fn flush_peer(&mut self, slot: u16, changes: &mut Changes) {
        self.remove_paths_of(slot, &UNICAST, changes, |_| true);
        if let Some(s) = self.slot_mut(slot) {
            s.up = false;
            s.stale = None;
            s.forget = true;
        }
    }

    /// Removes the paths of `slot` in `families` that `pick` selects; returns how many.
    pub(crate) fn remove_paths_of(
        &mut self,
        slot: u16,
        families: &[Family],
        changes: &mut Changes,
        pick: impl Fn(&Path) -> bool,
    ) -> usize {
        let mut removed = 0;
        for family in families {
            for (prefix, before, n) in self
                .tables
                .remove_paths(*family, |p| p.peer == slot && pick(p))
            {
                changes.note_with(prefix, Some(before));
                removed += n;
            }
        }
        if let Some(s) = self.slot_mut(slot) {
            s.paths = s.paths.saturating_sub(removed);
        }
        removed
    }

    /// An UPDATE from `peer`. RFC 7606 treat-as-withdraw (and worse) turns its
    /// announcements into withdrawals; an End-of-RIB marker goes to [`Rib::end_of_rib`].
    pub fn update(
        &mut self,
        peer: IpAddr,
        msg: &UpdateMsg,
        now: Duration,
    ) -> Result<Output, RibError> {
        let slot = self.slot_index(peer)?;
        if !self.slot_of(peer).is_some_and(|s| s.up) {
            return Err(RibError::PeerNotUp { peer });
        }
        if let Some(family) = msg.end_of_rib_family() {
            return self.end_of_rib(peer, family, now);
        }
        let reach = msg.attributes.mp_reach.as_ref().map_or(0, |r| r.nlri.len());
        let unreach_n = msg
            .attributes
            .mp_unreach
            .as_ref()
            .map_or(0, |u| u.withdrawn.len());
        let mut changes =
            Changes::with_capacity(msg.withdrawn.len() + msg.nlri.len() + reach + unreach_n);
        let mut events = Vec::new();
        let unreach = msg.attributes.mp_unreach.iter().flat_map(|u| &u.withdrawn);
        for n in msg.withdrawn.iter().chain(unreach) {
            self.remove_path(slot, n, &mut changes);
        }
        // RFC 7606 §2, the wire crate's one rule: treat-as-withdraw or worse
        // (AFI/SAFI disable and reset are the speaker's to act on).
        let unusable = msg.announcements_withdrawn();
        let v4_next_hop = msg.attributes.next_hop.map(IpAddr::V4);
        let mut groups: Vec<(&[Nlri], Option<IpAddr>)> = vec![(&msg.nlri, v4_next_hop)];
        if let Some(r) = msg
            .attributes
            .mp_reach
            .as_ref()
            .filter(|r| supported(r.family))
        {
            groups.push((&r.nlri, Some(next_hop_addr(&r.next_hop))));
        }
        for (nlri, next_hop) in groups.into_iter().filter(|(n, _)| !n.is_empty()) {
            let shared = match unusable {
                true => None,
                false => self.import_attrs(slot, &msg.attributes, next_hop),
            };
            for n in nlri {
                match &shared {
                    Some(a) if self.acceptable(slot, &n.prefix) => {
                        self.insert_path(slot, n, a.clone(), &mut changes, &mut events);
                    }
                    _ => self.remove_path(slot, n, &mut changes),
                }
            }
        }
        let mut out = self.finish(changes);
        out.events.extend(events);
        Ok(out)
    }

    fn remove_path(&mut self, slot: u16, n: &Nlri, changes: &mut Changes) {
        let rx_id = n.path_id.unwrap_or(0);
        if !self
            .tables
            .get(&n.prefix)
            .is_some_and(|d| d.has_source(slot, rx_id))
        {
            return;
        }
        changes.note(&self.tables, &n.prefix);
        self.tables.modify(&n.prefix, |d| {
            d.remove_where(|p| p.peer == slot && p.rx_id == rx_id)
        });
        if let Some(s) = self.slot_mut(slot) {
            s.paths = s.paths.saturating_sub(1);
        }
    }

    fn insert_path(
        &mut self,
        slot: u16,
        n: &Nlri,
        attrs: Arc<RouteAttrs>,
        changes: &mut Changes,
        events: &mut Vec<RibEvent>,
    ) {
        let rx_id = n.path_id.unwrap_or(0);
        let before = self.tables.get(&n.prefix).cloned();
        let known = before.as_ref().is_some_and(|d| d.has_source(slot, rx_id));
        let Some(s) = self.slot_mut(slot) else {
            return;
        };
        if let Some(limit) = s
            .info
            .max_prefixes
            .filter(|l| !known && s.paths >= *l as usize)
        {
            // RFC 4486 §4: the speaker closes the session; report it once.
            if !s.limit_hit {
                s.limit_hit = true;
                events.push(RibEvent::MaxPrefixExceeded {
                    peer: s.info.addr,
                    limit,
                });
            }
            return;
        }
        changes.note_with(n.prefix, before);
        if self.tables.upsert(&n.prefix, Path::new(attrs, slot, rx_id)) == Upsert::Added {
            if let Some(s) = self.slot_mut(slot) {
                s.paths += 1;
            }
        }
    }

    /// Loop checks and attribute clean-up shared by all NLRI of one UPDATE;
    /// `None` when the route must not be used.
    fn import_attrs(
        &mut self,
        slot: u16,
        attrs: &PathAttributes,
        next_hop: Option<IpAddr>,
    ) -> Option<Arc<RouteAttrs>> {
        let info = &self.peers[usize::from(slot)].as_ref()?.info;
        let own = attrs
            .as_path
            .iter()
            .flat_map(|p| &p.segments)
            .flat_map(|s| &s.asns)
            .filter(|&&a| a == self.cfg.asn)
            .count();
        // RFC 4271 §9.1.2: a route whose AS_PATH contains our AS is excluded
        // (allowas-in relaxes this by a count, as BIRD and FRR do).
        if own > usize::from(info.allowas_in) {
            return None;
        }
        let ebgp = !info.role.is_ibgp();
        if !ebgp {
            // RFC 4456 §8: our own ORIGINATOR_ID, or our CLUSTER_ID in the
            // CLUSTER_LIST, means a reflection loop: ignore the route.
            if attrs.originator_id == Some(self.cfg.router_id) {
                return None;
            }
            if self
                .cfg
                .cluster_id
                .is_some_and(|c| attrs.cluster_list.contains(&c))
            {
                return None;
            }
        }
        let mut a = attrs.clone();
        a.next_hop = None;
        a.mp_reach = None;
        a.mp_unreach = None;
        if ebgp {
            // RFC 4271 §5.1.5: LOCAL_PREF from an external peer is ignored;
            // RFC 4456 §8: ORIGINATOR_ID and CLUSTER_LIST only mean something inside the AS.
            a.local_pref = None;
            a.originator_id = None;
            a.cluster_list.clear();
        }
        Some(self.pool.intern(RouteAttrs { next_hop, attrs: a }))
    }

    /// The peer's BGPFilter import rules, then Calico's import rules, for
    /// `prefix` from the peer in `slot`.
    pub(crate) fn acceptable(&self, slot: u16, prefix: &Prefix) -> bool {
        let Some(s) = self.peers[usize::from(slot)].as_ref() else {
            return false;
        };
        if !s.info.families.contains(&family_of(prefix)) {
            return false;
        }
        // The peer's BGPFilter rules first, then its default rules (confd:
        // the filter functions, then `accept` or Calico's own import rules).
        if let Some(action) = s.info.filters.import.decide(prefix, true) {
            return action == FilterAction::Accept;
        }
        match s.info.import {
            ImportScope::ClusterNode => self.cfg.policy.acceptable_from_node(prefix),
            ImportScope::External => true,
        }
    }
}

fn next_hop_addr(nh: &NextHop) -> IpAddr {
    match nh {
        NextHop::V4(a) => IpAddr::V4(*a),
        NextHop::V6 { global, .. } => IpAddr::V6(*global),
    }
}
