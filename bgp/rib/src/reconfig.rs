//! Policy changes at run time: exports are recomputed for every prefix and
//! every update group under the old and the new rules, and the difference
//! is sent; routes from other nodes that the new import rules refuse are
//! dropped, and the nodes are asked to send their routes again (RFC 2918),
//! since routes refused before were not kept. The same for one peer's
//! BGPFilter rules ([`Rib::set_peer_filters`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use tortie_bgp_wire::{Family, Prefix};

use crate::adj_out::{group_batches, Change};
use crate::config::{ImportScope, PeerInfo};
use crate::error::RibError;
use crate::export::{Export, Exporter, GroupKey};
use crate::filter::PeerFilters;
use crate::input::UNICAST;
use crate::output::{Output, RibEvent};
use crate::policy::PolicyConfig;
use crate::rib::{Changes, Rib};
use crate::table::{family_of, LOCAL_SLOT};

/// One family's prefixes and what a peer is sent for each.
type PeerExports = (Family, Vec<Prefix>, Vec<Vec<Export>>);

impl Rib {
    /// Replaces the export and import rules (pools, local blocks, service
    /// CIDRs, prefix advertisements).
    pub fn set_policy(&mut self, policy: PolicyConfig) -> Output {
        let mut prefixes: Vec<Prefix> = UNICAST
            .iter()
            .flat_map(|f| self.tables.prefixes(*f))
            .collect();
        prefixes.sort();
        let groups = self.groups();
        let before = self.exports_per_group(&groups, &prefixes);
        let import_changed = self.cfg.policy.pools != policy.pools
            || self.cfg.policy.service_cidrs != policy.service_cidrs
            || self.cfg.policy.local_blocks != policy.local_blocks
            // A newly lent address: its holder's /32 may have been refused
            // (and not kept) before our snapshot knew it was lent.
            || policy.lent.iter().any(|p| !self.cfg.policy.lent.contains(p));
        self.cfg.policy = policy;
        self.generation += 1;
        let mut changes = Changes::default();
        for p in &prefixes {
            self.drop_refused(p, &mut changes);
        }
        let (_, fib) = self.settle(changes);
        let mut out = Output::default();
        if self.restart.is_none() {
            out.fib = fib;
            for (key, was) in before {
                let mut ex = Exporter::new(self, &key);
                let changes: Vec<Change> = prefixes
                    .iter()
                    .zip(was)
                    .map(|(p, was)| Change {
                        was,
                        is: exports_of(&mut ex, &key, p, self),
                    })
                    .collect();
                let mut members = groups.get(&key).cloned().unwrap_or_default();
                members.sort_unstable();
                out.updates
                    .extend(group_batches(self, key.family, &members, &changes));
            }
        }
        if import_changed {
            out.events.extend(
                self.cluster_node_peers()
                    .into_iter()
                    .map(|peer| RibEvent::RouteRefreshNeeded { peer }),
            );
        }
        out.next_deadline = self.next_deadline();
        out
    }

    /// Replaces the BGPFilter rules of `peer` at run time; the session stays
    /// up. Routes the new export rules change are announced or withdrawn to
    /// that peer alone; paths of the peer the new import rules refuse are
    /// dropped, and when the import rules changed the peer is asked for its
    /// routes again (RFC 2918: [`RibEvent::RouteRefreshNeeded`]), since
    /// routes refused before were not kept. A peer not known to the RIB is
    /// an error (its filters arrive with [`Rib::peer_up`]).
    pub fn set_peer_filters(
        &mut self,
        peer: IpAddr,
        filters: PeerFilters,
    ) -> Result<Output, RibError> {
        let slot = self.slot_index(peer)?;
        let Some(old) = self.slot_of(peer).map(|s| s.info.clone()) else {
            return Err(RibError::UnknownPeer { peer });
        };
        if old.filters == filters {
            return Ok(Output::default());
        }
        let up = self.slot_of(peer).is_some_and(|s| s.up);
        let import_changed = old.filters.import != filters.import;
        let export_changed = up && old.filters.export != filters.export;
        let was = match export_changed {
            true => self.peer_exports(&old),
            false => Vec::new(),
        };
        if let Some(s) = self.slot_mut(slot) {
            s.info.filters = filters;
        }
        self.generation += 1;
        let mut changes = Changes::default();
        if import_changed {
            self.drop_refused_from(slot, &mut changes);
        }
        let mut out = self.finish(changes);
        if export_changed && self.restart.is_none() {
            let Some(new) = self.slot_of(peer).map(|s| s.info.clone()) else {
                return Ok(out);
            };
            for (family, prefixes, before) in was {
                let key = GroupKey::of(&new, family);
                let mut ex = Exporter::new(self, &key);
                let changes: Vec<Change> = prefixes
                    .iter()
                    .zip(before)
                    .map(|(p, was)| Change {
                        was,
                        is: ex.exports(p, self.tables.get(p)),
                    })
                    .collect();
                out.updates
                    .extend(group_batches(self, family, &[slot], &changes));
            }
        }
        if import_changed && up {
            out.events.push(RibEvent::RouteRefreshNeeded { peer });
        }
        out.next_deadline = self.next_deadline();
        Ok(out)
    }

    /// What `info`'s peer is sent, per family: the prefixes and their exports.
    fn peer_exports(&self, info: &PeerInfo) -> Vec<PeerExports> {
        info.families
            .iter()
            .map(|f| {
                let key = GroupKey::of(info, *f);
                let mut ex = Exporter::new(self, &key);
                let mut prefixes = self.tables.prefixes(*f);
                prefixes.sort();
                let all = prefixes
                    .iter()
                    .map(|p| ex.exports(p, self.tables.get(p)))
                    .collect();
                (*f, prefixes, all)
            })
            .collect()
    }

    /// Removes the paths of `slot` its import rules now refuse.
    fn drop_refused_from(&mut self, slot: u16, changes: &mut Changes) {
        let refused: Vec<Prefix> = UNICAST
            .iter()
            .flat_map(|f| self.tables.prefixes(*f))
            .filter(|p| {
                let has = self
                    .tables
                    .get(p)
                    .is_some_and(|d| d.paths().iter().any(|x| x.peer == slot));
                has && !self.acceptable(slot, p)
            })
            .collect();
        for p in &refused {
            changes.note(&self.tables, p);
            self.tables
                .modify(p, |d| d.remove_where(|x| x.peer == slot));
        }
        if let Some(s) = self.slot_mut(slot) {
            s.paths = s.paths.saturating_sub(refused.len());
        }
    }

    /// What every group is sent for each of `prefixes` under the rules in force.
    fn exports_per_group(
        &self,
        groups: &BTreeMap<GroupKey, Vec<u16>>,
        prefixes: &[Prefix],
    ) -> Vec<(GroupKey, Vec<Vec<Export>>)> {
        groups
            .keys()
            .map(|k| {
                let mut ex = Exporter::new(self, k);
                let all = prefixes
                    .iter()
                    .map(|p| exports_of(&mut ex, k, p, self))
                    .collect();
                (k.clone(), all)
            })
            .collect()
    }

    fn drop_refused(&mut self, p: &Prefix, changes: &mut Changes) {
        if self.cfg.policy.acceptable_from_node(p) {
            return;
        }
        let refused: Vec<u16> = self.tables.get(p).map_or_else(Vec::new, |d| {
            d.paths()
                .iter()
                .map(|x| x.peer)
                .filter(|&s| s != LOCAL_SLOT && self.is_cluster_node(s))
                // A BGPFilter Accept of the peer overrides the cluster rules.
                .filter(|&s| !self.acceptable(s, p))
                .collect()
        });
        if refused.is_empty() {
            return;
        }
        changes.note(&self.tables, p);
        self.tables
            .modify(p, |d| d.remove_where(|x| refused.contains(&x.peer)));
        for s in refused {
            if let Some(slot) = self.slot_mut(s) {
                slot.paths = slot.paths.saturating_sub(1);
            }
        }
    }

    fn is_cluster_node(&self, slot: u16) -> bool {
        self.peers
            .get(usize::from(slot))
            .and_then(|s| s.as_ref())
            .is_some_and(|s| s.info.import == ImportScope::ClusterNode)
    }

    fn cluster_node_peers(&self) -> Vec<std::net::IpAddr> {
        let mut v: Vec<_> = self
            .peers
            .iter()
            .flatten()
            .filter(|s| s.up && s.info.import == ImportScope::ClusterNode)
            .map(|s| s.info.addr)
            .collect();
        v.sort();
        v
    }

    pub(crate) fn addrs(&self, slots: &[u16]) -> Vec<std::net::IpAddr> {
        let mut v: Vec<_> = slots
            .iter()
            .filter_map(|s| {
                self.peers
                    .get(usize::from(*s))?
                    .as_ref()
                    .map(|x| x.info.addr)
            })
            .collect();
        v.sort();
        v
    }
}

fn exports_of(ex: &mut Exporter<'_>, key: &GroupKey, p: &Prefix, rib: &Rib) -> Vec<Export> {
    if family_of(p) != key.family {
        return Vec::new();
    }
    ex.exports(p, rib.tables.get(p))
}
