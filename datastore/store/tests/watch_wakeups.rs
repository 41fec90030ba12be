//! SQLite watches wake on inotify: with the safety poll set to an hour, a
//! write from another process is still delivered, so inotify (not the poll)
//! delivered it.

use std::time::Duration;

use futures::StreamExt;
use tortie_datastore::{SqliteOptions, SqliteStore, Store, WatchEvent};

#[tokio::test]
async fn a_write_of_another_process_wakes_an_idle_watch_without_the_safety_poll() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let options = SqliteOptions {
        idle_poll_interval: Duration::from_secs(3600),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&db, options).unwrap();
    store
        .watch_wakeups()
        .expect("inotify wake-ups are available (else the watch polls fast and proves nothing)");
    let mut w = store.watch("/xp/", 0).await.unwrap();
    // Let the watch leave its initial hot window (20 ms of fast polling) so
    // only an inotify event can wake it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("sqlite://{}", db.display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tortie-store-bench"))
        .args(["cas-worker", &url, "/xp/counter", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "worker failed: {out:?}");
    let mut values = Vec::new();
    while values.len() < 4 {
        // Far below the hour-long safety poll.
        match tokio::time::timeout(Duration::from_secs(60), w.next()).await {
            Ok(Some(Ok(WatchEvent::Put(kv)))) => values.push(kv.value),
            other => panic!("after {values:?}: expected a put, got {other:?}"),
        }
    }
    let want: Vec<Vec<u8>> = vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec(), b"3".to_vec()];
    assert_eq!(values, want, "the create, then three CAS updates");
}
