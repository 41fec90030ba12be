//! Adj-RIBs-Out as a computation (RFC 4271 §3.2 does not require storing
//! them): what each update group must be sent when prefixes change, and the
//! whole table for a peer that comes up.
//!
//! Peers with the same export-relevant settings form one update group and
//! share one computed (attributes, NLRI) list, so an UPDATE is formatted once
//! per group, not once per peer (FRR's trick). Split horizon, as BIRD does: a
//! path is never sent back to the peer it came from; the few members that
//! are the source of a changed path get a batch of their own.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use tortie_bgp_wire::{Family, Nlri, PathAttributes, Prefix};

use crate::export::{Export, Exporter, GroupKey};
use crate::output::{Announcement, UpdateBatch};
use crate::rib::Rib;
use crate::table::{family_of, Dest, FastMap};

/// What one group was sent for a prefix, and what it must be sent now.
pub(crate) struct Change {
    pub(crate) was: Vec<Export>,
    pub(crate) is: Vec<Export>,
}

/// Collects withdrawals and announcements grouped by attribute set.
#[derive(Default)]
pub(crate) struct BatchBuilder {
    withdraw: Vec<Nlri>,
    announce: Vec<Announcement>,
    /// Attribute pointer → position in `announce`, looked up per NLRI.
    index: FastMap<usize, usize>,
    /// Paths the receiver has after the changes minus before.
    delta: i64,
}

impl BatchBuilder {
    /// Records what changes from `was` to `is` for one prefix, leaving out
    /// the paths that came from `receiver` (split horizon).
    pub(crate) fn diff(&mut self, was: &[Export], is: &[Export], receiver: Option<u16>) {
        let keep = |e: &&Export| Some(e.src) != receiver;
        let count = |v: &[Export]| v.iter().filter(keep).count() as i64;
        self.delta += count(is) - count(was);
        for w in was.iter().filter(keep) {
            if !is.iter().filter(keep).any(|e| e.nlri == w.nlri) {
                self.withdraw.push(w.nlri);
            }
        }
        for e in is.iter().filter(keep) {
            let same = was.iter().filter(keep).any(|w| {
                w.nlri == e.nlri && (Arc::ptr_eq(&w.attrs, &e.attrs) || *w.attrs == *e.attrs)
            });
            if !same {
                self.announce_one(e.nlri, &e.attrs);
            }
        }
    }

    fn announce_one(&mut self, n: Nlri, a: &Arc<PathAttributes>) {
        let key = Arc::as_ptr(a) as usize;
        match self.index.get(&key) {
            Some(&i) => self.announce[i].nlri.push(n),
            None => {
                self.index.insert(key, self.announce.len());
                self.announce.push(Announcement {
                    attrs: a.clone(),
                    nlri: vec![n],
                });
            }
        }
    }

    /// The batch, or `None` when there is nothing to send.
    pub(crate) fn finish(self, peers: Vec<IpAddr>, family: Family) -> Option<UpdateBatch> {
        let empty = self.withdraw.is_empty() && self.announce.is_empty();
        if empty || peers.is_empty() {
            return None;
        }
        Some(UpdateBatch {
            peers,
            family,
            withdraw: self.withdraw,
            announce: self.announce,
            end_of_rib: false,
            adj_out_delta: self.delta,
        })
    }
}

/// Batches for one update group: one shared by the members that are the
/// source of none of the paths involved, one per member that is.
pub(crate) fn group_batches(
    rib: &Rib,
    family: Family,
    members: &[u16],
    changes: &[Change],
) -> Vec<UpdateBatch> {
    let involved: BTreeSet<u16> = changes
        .iter()
        .flat_map(|c| c.was.iter().chain(&c.is))
        .map(|e| e.src)
        .filter(|s| members.binary_search(s).is_ok())
        .collect();
    let shared: Vec<u16> = members
        .iter()
        .copied()
        .filter(|m| !involved.contains(m))
        .collect();
    let mut out = Vec::new();
    let mut b = BatchBuilder::default();
    for c in changes {
        b.diff(&c.was, &c.is, None);
    }
    out.extend(b.finish(rib.addrs(&shared), family));
    for x in involved {
        let mut b = BatchBuilder::default();
        for c in changes {
            b.diff(&c.was, &c.is, Some(x));
        }
        if let Some(batch) = b.finish(rib.addrs(&[x]), family) {
            merge_into(&mut out, batch);
        }
    }
    out
}

/// Adds `batch` to `out`, or its peers to an equal batch already there (so
/// identical contents are still encoded once).
fn merge_into(out: &mut Vec<UpdateBatch>, batch: UpdateBatch) {
    let same = |b: &&mut UpdateBatch| {
        b.withdraw == batch.withdraw
            && b.announce == batch.announce
            && b.end_of_rib == batch.end_of_rib
            && b.adj_out_delta == batch.adj_out_delta
    };
    match out.iter_mut().find(same) {
        Some(b) => {
            b.peers.extend(batch.peers);
            b.peers.sort();
        }
        None => out.push(batch),
    }
}

/// Export differences of the changed prefixes for every update group.
pub(crate) fn diff_all(rib: &Rib, old: &[(Prefix, Option<Dest>)]) -> Vec<UpdateBatch> {
    let mut batches = Vec::new();
    for (key, mut members) in rib.groups() {
        members.sort_unstable();
        let mut ex = Exporter::new(rib, &key);
        let relevant = old.iter().filter(|(p, _)| family_of(p) == key.family);
        // Calico's export filter first: most prefixes stop here without a
        // table lookup (unless the group's BGPFilter rules may accept them).
        let changes: Vec<Change> = relevant
            .filter(|(p, _)| !key.filter.is_empty() || rib.cfg.policy.exportable(p))
            .map(|(p, before)| Change {
                was: ex.exports(p, before.as_ref()),
                is: ex.exports(p, rib.tables.get(p)),
            })
            .collect();
        batches.extend(group_batches(rib, key.family, &members, &changes));
    }
    batches
}

/// A group's whole table, kept while the Loc-RIB does not change.
#[derive(Debug)]
pub(crate) struct Dump {
    generation: u64,
    table: Vec<Export>,
    announce: Vec<Announcement>,
    /// Peer slots that are the source of some path in `table`, sorted.
    sources: Vec<u16>,
}

/// The whole Adj-RIB-Out of one peer, one batch per family, each ending
/// with End-of-RIB (RFC 4724 §2): sent when the session comes up. Peers of
/// one update group that come up while nothing changed share the computation.
pub(crate) fn full_dump(rib: &mut Rib, slot: u16) -> Vec<UpdateBatch> {
    let Some(info) = rib
        .peers
        .get(usize::from(slot))
        .and_then(|s| s.as_ref())
        .map(|s| s.info.clone())
    else {
        return Vec::new();
    };
    let mut batches = Vec::new();
    for family in &info.families {
        let key = GroupKey::of(&info, *family);
        let dump = match rib
            .dump_cache
            .get(&key)
            .filter(|d| d.generation == rib.generation)
        {
            Some(d) => d.clone(),
            None => {
                let d = Arc::new(dump(rib, &key));
                let generation = rib.generation;
                rib.dump_cache.retain(|_, d| d.generation == generation);
                rib.dump_cache.insert(key, d.clone());
                d
            }
        };
        let announce = match dump.sources.binary_search(&slot) {
            Err(_) => dump.announce.clone(),
            Ok(_) => {
                // Split horizon: leave out the peer's own paths.
                let mut b = BatchBuilder::default();
                b.diff(&[], &dump.table, Some(slot));
                b.announce
            }
        };
        let adj_out_delta = announce.iter().map(|a| a.nlri.len() as i64).sum();
        batches.push(UpdateBatch {
            peers: vec![info.addr],
            family: *family,
            withdraw: Vec::new(),
            announce,
            end_of_rib: true,
            adj_out_delta,
        });
    }
    batches
}

fn dump(rib: &Rib, key: &GroupKey) -> Dump {
    let table = whole_table(rib, key);
    let mut b = BatchBuilder::default();
    b.diff(&[], &table, None);
    let mut sources: Vec<u16> = table.iter().map(|e| e.src).collect();
    sources.sort_unstable();
    sources.dedup();
    Dump {
        generation: rib.generation,
        table,
        announce: b.announce,
        sources,
    }
}

/// Every path `key`'s group is sent, in prefix order.
fn whole_table(rib: &Rib, key: &GroupKey) -> Vec<Export> {
    let mut ex = Exporter::new(rib, key);
    let mut prefixes = rib.tables.prefixes(key.family);
    prefixes.sort();
    prefixes
        .iter()
        .flat_map(|p| ex.exports(p, rib.tables.get(p)))
        .collect()
}

/// The Adj-RIB-Out of `slot` for `family` as it stands: what it has been sent.
pub(crate) fn adj_rib_out(
    rib: &Rib,
    slot: u16,
    family: Family,
) -> Vec<(Nlri, Arc<PathAttributes>)> {
    let Some(info) = rib.peers.get(usize::from(slot)).and_then(|s| s.as_ref()) else {
        return Vec::new();
    };
    whole_table(rib, &GroupKey::of(&info.info, family))
        .into_iter()
        .filter(|e| e.src != slot)
        .map(|e| (e.nlri, e.attrs))
        .collect()
}
