//! Desired vs observed state of a keyed set, with the pending writes that
//! would make them equal (after Calico felix's `deltatracker`).

use std::collections::{BTreeMap, BTreeSet};

/// Tracks what should be in the dataplane and what was last seen there.
///
/// A key is *pending update* when desired holds a value the dataplane does
/// not have (or has differently), and *pending delete* when the dataplane
/// holds a key that is not desired.
#[derive(Debug, Clone)]
pub struct DeltaTracker<K: Ord + Clone, V: Eq + Clone> {
    desired: BTreeMap<K, V>,
    observed: BTreeMap<K, V>,
    pending_updates: BTreeSet<K>,
    pending_deletes: BTreeSet<K>,
}

impl<K: Ord + Clone, V: Eq + Clone> Default for DeltaTracker<K, V> {
    fn default() -> Self {
        Self {
            desired: BTreeMap::new(),
            observed: BTreeMap::new(),
            pending_updates: BTreeSet::new(),
            pending_deletes: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone, V: Eq + Clone> DeltaTracker<K, V> {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn recompute(&mut self, k: &K) {
        self.pending_updates.remove(k);
        self.pending_deletes.remove(k);
        match (self.desired.get(k), self.observed.get(k)) {
            (Some(d), Some(o)) if d == o => {}
            (Some(_), _) => {
                self.pending_updates.insert(k.clone());
            }
            (None, Some(_)) => {
                self.pending_deletes.insert(k.clone());
            }
            (None, None) => {}
        }
    }

    /// Wants `k` to hold `v`.
    pub fn set_desired(&mut self, k: K, v: V) {
        self.desired.insert(k.clone(), v);
        self.recompute(&k);
    }

    /// No longer wants `k`.
    pub fn delete_desired(&mut self, k: &K) {
        self.desired.remove(k);
        self.recompute(k);
    }

    /// Replaces the whole desired view.
    pub fn replace_all_desired(&mut self, desired: BTreeMap<K, V>) {
        let old = std::mem::replace(&mut self.desired, desired);
        let keys: Vec<K> = old.keys().chain(self.desired.keys()).cloned().collect();
        for k in keys {
            self.recompute(&k);
        }
    }

    /// The dataplane was seen holding `v` at `k`.
    pub fn on_observed_set(&mut self, k: K, v: V) {
        self.observed.insert(k.clone(), v);
        self.recompute(&k);
    }

    /// The dataplane was seen without `k`.
    pub fn on_observed_delete(&mut self, k: &K) {
        self.observed.remove(k);
        self.recompute(k);
    }

    /// Replaces the whole observed view (a resync after a full dump).
    pub fn replace_all_observed(&mut self, observed: BTreeMap<K, V>) {
        self.resync_observed(observed.into_iter().collect());
    }

    /// Replaces the whole observed view with the entries of a dump (any
    /// order; a later duplicate key wins). The dump is sorted and merged with
    /// the current view in one walk, and only entries that differ are
    /// touched: a resync of a large, unchanged table builds no new map.
    pub fn resync_observed(&mut self, mut dump: Vec<(K, V)>) {
        dump.sort_by(|a, b| a.0.cmp(&b.0));
        dump.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let mut gone = Vec::new();
        let mut set = Vec::new();
        let mut old = self.observed.iter().peekable();
        for (k, v) in dump {
            while let Some((ok, _)) = old.next_if(|(ok, _)| **ok < k) {
                gone.push(ok.clone());
            }
            match old.next_if(|(ok, _)| **ok == k) {
                Some((_, ov)) if *ov == v => {}
                _ => set.push((k, v)),
            }
        }
        gone.extend(old.map(|(k, _)| k.clone()));
        for k in gone {
            self.on_observed_delete(&k);
        }
        for (k, v) in set {
            self.on_observed_set(k, v);
        }
    }

    /// Desired value of `k`.
    pub fn desired(&self, k: &K) -> Option<&V> {
        self.desired.get(k)
    }

    /// Observed value of `k`.
    pub fn observed(&self, k: &K) -> Option<&V> {
        self.observed.get(k)
    }

    /// Number of desired entries.
    pub fn desired_len(&self) -> usize {
        self.desired.len()
    }

    /// Number of observed entries.
    pub fn observed_len(&self) -> usize {
        self.observed.len()
    }

    /// Keys to write with their desired values.
    pub fn pending_updates(&self) -> impl Iterator<Item = (&K, &V)> {
        self.pending_updates
            .iter()
            .filter_map(|k| self.desired.get(k).map(|v| (k, v)))
    }

    /// Keys to delete with their observed values.
    pub fn pending_deletes(&self) -> impl Iterator<Item = (&K, &V)> {
        self.pending_deletes
            .iter()
            .filter_map(|k| self.observed.get(k).map(|v| (k, v)))
    }

    /// True when nothing is pending.
    pub fn in_sync(&self) -> bool {
        self.pending_updates.is_empty() && self.pending_deletes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_desired_key_missing_from_the_dataplane_is_a_pending_update() {
        let mut t = DeltaTracker::new();
        t.set_desired(1, "a");
        assert_eq!(t.pending_updates().collect::<Vec<_>>(), vec![(&1, &"a")]);
        assert!(!t.in_sync());
        t.on_observed_set(1, "a");
        assert!(t.in_sync());
    }

    #[test]
    fn an_observed_key_not_desired_is_a_pending_delete() {
        let mut t = DeltaTracker::new();
        t.on_observed_set(2, "x");
        assert_eq!(t.pending_deletes().collect::<Vec<_>>(), vec![(&2, &"x")]);
        t.on_observed_delete(&2);
        assert!(t.in_sync());
    }

    #[test]
    fn a_different_observed_value_is_a_pending_update() {
        let mut t = DeltaTracker::new();
        t.set_desired(1, "a");
        t.on_observed_set(1, "b");
        assert_eq!(t.pending_updates().count(), 1);
        assert_eq!(t.pending_deletes().count(), 0);
    }

    #[test]
    fn a_resync_dump_in_any_order_replaces_the_observed_view() {
        let mut t = DeltaTracker::new();
        for (k, v) in [(1, "a"), (2, "b"), (3, "c"), (5, "e")] {
            t.set_desired(k, v);
            t.on_observed_set(k, v);
        }
        t.resync_observed(vec![(4, "d"), (3, "x"), (1, "a"), (2, "z"), (2, "b")]);
        assert_eq!(t.observed_len(), 4);
        assert_eq!(t.observed(&2), Some(&"b"), "the later duplicate wins");
        let upd: Vec<_> = t.pending_updates().map(|(k, _)| *k).collect();
        let del: Vec<_> = t.pending_deletes().map(|(k, _)| *k).collect();
        assert_eq!((upd, del), (vec![3, 5], vec![4]));
    }

    #[test]
    fn a_resync_that_shows_a_lost_entry_makes_it_pending_again() {
        let mut t = DeltaTracker::new();
        t.set_desired(1, "a");
        t.on_observed_set(1, "a");
        t.replace_all_observed(BTreeMap::new());
        assert_eq!(t.pending_updates().count(), 1);
    }
}
