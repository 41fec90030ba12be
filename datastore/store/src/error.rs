//! The one error type every backend returns.

use crate::Revision;

/// What went wrong in a store operation; callers branch on the variant.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist (update, CAS delete, or a typed get).
    #[error("{key}: not found")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },
    /// `create` found the key already present.
    #[error("{key}: already exists")]
    AlreadyExists {
        /// The key that exists.
        key: String,
    },
    /// A compare-and-swap saw another revision than expected: re-read and retry.
    #[error("{key}: revision conflict (expected {expected}, found {actual})")]
    Conflict {
        /// The key whose revision differed.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The revision found in the store (0 when the key is gone).
        actual: Revision,
    },
    /// The history the watch asked for was compacted: re-list, then watch from
    /// the list's revision + 1.
    #[error("revision {requested} is compacted (oldest kept is {compact_revision}); re-list and watch again")]
    Compacted {
        /// The revision the watch wanted to start from.
        requested: Revision,
        /// The oldest revision whose changes are still kept.
        compact_revision: Revision,
    },
    /// The store's revision went back below what this client already saw:
    /// it was replaced (restored from an older backup, wiped). Nothing of
    /// what was read before can be trusted: re-list, then watch again.
    #[error("the datastore went back from revision {seen} to {current} (restored or replaced); re-list and watch again")]
    Rewound {
        /// The highest revision this watch had already seen.
        seen: Revision,
        /// The store's revision now.
        current: Revision,
    },
    /// The request itself is malformed (e.g. a transaction naming a key twice,
    /// compacting a future revision).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The datastore URL or options are not usable.
    #[error("invalid datastore configuration: {0}")]
    Config(String),
    /// The backend cannot be reached or timed out; retrying later may work.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    /// A SQLite error that is not one of the above.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An etcd error that is not one of the above.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A file-system error (creating the database directory, reading TLS files).
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// True for errors where retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
