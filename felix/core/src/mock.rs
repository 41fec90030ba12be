//! An in-memory dataplane with one-shot failure injection, for unit and
//! property tests of the reconciler (after Calico's `mocknetlink`).

use std::collections::BTreeMap;

use crate::reconcile::RouteDataplane;
use crate::route::{RouteKey, RouteOp, RouteSpec};

/// Where the next injected failure strikes (once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// The next dump fails.
    Dump,
    /// The `n`th write (0-based) of the next apply fails.
    Write(usize),
}

/// An injected failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected failure at {0:?}")]
pub struct InjectedFailure(pub FailPoint);

/// A routing table in memory that follows the kernel's rules: replace
/// overwrites whatever holds the key, delete only matches the protocol given.
#[derive(Debug, Clone)]
pub struct MockDataplane {
    /// Every route in the table, foreign ones included.
    pub routes: BTreeMap<RouteKey, RouteSpec>,
    /// Protocols the dump returns (felix's).
    pub our_protocols: Vec<u8>,
    /// Next failure to inject.
    pub fail_next: Option<FailPoint>,
    /// Writes performed so far (failed ones included).
    pub writes: usize,
    /// Dumps performed so far.
    pub dumps: usize,
}

impl MockDataplane {
    /// An empty table; dumps return routes of `our_protocols`.
    pub fn new(our_protocols: &[u8]) -> Self {
        Self {
            routes: BTreeMap::new(),
            our_protocols: our_protocols.to_vec(),
            fail_next: None,
            writes: 0,
            dumps: 0,
        }
    }

    /// Routes of our protocols.
    pub fn ours(&self) -> BTreeMap<RouteKey, RouteSpec> {
        self.routes
            .iter()
            .filter(|(_, v)| self.our_protocols.contains(&v.protocol))
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}

impl RouteDataplane for MockDataplane {
    type Error = InjectedFailure;

    fn dump_routes(&mut self) -> Result<Vec<(RouteKey, RouteSpec)>, Self::Error> {
        self.dumps += 1;
        if self.fail_next == Some(FailPoint::Dump) {
            self.fail_next = None;
            return Err(InjectedFailure(FailPoint::Dump));
        }
        Ok(self.ours().into_iter().collect())
    }

    fn apply_routes(&mut self, ops: &[RouteOp]) -> Vec<Result<(), Self::Error>> {
        let mut out = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            self.writes += 1;
            if self.fail_next == Some(FailPoint::Write(i)) {
                self.fail_next = None;
                out.push(Err(InjectedFailure(FailPoint::Write(i))));
                continue;
            }
            match op {
                RouteOp::Replace(k, v) => {
                    self.routes.insert(*k, v.clone());
                }
                RouteOp::Delete(k, v) => {
                    if self.routes.get(k).is_some_and(|r| r.protocol == v.protocol) {
                        self.routes.remove(k);
                    }
                }
            }
            out.push(Ok(()));
        }
        out
    }
}
