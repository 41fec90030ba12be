//! Policy changes at run time: exports are recomputed for every prefix and
//! every update group under the old and the new rules, and the difference
//! is sent; routes from other nodes that the new import rules refuse are
//! dropped, and the nodes are asked to send their routes again (RFC 2918),
//! since routes refused before were not kept.

use std::collections::BTreeMap;

use tortie_bgp_wire::Prefix;

use crate::adj_out::{group_batches, Change};
use crate::config::ImportScope;
use crate::export::{Export, Exporter, GroupKey};
use crate::input::UNICAST;
use crate::output::{Output, RibEvent};
use crate::policy::PolicyConfig;
use crate::rib::{Changes, Rib};
use crate::table::{family_of, LOCAL_SLOT};

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
