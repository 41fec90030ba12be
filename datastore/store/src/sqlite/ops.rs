//! The SQL behind the SQLite backend: synchronous functions over one
//! connection, each in its own transaction; statements come from the
//! connection's statement cache (prepared once per process).

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Result, StoreError};
use crate::keys::prefix_end;
use crate::store::{check_distinct, check_op, KeyValue, ListResult, Revision, TxnOp, WatchEvent};

/// Schema: current values, the change log watches read, and counters.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    rev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key BLOB NOT NULL,
    value BLOB,
    create_rev INTEGER NOT NULL,
    PRIMARY KEY (rev, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compact_revision', 0);
";

/// How many busy-handler rounds a locked database is retried (≈10 s).
const BUSY_ROUNDS: i32 = 10_000;

/// Retries a locked database in short steps: 200 µs at first (writers hold
/// the lock for well under a millisecond), then 1 ms, for about 10 s.
fn busy_handler(round: i32) -> bool {
    if round >= BUSY_ROUNDS {
        return false;
    }
    let step = if round < 50 { 200 } else { 1_000 };
    std::thread::sleep(Duration::from_micros(step));
    true
}

/// Maps SQLite's "database is locked/busy" to `Unavailable`, the rest as is.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("sqlite database stayed locked: {e}"))
        }
        _ => StoreError::Sqlite(e),
    }
}

/// Opens `path` (creating the file and its schema), in WAL mode with the
/// busy handler installed.
pub(crate) fn connect(path: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(map_err)?;
    conn.busy_handler(Some(busy_handler)).map_err(map_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "{}: sqlite refused WAL mode (got {mode}); use a local file system",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;")
        .map_err(map_err)?;
    let has_schema: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(map_err)?
        > 0;
    if !has_schema {
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        tx.execute_batch(SCHEMA).map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        return Ok(conn);
    }
    Ok(conn)
}

/// Reads a counter from `meta`.
fn meta(conn: &Connection, name: &str) -> Result<Revision> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .and_then(|mut st| st.query_row([name], |r| r.get(0)))
        .map_err(map_err)
}

/// Upper bound of the key range of `prefix` (keys are UTF-8, never 0xff).
fn range_end(prefix: &str) -> Vec<u8> {
    prefix_end(prefix).unwrap_or_else(|| vec![0xff])
}

fn key_string(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// The current value of `key`.
pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    conn.prepare_cached("SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1")
        .and_then(|mut st| {
            st.query_row([key.as_bytes()], |r| {
                Ok(KeyValue {
                    key: key.to_string(),
                    value: r.get(0)?,
                    create_revision: r.get(1)?,
                    revision: r.get(2)?,
                })
            })
            .optional()
        })
        .map_err(map_err)
}

/// Every key under `prefix` and the revision of that snapshot.
pub(crate) fn list(conn: &mut Connection, prefix: &str) -> Result<ListResult> {
    let tx = conn.transaction().map_err(map_err)?;
    let revision = meta(&tx, "revision")?;
    let items = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT key, value, create_rev, mod_rev FROM kv
                 WHERE key >= ?1 AND key < ?2 ORDER BY key",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![prefix.as_bytes(), range_end(prefix)], |r| {
                Ok(KeyValue {
                    key: key_string(r.get(0)?)?,
                    value: r.get(1)?,
                    create_revision: r.get(2)?,
                    revision: r.get(3)?,
                })
            })
            .map_err(map_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?
    };
    tx.commit().map_err(map_err)?;
    Ok(ListResult { items, revision })
}

/// The current revision.
pub(crate) fn revision(conn: &Connection) -> Result<Revision> {
    meta(conn, "revision")
}

/// Applies `ops` all-or-none as revision current+1; auto-compacts the change
/// log to the last `history` revisions every 1,000 revisions.
pub(crate) fn write(conn: &mut Connection, ops: &[TxnOp], history: Revision) -> Result<Revision> {
    check_distinct(ops)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let current_rev = meta(&tx, "revision")?;
    if ops.is_empty() {
        return Ok(current_rev);
    }
    let rev = current_rev + 1;
    for (seq, op) in ops.iter().enumerate() {
        let key = op.key().as_bytes();
        let current: Option<(Revision, Revision)> = tx
            .prepare_cached("SELECT create_rev, mod_rev FROM kv WHERE key = ?1")
            .and_then(|mut st| {
                st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(map_err)?;
        check_op(op, current)?;
        match op {
            TxnOp::Create { value, .. }
            | TxnOp::Update { value, .. }
            | TxnOp::Put { value, .. } => {
                let create_rev = current.map(|c| c.0).unwrap_or(rev);
                tx.prepare_cached(
                    "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev",
                )
                .and_then(|mut st| st.execute(params![key, value, create_rev, rev]))
                .map_err(map_err)?;
                tx.prepare_cached(
                    "INSERT INTO changes (rev, seq, key, value, create_rev) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut st| st.execute(params![rev, seq as i64, key, value, create_rev]))
                .map_err(map_err)?;
            }
            TxnOp::Delete { .. } => {
                tx.prepare_cached("DELETE FROM kv WHERE key = ?1")
                    .and_then(|mut st| st.execute([key]))
                    .map_err(map_err)?;
                tx.prepare_cached(
                    "INSERT INTO changes (rev, seq, key, value, create_rev) VALUES (?1, ?2, ?3, NULL, 0)",
                )
                .and_then(|mut st| st.execute(params![rev, seq as i64, key]))
                .map_err(map_err)?;
            }
        }
    }
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")
        .and_then(|mut st| st.execute([rev]))
        .map_err(map_err)?;
    if history > 0 && rev % 1_000 == 0 && rev > history {
        compact_in(&tx, rev - history)?;
    }
    tx.commit().map_err(map_err)?;
    Ok(rev)
}

/// Drops the change log before `revision` inside an open transaction.
fn compact_in(tx: &Connection, revision: Revision) -> Result<()> {
    tx.execute("DELETE FROM changes WHERE rev < ?1", [revision])
        .map_err(map_err)?;
    tx.execute(
        "UPDATE meta SET value = max(value, ?1) WHERE name = 'compact_revision'",
        [revision],
    )
    .map_err(map_err)?;
    Ok(())
}

/// Drops the change log before `revision` (which must not be in the future).
pub(crate) fn compact(conn: &mut Connection, revision: Revision) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let current = meta(&tx, "revision")?;
    if revision > current {
        return Err(StoreError::InvalidRequest(format!(
            "cannot compact at revision {revision}: the store is at {current}"
        )));
    }
    compact_in(&tx, revision)?;
    tx.commit().map_err(map_err)?;
    Ok(())
}

/// What one poll of the change log found.
pub(crate) struct ChangeBatch {
    /// Events under the prefix with revision >= the requested start.
    pub events: Vec<WatchEvent>,
    /// The store revision of the snapshot read (the next poll starts after it).
    pub revision: Revision,
}

/// Changes under `prefix` from revision `from`, or `Compacted` when the
/// change log no longer reaches back to `from`.
pub(crate) fn changes_since(
    conn: &mut Connection,
    prefix: &str,
    from: Revision,
) -> Result<ChangeBatch> {
    let tx = conn.transaction().map_err(map_err)?;
    let revision = meta(&tx, "revision")?;
    let compact_revision = meta(&tx, "compact_revision")?;
    if from < compact_revision {
        return Err(StoreError::Compacted {
            requested: from,
            compact_revision,
        });
    }
    let events = if from > revision {
        Vec::new()
    } else {
        let mut stmt = tx
            .prepare_cached(
                "SELECT rev, key, value, create_rev FROM changes
                 WHERE rev >= ?1 AND key >= ?2 AND key < ?3 ORDER BY rev, seq",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![from, prefix.as_bytes(), range_end(prefix)], |r| {
                let rev: Revision = r.get(0)?;
                let key = key_string(r.get(1)?)?;
                let value: Option<Vec<u8>> = r.get(2)?;
                Ok(match value {
                    Some(value) => WatchEvent::Put(KeyValue {
                        key,
                        value,
                        revision: rev,
                        create_revision: r.get(3)?,
                    }),
                    None => WatchEvent::Delete { key, revision: rev },
                })
            })
            .map_err(map_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?
    };
    tx.commit().map_err(map_err)?;
    Ok(ChangeBatch { events, revision })
}

/// SQLite's `data_version`: changes whenever another connection commits.
pub(crate) fn data_version(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(map_err)
}
