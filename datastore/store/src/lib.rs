//! The datastore every tortie process shares: a [`Store`] trait (key/value
//! with revisions, compare-and-swap, all-or-none transactions, resumable
//! watches) with an embedded SQLite backend and an etcd v3 backend, keyed
//! like Calico's etcd v3 layout.
//!
//! The [`typed`] module stores `tortie-model` resources on top of it.
//!
//! Must not: interpret values below the typed layer (a `Store` holds
//! bytes), retry writes on its own (callers decide after a `Conflict`), or
//! hide a compacted watch (it fails with `Compacted`).

pub mod blocking;
pub mod counting;
pub mod error;
pub mod etcd;
pub mod keys;
pub mod sqlite;
pub mod store;
pub mod typed;
mod url;

use std::sync::Arc;

pub use blocking::BlockingStore;
pub use counting::{CountingStore, StoreStats};
pub use error::{Result, StoreError};
pub use etcd::{EtcdOptions, EtcdStore, EtcdTls};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{KeyValue, ListResult, Revision, Store, TxnOp, WatchEvent, WatchStream};
pub use url::{DatastoreUrl, DEFAULT_DATASTORE};

/// Options of [`open`] for both backends (each uses its own part).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// etcd key prefix and TLS.
    pub etcd: EtcdOptions,
    /// SQLite history and watch polling.
    pub sqlite: SqliteOptions,
}

/// Opens the datastore named by `url`: `sqlite:///path/to/file.db` or
/// `etcd://host:port[,host:port...]`.
pub async fn open(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>> {
    match DatastoreUrl::parse(url)? {
        DatastoreUrl::Sqlite(path) => {
            let opts = options.sqlite.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, opts))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening sqlite failed: {e}")))??;
            Ok(Arc::new(store))
        }
        DatastoreUrl::Etcd(endpoints) => Ok(Arc::new(
            EtcdStore::connect(&endpoints, &options.etcd).await?,
        )),
    }
}
