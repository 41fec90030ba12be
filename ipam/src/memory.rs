//! An in-memory [`IpamStore`] for unit and property tests and for tools that
//! simulate many nodes in one process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::store::{Entry, IpamKey, IpamStore, ListScope, Revision, StoreError, Write};

/// A thread-safe in-memory store with a global revision counter, like etcd.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rev: Revision,
    objects: BTreeMap<IpamKey, Entry>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic in another test thread must not hide this store's data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn in_scope(key: &IpamKey, scope: &ListScope) -> bool {
    match (scope, key) {
        (ListScope::Blocks, IpamKey::Block(_)) => true,
        (ListScope::Handles, IpamKey::Handle(_)) => true,
        (ListScope::Affinities(None), IpamKey::Affinity { .. }) => true,
        (ListScope::Affinities(Some(n)), IpamKey::Affinity { node, .. }) => n == node,
        _ => false,
    }
}

impl IpamStore for MemoryStore {
    fn get(&self, key: &IpamKey) -> Result<Option<Entry>, StoreError> {
        Ok(self.lock().objects.get(key).cloned())
    }

    fn list(&self, scope: &ListScope) -> Result<Vec<(IpamKey, Entry)>, StoreError> {
        Ok(self
            .lock()
            .objects
            .iter()
            .filter(|(k, _)| in_scope(k, scope))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect())
    }

    fn commit(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        let mut g = self.lock();
        for w in writes {
            check(&g.objects, w)?;
        }
        g.rev += 1;
        let revision = g.rev;
        for w in writes {
            match w {
                Write::Create(k, v) | Write::Update(k, v, _) => {
                    let value = v.clone();
                    g.objects.insert(k.clone(), Entry { value, revision });
                }
                Write::Delete(k, _) => {
                    g.objects.remove(k);
                }
            }
        }
        Ok(revision)
    }
}

fn check(objects: &BTreeMap<IpamKey, Entry>, w: &Write) -> Result<(), StoreError> {
    let current = objects.get(w.key()).map(|e| e.revision);
    match (w, current) {
        (Write::Create(k, _), Some(_)) => Err(StoreError::AlreadyExists(k.clone())),
        (Write::Create(..), None) => Ok(()),
        (Write::Update(k, _, _) | Write::Delete(k, _), None) => {
            Err(StoreError::NotFound(k.clone()))
        }
        (Write::Update(k, _, r) | Write::Delete(k, r), Some(cur)) if cur != *r => {
            Err(StoreError::Conflict(k.clone()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_compare_and_swap_on_the_revision_and_all_or_none() {
        let s = MemoryStore::new();
        let k = IpamKey::Handle("h".into());
        let k2 = IpamKey::Handle("h2".into());
        let r1 = s.commit(&[Write::Create(k.clone(), "1".into())]).unwrap();
        let dup = s.commit(&[Write::Create(k.clone(), "2".into())]);
        assert!(matches!(dup, Err(StoreError::AlreadyExists(_))));
        let r2 = s
            .commit(&[Write::Update(k.clone(), "2".into(), r1)])
            .unwrap();
        let stale = s.commit(&[
            Write::Create(k2.clone(), "x".into()),
            Write::Update(k.clone(), "3".into(), r1),
        ]);
        assert!(matches!(stale, Err(StoreError::Conflict(_))));
        assert_eq!(s.get(&k2).unwrap(), None, "a failed commit writes nothing");
        s.commit(&[Write::Delete(k.clone(), r2)]).unwrap();
        let gone = s.commit(&[Write::Update(k.clone(), "4".into(), r2)]);
        assert!(matches!(gone, Err(StoreError::NotFound(_))));
        assert_eq!(s.get(&k).unwrap(), None);
    }
}
