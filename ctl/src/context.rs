//! Global options (datastore, etcd TLS, logging) and opening the store.

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use tortie_datastore::{BlockingStore, EtcdTls, OpenOptions, DEFAULT_DATASTORE};

/// A mistake in how tortiectl was invoked (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Options every command takes (flags win over environment).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Datastore: sqlite:///path or etcd://h1:2379[,h2:2379].
    #[arg(long, global = true, env = "TORTIE_DATASTORE", default_value = DEFAULT_DATASTORE)]
    pub datastore: String,
    /// CA bundle (PEM) for TLS to etcd.
    #[arg(long, global = true, env = "TORTIE_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for TLS to etcd.
    #[arg(long, global = true, env = "TORTIE_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key (PEM) for TLS to etcd.
    #[arg(long, global = true, env = "TORTIE_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// tracing filter (e.g. debug, tortie_datastore=trace); default warn.
    #[arg(long, global = true, env = "RUST_LOG")]
    pub log_level: Option<String>,
}

/// What commands need from the global options.
#[derive(Debug)]
pub struct Context {
    /// The datastore URL.
    pub datastore: String,
    /// Backend options (etcd TLS).
    pub options: OpenOptions,
}

impl GlobalArgs {
    /// Checks the options and builds the command context.
    pub fn context(&self) -> anyhow::Result<Context> {
        let mut options = OpenOptions::default();
        options.etcd.tls = EtcdTls {
            ca: self.etcd_ca.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
        };
        tortie_datastore::DatastoreUrl::parse(&self.datastore)
            .map_err(|e| UsageError(format!("--datastore: {e}")))?;
        Ok(Context {
            datastore: self.datastore.clone(),
            options,
        })
    }
}

impl Context {
    /// Opens the datastore (creating an SQLite file and its directory).
    pub fn open(&self) -> anyhow::Result<BlockingStore> {
        Ok(BlockingStore::open(&self.datastore, &self.options)?)
    }
}

/// Logs to stderr with `filter` (default `warn`: a CLI's stdout is for output).
pub fn init_logging(filter: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
