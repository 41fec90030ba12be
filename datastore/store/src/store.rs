//! The `Store` trait: a key/value store with revisions, compare-and-swap,
//! all-or-none transactions and resumable watches.

use std::pin::Pin;

use futures::future::BoxFuture;
use futures::Stream;

use crate::error::{Result, StoreError};

/// A store revision: etcd's mod_revision, or the SQLite change-log sequence.
///
/// Revisions grow by one per successful write (a transaction is one write),
/// start at 1, and are never reused.
pub type Revision = i64;

/// One stored value with the revision of its last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, without any backend prefix (e.g. `/ipam/v2/handle/h1`).
    pub key: String,
    /// The value (JSON bytes by convention).
    pub value: Vec<u8>,
    /// Revision of the last write to this key (use it for compare-and-swap).
    pub revision: Revision,
    /// Revision at which the key was created.
    pub create_revision: Revision,
}

/// A consistent snapshot of every key under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// The keys under the prefix, sorted by key.
    pub items: Vec<KeyValue>,
    /// The store revision of the snapshot: watch from `revision + 1` to see
    /// every later change exactly once.
    pub revision: Revision,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or updated.
    Put(KeyValue),
    /// The key was deleted at `revision`.
    Delete {
        /// The deleted key.
        key: String,
        /// Revision of the delete.
        revision: Revision,
    },
}

impl WatchEvent {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) => kv.revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }
}

/// A watch: events in revision order; an `Err` item is final (e.g.
/// `StoreError::Compacted`). Dropping the stream cancels the watch.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// One operation of an all-or-none transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Create `key`; fails the transaction with `AlreadyExists` if present.
    Create {
        /// Key to create.
        key: String,
        /// Its value.
        value: Vec<u8>,
    },
    /// Replace `key` if its revision is `expected`; `NotFound`/`Conflict` otherwise.
    Update {
        /// Key to update.
        key: String,
        /// Its new value.
        value: Vec<u8>,
        /// The revision the caller read.
        expected: Revision,
    },
    /// Create or replace `key` unconditionally.
    Put {
        /// Key to write.
        key: String,
        /// Its value.
        value: Vec<u8>,
    },
    /// Delete `key`; with `expected`, only at that revision. `NotFound` if absent.
    Delete {
        /// Key to delete.
        key: String,
        /// The revision the caller read, if the delete is a compare-and-swap.
        expected: Option<Revision>,
    },
}

impl TxnOp {
    /// The key the operation writes.
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Create { key, .. }
            | TxnOp::Update { key, .. }
            | TxnOp::Put { key, .. }
            | TxnOp::Delete { key, .. } => key,
        }
    }
}

/// A key/value store with revisions, shared by every tortie process.
///
/// The trait is async (boxed futures, so `dyn Store` works) because the node
/// agent and the BGP speaker are tokio programs; short-lived programs wrap a
/// store in [`crate::BlockingStore`]. Keys are absolute paths without the
/// backend's prefix (see [`crate::keys`]); values are opaque bytes.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The value at `key`, or `None`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>>;

    /// Every key starting with `prefix`, sorted, with the snapshot's revision.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<ListResult>>;

    /// Creates `key`; `AlreadyExists` if it is present. Returns the new revision.
    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>>;

    /// Replaces `key` only if its revision is `expected` (compare-and-swap).
    /// `NotFound` if absent, `Conflict` if changed. Returns the new revision.
    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Revision,
    ) -> BoxFuture<'a, Result<Revision>>;

    /// Creates or replaces `key` unconditionally. Returns the new revision.
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>>;

    /// Deletes `key` (only at revision `expected` when given). `NotFound` if
    /// absent, `Conflict` if changed. Returns the revision of the delete.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<Revision>>;

    /// Applies every operation or none, as one revision. The first failing
    /// condition is reported with its key. An empty list is a no-op that
    /// returns the current revision.
    fn txn(&self, ops: Vec<TxnOp>) -> BoxFuture<'_, Result<Revision>>;

    /// Changes to keys under `prefix` with revision `>= from_revision`, in
    /// revision order, until the stream is dropped. `from_revision == 0`
    /// means "changes after now". A start older than the kept history fails
    /// with `StoreError::Compacted` (as the stream's first item or here).
    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        from_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream>>;

    /// Forgets the change history before `revision` (watches from older
    /// revisions then fail with `Compacted`). Current values are kept.
    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>>;

    /// The current store revision.
    fn revision(&self) -> BoxFuture<'_, Result<Revision>>;
}

/// Rejects a transaction naming one key twice (etcd refuses those too).
pub(crate) fn check_distinct(ops: &[TxnOp]) -> Result<()> {
    let mut keys: Vec<&str> = ops.iter().map(TxnOp::key).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(StoreError::InvalidRequest(format!(
            "transaction names key {} twice",
            w[0]
        )));
    }
    Ok(())
}

/// Checks an operation's condition against the key's current
/// `(create_rev, mod_rev)`.
pub(crate) fn check_op(op: &TxnOp, current: Option<(Revision, Revision)>) -> Result<()> {
    let key = op.key().to_string();
    match (op, current) {
        (TxnOp::Create { .. }, Some(_)) => Err(StoreError::AlreadyExists { key }),
        (TxnOp::Update { .. } | TxnOp::Delete { .. }, None) => Err(StoreError::NotFound { key }),
        (TxnOp::Update { expected, .. }, Some((_, actual)))
        | (
            TxnOp::Delete {
                expected: Some(expected),
                ..
            },
            Some((_, actual)),
        ) if *expected != actual => Err(StoreError::Conflict {
            key,
            expected: *expected,
            actual,
        }),
        _ => Ok(()),
    }
}
