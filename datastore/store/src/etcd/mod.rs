//! The etcd v3 backend (`etcd://h1:2379[,h2:2379]`): keys live under a
//! configurable prefix (default `/tortie`), compare-and-swap is an etcd
//! transaction on `mod_revision` (create: `create_revision == 0`), watches
//! resume from the last seen revision + 1 after any disconnect.

mod watch;

pub use watch::reconnects as watch_reconnects;

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, TlsOptions, Txn,
    TxnOpResponse,
};
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::error::{Result, StoreError};
use crate::keys::prefix_end;
use crate::store::{
    check_distinct, check_op, KeyValue, ListResult, Revision, Store, TxnOp, WatchStream,
};

/// Keys fetched per range request when listing (lists are paged at one revision).
const LIST_PAGE: i64 = 2_000;
/// Deadline of one unary request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS material for etcd (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA bundle that signs the etcd server certificate.
    pub ca: Option<PathBuf>,
    /// Client certificate.
    pub cert: Option<PathBuf>,
    /// Client key.
    pub key: Option<PathBuf>,
}

impl EtcdTls {
    /// True when any TLS file is configured (the endpoints then use https).
    pub fn enabled(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// Connection settings of the etcd backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Prefix of every key (Calico uses `/calico`), without a trailing `/`.
    pub prefix: String,
    /// TLS files; plain HTTP when none is set.
    pub tls: EtcdTls,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            prefix: "/tortie".to_string(),
            tls: EtcdTls::default(),
        }
    }
}

/// A [`Store`] in etcd v3.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| StoreError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn tls_options(tls: &EtcdTls) -> Result<TlsOptions> {
    let mut o = TlsOptions::new();
    if let Some(ca) = &tls.ca {
        o = o.ca_certificate(Certificate::from_pem(read_file(ca)?));
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            o = o.identity(Identity::from_pem(read_file(cert)?, read_file(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Config(
                "--etcd-cert and --etcd-key must be given together".into(),
            ))
        }
    }
    Ok(o)
}

/// Maps connection-level failures to `Unavailable`, the rest as is.
pub(crate) fn map_err(e: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    match &e {
        E::TransportError(_) | E::IoError(_) => StoreError::Unavailable(e.to_string()),
        // gRPC codes 1 Cancelled, 4 DeadlineExceeded, 14 Unavailable.
        E::GRpcStatus(s) if matches!(s.code() as i32, 1 | 4 | 14) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Etcd(e),
    }
}

impl EtcdStore {
    /// Connects to `endpoints` (`host:port`); the connection is made lazily
    /// and re-made after failures.
    pub async fn connect(endpoints: &[String], options: &EtcdOptions) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::Config(
                "etcd:// needs at least one host:port".into(),
            ));
        }
        let scheme = if options.tls.enabled() {
            "https"
        } else {
            "http"
        };
        let urls: Vec<String> = endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if options.tls.enabled() {
            connect = connect.with_tls(tls_options(&options.tls)?);
        }
        let client = Client::connect(&urls, Some(connect))
            .await
            .map_err(map_err)?;
        Ok(Self {
            client,
            prefix: options.prefix.trim_end_matches('/').to_string(),
            endpoints: endpoints.to_vec(),
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// The etcd key range `[start, end)` of a logical prefix.
    fn range(&self, prefix: &str) -> (String, Vec<u8>) {
        let start = if prefix.is_empty() {
            format!("{}/", self.prefix)
        } else {
            self.full(prefix)
        };
        let end = prefix_end(&start).unwrap_or_else(|| vec![0]);
        (start, end)
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key_str()
            .map_err(map_err)?
            .strip_prefix(&self.prefix)
            .unwrap_or_default()
            .to_string();
        Ok(KeyValue {
            key,
            value: kv.value().to_vec(),
            revision: kv.mod_revision(),
            create_revision: kv.create_revision(),
        })
    }

    async fn timed<T>(
        fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(r) => r.map_err(map_err),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd did not answer within {REQUEST_TIMEOUT:?}"
            ))),
        }
    }

    async fn get_kv(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut c = self.client.clone();
        let resp = Self::timed(c.get(self.full(key), None)).await?;
        resp.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn list_all(&self, prefix: &str) -> Result<ListResult> {
        let (mut start, end) = self.range(prefix);
        let mut c = self.client.clone();
        let mut items = Vec::new();
        let mut revision = 0;
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            let resp = Self::timed(c.get(start.clone(), Some(opts))).await?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or_default();
            }
            for kv in resp.kvs() {
                items.push(self.kv(kv)?);
            }
            match (resp.more(), resp.kvs().last()) {
                (true, Some(last)) => {
                    let mut next = last.key().to_vec();
                    next.push(0);
                    start = String::from_utf8(next)
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                }
                _ => break,
            }
        }
        Ok(ListResult { items, revision })
    }

    /// The compare and the request of one operation.
    fn txn_parts(&self, op: &TxnOp) -> (Option<Compare>, etcd_client::TxnOp) {
        let key = self.full(op.key());
        match op {
            TxnOp::Create { value, .. } => (
                Some(Compare::create_revision(key.clone(), CompareOp::Equal, 0)),
                etcd_client::TxnOp::put(key, value.clone(), None),
            ),
            TxnOp::Update {
                value, expected, ..
            } => (
                Some(Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    *expected,
                )),
                etcd_client::TxnOp::put(key, value.clone(), None),
            ),
            TxnOp::Put { value, .. } => (None, etcd_client::TxnOp::put(key, value.clone(), None)),
            TxnOp::Delete { expected, .. } => (
                Some(match expected {
                    Some(rev) => Compare::mod_revision(key.clone(), CompareOp::Equal, *rev),
                    None => Compare::create_revision(key.clone(), CompareOp::Greater, 0),
                }),
                etcd_client::TxnOp::delete(key, None),
            ),
        }
    }

    async fn write(&self, ops: Vec<TxnOp>) -> Result<Revision> {
        check_distinct(&ops)?;
        if ops.is_empty() {
            return self.current_revision().await;
        }
        let (compares, requests): (Vec<_>, Vec<_>) =
            ops.iter().map(|op| self.txn_parts(op)).unzip();
        let compares: Vec<Compare> = compares.into_iter().flatten().collect();
        // On failure, read every key back in the same revision to say which failed.
        let reads: Vec<etcd_client::TxnOp> = ops
            .iter()
            .map(|op| etcd_client::TxnOp::get(self.full(op.key()), None))
            .collect();
        let txn = Txn::new().when(compares).and_then(requests).or_else(reads);
        let mut c = self.client.clone();
        let resp = match Self::timed(c.txn(txn)).await {
            Err(StoreError::Etcd(e)) if e.to_string().contains("too many operations") => {
                return Err(StoreError::InvalidRequest(format!(
                    "a transaction of {} operations exceeds this etcd's --max-txn-ops \
                     (128 by default); write fewer resources at once",
                    ops.len()
                )))
            }
            r => r?,
        };
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        if resp.succeeded() {
            return Ok(revision);
        }
        for (op, r) in ops.iter().zip(resp.op_responses()) {
            let current = match r {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .map(|kv| (kv.create_revision(), kv.mod_revision())),
                _ => None,
            };
            check_op(op, current)?;
        }
        Err(StoreError::Unavailable(
            "etcd transaction failed but no condition was violated".into(),
        ))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut c = self.client.clone();
        let resp =
            Self::timed(c.get(self.full("/"), Some(GetOptions::new().with_count_only()))).await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    async fn compact_at(&self, revision: Revision) -> Result<()> {
        let mut c = self.client.clone();
        match Self::timed(c.compact(revision, None)).await {
            Ok(_) => Ok(()),
            Err(StoreError::Etcd(e)) if e.to_string().contains("has been compacted") => Ok(()),
            Err(StoreError::Etcd(e)) if e.to_string().contains("future revision") => Err(
                StoreError::InvalidRequest(format!("cannot compact at future revision {revision}")),
            ),
            Err(e) => Err(e),
        }
    }
}

impl Store for EtcdStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        self.get_kv(key).boxed()
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<ListResult>> {
        self.list_all(prefix).boxed()
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>> {
        self.write(vec![TxnOp::Create {
            key: key.to_string(),
            value,
        }])
        .boxed()
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Revision,
    ) -> BoxFuture<'a, Result<Revision>> {
        self.write(vec![TxnOp::Update {
            key: key.to_string(),
            value,
            expected,
        }])
        .boxed()
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<Revision>> {
        async move {
            let mut c = self.client.clone();
            let resp = Self::timed(c.put(self.full(key), value, None)).await?;
            Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BoxFuture<'a, Result<Revision>> {
        self.write(vec![TxnOp::Delete {
            key: key.to_string(),
            expected,
        }])
        .boxed()
    }

    fn txn(&self, ops: Vec<TxnOp>) -> BoxFuture<'_, Result<Revision>> {
        self.write(ops).boxed()
    }

    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        from_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        async move {
            let from = if from_revision <= 0 {
                self.current_revision().await? + 1
            } else {
                from_revision
            };
            let (start, end) = self.range(prefix);
            Ok(watch::start(watch::WatchSpec {
                client: self.client.clone(),
                prefix: self.prefix.clone(),
                start,
                end,
                from,
            }))
        }
        .boxed()
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        self.compact_at(revision).boxed()
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision>> {
        self.current_revision().boxed()
    }
}
