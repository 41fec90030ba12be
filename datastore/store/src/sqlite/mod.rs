//! The SQLite backend (`sqlite:///path`): one database file shared by every
//! tortie process on a machine (WAL mode, busy retries), a change log for
//! watches, checked through `PRAGMA data_version` when inotify reports a
//! write to the database's files (and on a slow safety poll).

mod files;
mod notify;
mod ops;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use rusqlite::Connection;

use crate::error::{Result, StoreError};
use crate::store::{KeyValue, ListResult, Revision, Store, TxnOp, WatchStream};

/// Tuning of the SQLite backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Revisions of change history kept for watches (auto-compaction every
    /// 1,000 revisions); 0 keeps everything.
    pub history: Revision,
    /// How often a watch checks the database for commits while it is
    /// "hot" (shortly after an inotify event or a change it delivered);
    /// without inotify, an idle watch checks every 50 ms.
    pub poll_interval: std::time::Duration,
    /// How often an idle watch checks anyway (the safety poll, one `PRAGMA
    /// data_version`, 60 s by default: an inotify event can only be lost
    /// on a queue overflow or a removed directory, and both wake every
    /// watch; without inotify the watch polls every `poll_interval`).
    pub idle_poll_interval: std::time::Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            history: 10_000,
            poll_interval: std::time::Duration::from_millis(1),
            idle_poll_interval: std::time::Duration::from_secs(60),
        }
    }
}

/// A [`Store`] in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    options: SqliteOptions,
}

impl SqliteStore {
    /// Opens (creating if needed, with its parent directory) the database
    /// at `path`; its files are private (see [`files`]).
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self> {
        files::prepare(path)?;
        let conn = ops::connect(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
            options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this store's watches wake on inotify events (`Ok`) or fall
    /// back to polling every `poll_interval` (`Err` says why).
    pub fn watch_wakeups(&self) -> std::result::Result<(), String> {
        notify::subscribe(&self.path).map(drop)
    }

    /// Runs `f` on the shared connection on tokio's blocking pool (SQLite
    /// calls block, up to the busy timeout when another process writes).
    fn run<T, F>(&self, f: F) -> BoxFuture<'static, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut guard)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("sqlite worker failed: {e}")))?
        }
        .boxed()
    }

    fn write(&self, ops: Vec<TxnOp>) -> BoxFuture<'static, Result<Revision>> {
        let history = self.options.history;
        self.run(move |c| ops::write(c, &ops, history))
    }
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        let key = key.to_string();
        self.run(move |c| ops::get(c, &key))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<ListResult>> {
        let prefix = prefix.to_string();
        self.run(move |c| ops::list(c, &prefix))
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>> {
        let key = key.to_string();
        self.write(vec![TxnOp::Create { key, value }])
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Revision,
    ) -> BoxFuture<'a, Result<Revision>> {
        let key = key.to_string();
        self.write(vec![TxnOp::Update {
            key,
            value,
            expected,
        }])
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>> {
        let key = key.to_string();
        self.write(vec![TxnOp::Put { key, value }])
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<Revision>> {
        let key = key.to_string();
        self.write(vec![TxnOp::Delete { key, expected }])
    }

    fn txn(&self, ops: Vec<TxnOp>) -> BoxFuture<'_, Result<Revision>> {
        self.write(ops)
    }

    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        from_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        let path = self.path.clone();
        let prefix = prefix.to_string();
        let polls = watch::Polls {
            hot: self.options.poll_interval,
            idle: self.options.idle_poll_interval,
        };
        async move {
            tokio::task::spawn_blocking(move || watch::start(&path, prefix, from_revision, polls))
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("sqlite watch failed to start: {e}"))
                })?
        }
        .boxed()
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        self.run(move |c| ops::compact(c, revision))
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision>> {
        self.run(|c| ops::revision(c))
    }
}
