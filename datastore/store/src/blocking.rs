//! A synchronous face for short-lived programs (tortiectl, the CNI plugin):
//! one current-thread tokio runtime that drives a [`Store`].

use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::store::{KeyValue, ListResult, Revision, Store, TxnOp};
use crate::OpenOptions;

/// A store plus the runtime that drives it; every method blocks.
///
/// Must not be used from inside an async context (it would block the
/// caller's runtime); async code uses the [`Store`] directly.
#[derive(Debug)]
pub struct BlockingStore {
    runtime: Driver,
    store: Arc<dyn Store>,
}

/// The runtime a [`BlockingStore`] blocks on: its own, or a program's.
#[derive(Debug)]
enum Driver {
    Own(tokio::runtime::Runtime),
    Shared(tokio::runtime::Handle),
}

impl Driver {
    fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        match self {
            Driver::Own(r) => r.block_on(fut),
            Driver::Shared(h) => h.block_on(fut),
        }
    }
}

impl BlockingStore {
    /// Opens `url` (see [`crate::open`]) on a new current-thread runtime.
    pub fn open(url: &str, options: &OpenOptions) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start a runtime: {e}")))?;
        let store = runtime.block_on(crate::open(url, options))?;
        Ok(Self {
            runtime: Driver::Own(runtime),
            store,
        })
    }

    /// Opens `url` on a runtime the program already runs (`handle`), for a
    /// long-running program that calls the store from its blocking threads
    /// (`spawn_blocking`) and should not start a second runtime.
    pub fn open_on(
        url: &str,
        options: &OpenOptions,
        handle: tokio::runtime::Handle,
    ) -> Result<Self> {
        let store = handle.block_on(crate::open(url, options))?;
        Ok(Self {
            runtime: Driver::Shared(handle),
            store,
        })
    }

    /// Opens `url` and hands the store to `wrap` (e.g. a
    /// [`crate::CountingStore`]) before this face uses it.
    pub fn open_wrapped(
        url: &str,
        options: &OpenOptions,
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
    ) -> Result<Self> {
        let mut s = Self::open(url, options)?;
        s.store = wrap(s.store);
        Ok(s)
    }

    /// As [`BlockingStore::open_wrapped`], on a runtime the program already
    /// runs (see [`BlockingStore::open_on`]).
    pub fn open_on_wrapped(
        url: &str,
        options: &OpenOptions,
        handle: tokio::runtime::Handle,
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
    ) -> Result<Self> {
        let mut s = Self::open_on(url, options, handle)?;
        s.store = wrap(s.store);
        Ok(s)
    }

    /// The async store (e.g. to run several operations in one `block_on`).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs any future on this store's runtime.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }

    /// See [`Store::get`].
    pub fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.runtime.block_on(self.store.get(key))
    }

    /// See [`Store::list`].
    pub fn list(&self, prefix: &str) -> Result<ListResult> {
        self.runtime.block_on(self.store.list(prefix))
    }

    /// See [`Store::create`].
    pub fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        self.runtime.block_on(self.store.create(key, value))
    }

    /// See [`Store::update`].
    pub fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        self.runtime
            .block_on(self.store.update(key, value, expected))
    }

    /// See [`Store::put`].
    pub fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        self.runtime.block_on(self.store.put(key, value))
    }

    /// See [`Store::delete`].
    pub fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision> {
        self.runtime.block_on(self.store.delete(key, expected))
    }

    /// See [`Store::txn`].
    pub fn txn(&self, ops: Vec<TxnOp>) -> Result<Revision> {
        self.runtime.block_on(self.store.txn(ops))
    }
}
