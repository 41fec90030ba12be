//! One conformance suite, run against both backends: the SQLite cases run in
//! a plain `cargo test`; the etcd cases start a real etcd server and are
//! ignored unless the full suite asks for them (`--include-ignored`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tortie_datastore::{
    open, OpenOptions, Revision, Store, StoreError, TxnOp, WatchEvent, WatchStream,
};
use tortie_testkit::etcd::Etcd;

/// A store under test plus whatever keeps its backend alive.
struct Fixture {
    store: Arc<dyn Store>,
    url: String,
    etcd: Option<Etcd>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = open(&url, &OpenOptions::default()).await.unwrap();
        Self {
            store,
            url,
            etcd: None,
            _dir: dir,
        }
    }

    async fn etcd() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etcd = Etcd::start().expect("start etcd");
        let url = etcd.url();
        let store = open(&url, &OpenOptions::default()).await.unwrap();
        Self {
            store,
            url,
            etcd: Some(etcd),
            _dir: dir,
        }
    }
}

const DEADLINE: Duration = Duration::from_secs(15);

/// The next `n` events of `w`, failing the test after a deadline.
async fn next_events(w: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(DEADLINE, w.next()).await {
            Ok(Some(Ok(ev))) => out.push(ev),
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", out.len()),
            Ok(None) => panic!("watch ended after {} events", out.len()),
            Err(_) => panic!("timed out after {} of {n} events: {out:?}", out.len()),
        }
    }
    out
}

/// The compact revision reported for a watch from `from`, whether the backend
/// fails the call or the stream's first item.
async fn compacted(store: &dyn Store, prefix: &str, from: Revision) -> Revision {
    let err = match store.watch(prefix, from).await {
        Err(e) => e,
        Ok(mut w) => match tokio::time::timeout(DEADLINE, w.next()).await {
            Ok(Some(Err(e))) => e,
            other => panic!("expected Compacted, got {other:?}"),
        },
    };
    match err {
        StoreError::Compacted {
            compact_revision, ..
        } => compact_revision,
        e => panic!("expected Compacted, got {e}"),
    }
}

fn put_of(ev: &WatchEvent) -> (&str, &[u8]) {
    match ev {
        WatchEvent::Put(kv) => (kv.key.as_str(), kv.value.as_slice()),
        WatchEvent::Delete { key, .. } => panic!("expected a put, got delete of {key}"),
    }
}

mod cases {
    use super::*;

    pub async fn create_get_update_delete_follow_revisions(fx: &Fixture) {
        let s = &fx.store;
        let r1 = s.create("/t/a", b"1".to_vec()).await.unwrap();
        let kv = s.get("/t/a").await.unwrap().expect("created key");
        assert_eq!(
            (kv.value.as_slice(), kv.revision, kv.create_revision),
            (&b"1"[..], r1, r1)
        );
        assert!(matches!(
            s.create("/t/a", b"2".to_vec()).await,
            Err(StoreError::AlreadyExists { key }) if key == "/t/a"
        ));
        let r2 = s.update("/t/a", b"2".to_vec(), r1).await.unwrap();
        assert!(r2 > r1);
        match s.update("/t/a", b"3".to_vec(), r1).await {
            Err(StoreError::Conflict {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (r1, r2)),
            other => panic!("stale update must conflict, got {other:?}"),
        }
        assert!(matches!(
            s.update("/t/none", b"x".to_vec(), 1).await,
            Err(StoreError::NotFound { .. })
        ));
        let r3 = s.put("/t/a", b"4".to_vec()).await.unwrap();
        let kv = s.get("/t/a").await.unwrap().unwrap();
        assert_eq!(
            (kv.revision, kv.create_revision),
            (r3, r1),
            "put keeps create_revision"
        );
        assert!(matches!(
            s.delete("/t/a", Some(r2)).await,
            Err(StoreError::Conflict { .. })
        ));
        let r4 = s.delete("/t/a", Some(r3)).await.unwrap();
        assert!(r4 > r3);
        assert_eq!(s.get("/t/a").await.unwrap(), None);
        assert!(matches!(
            s.delete("/t/a", None).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(s.revision().await.unwrap(), r4);
    }

    pub async fn list_returns_the_prefix_sorted_with_the_snapshot_revision(fx: &Fixture) {
        let s = &fx.store;
        for k in ["/l/b", "/l/a", "/l/c/d", "/lx", "/m"] {
            s.put(k, k.as_bytes().to_vec()).await.unwrap();
        }
        let l = s.list("/l/").await.unwrap();
        let keys: Vec<&str> = l.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/l/a", "/l/b", "/l/c/d"]);
        assert_eq!(l.revision, s.revision().await.unwrap());
        assert!(s.list("/nothing/").await.unwrap().items.is_empty());
    }

    pub async fn transactions_apply_all_or_none(fx: &Fixture) {
        let s = &fx.store;
        let r0 = s.create("/x/exists", b"0".to_vec()).await.unwrap();
        let failing = vec![
            TxnOp::Create {
                key: "/x/new".into(),
                value: b"1".to_vec(),
            },
            TxnOp::Create {
                key: "/x/exists".into(),
                value: b"1".to_vec(),
            },
        ];
        assert!(matches!(
            s.txn(failing).await,
            Err(StoreError::AlreadyExists { key }) if key == "/x/exists"
        ));
        assert_eq!(
            s.get("/x/new").await.unwrap(),
            None,
            "nothing of a failed txn is written"
        );
        let ok = vec![
            TxnOp::Create {
                key: "/x/new".into(),
                value: b"1".to_vec(),
            },
            TxnOp::Update {
                key: "/x/exists".into(),
                value: b"2".to_vec(),
                expected: r0,
            },
            TxnOp::Put {
                key: "/x/put".into(),
                value: b"3".to_vec(),
            },
        ];
        let rev = s.txn(ok).await.unwrap();
        let l = s.list("/x/").await.unwrap();
        assert!(
            l.items.iter().all(|kv| kv.revision == rev),
            "one revision per txn: {l:?}"
        );
        let dup = vec![
            TxnOp::Put {
                key: "/x/d".into(),
                value: b"1".to_vec(),
            },
            TxnOp::Delete {
                key: "/x/d".into(),
                expected: None,
            },
        ];
        assert!(matches!(
            s.txn(dup).await,
            Err(StoreError::InvalidRequest(_))
        ));
        assert_eq!(
            s.txn(vec![]).await.unwrap(),
            rev,
            "an empty txn writes nothing"
        );
    }

    pub async fn cas_from_several_processes_loses_no_update(fx: &Fixture) {
        const PROCS: usize = 4;
        const EACH: usize = 25;
        let children: Vec<_> = (0..PROCS)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_tortie-store-bench"))
                    .args(["cas-worker", &fx.url, "/cas/counter", &EACH.to_string()])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "worker failed: {out:?}");
        }
        let kv = fx.store.get("/cas/counter").await.unwrap().unwrap();
        assert_eq!(
            String::from_utf8(kv.value).unwrap(),
            (PROCS * EACH).to_string()
        );
    }

    pub async fn watch_delivers_changes_in_order_and_resumes_from_any_revision(fx: &Fixture) {
        let s = &fx.store;
        s.put("/w/before", b"0".to_vec()).await.unwrap();
        let start = s.list("/w/").await.unwrap().revision;
        let mut w = s.watch("/w/", start + 1).await.unwrap();
        let r1 = s.put("/w/a", b"1".to_vec()).await.unwrap();
        s.put("/other/a", b"x".to_vec()).await.unwrap();
        let r2 = s.put("/w/b", b"2".to_vec()).await.unwrap();
        let r3 = s.delete("/w/a", None).await.unwrap();
        let evs = next_events(&mut w, 3).await;
        assert_eq!(put_of(&evs[0]), ("/w/a", &b"1"[..]));
        assert_eq!(put_of(&evs[1]), ("/w/b", &b"2"[..]));
        assert_eq!(
            evs[2],
            WatchEvent::Delete {
                key: "/w/a".into(),
                revision: r3
            }
        );
        assert_eq!(
            evs.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
            [r1, r2, r3]
        );
        let mut resumed = s.watch("/w/", r2).await.unwrap();
        let again = next_events(&mut resumed, 2).await;
        assert_eq!(
            again,
            evs[1..].to_vec(),
            "resuming from r2 replays exactly r2 and r3"
        );
    }

    pub async fn watch_sees_writes_of_another_process_in_order(fx: &Fixture) {
        let mut w = fx.store.watch("/xp/", 0).await.unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tortie-store-bench"))
            .args(["cas-worker", &fx.url, "/xp/counter", "5"])
            .output()
            .unwrap();
        assert!(out.status.success(), "worker failed: {out:?}");
        let evs = next_events(&mut w, 6).await;
        let values: Vec<&[u8]> = evs.iter().map(|e| put_of(e).1).collect();
        let want: Vec<&[u8]> = vec![b"0", b"1", b"2", b"3", b"4", b"5"];
        assert_eq!(values, want, "the create, then five CAS updates");
    }

    pub async fn watch_from_zero_sees_only_later_changes(fx: &Fixture) {
        let s = &fx.store;
        s.put("/z/old", b"0".to_vec()).await.unwrap();
        let mut w = s.watch("/z/", 0).await.unwrap();
        s.put("/z/new", b"1".to_vec()).await.unwrap();
        let evs = next_events(&mut w, 1).await;
        assert_eq!(put_of(&evs[0]).0, "/z/new");
    }

    pub async fn watch_from_a_compacted_revision_fails_with_compacted(fx: &Fixture) {
        let s = &fx.store;
        let first = s.put("/c/k", b"1".to_vec()).await.unwrap();
        for i in 2..6 {
            s.put("/c/k", i.to_string().into_bytes()).await.unwrap();
        }
        let at = s.put("/c/k", b"6".to_vec()).await.unwrap() - 1;
        s.compact(at).await.unwrap();
        assert_eq!(compacted(s.as_ref(), "/c/", first).await, at);
        let mut w = s.watch("/c/", at).await.unwrap();
        let evs = next_events(&mut w, 2).await;
        assert_eq!(
            evs.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
            [at, at + 1]
        );
        assert!(matches!(
            s.compact(at + 100).await,
            Err(StoreError::InvalidRequest(_))
        ));
        assert_eq!(
            s.get("/c/k").await.unwrap().unwrap().value,
            b"6",
            "values survive compaction"
        );
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fx = super::Fixture::sqlite().await;
                    super::cases::$case(&fx).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "root: starts a real etcd server (full suite)"]
                async fn $case() {
                    let fx = super::Fixture::etcd().await;
                    super::cases::$case(&fx).await;
                }
            )*
        }
    };
}

conformance!(
    create_get_update_delete_follow_revisions,
    list_returns_the_prefix_sorted_with_the_snapshot_revision,
    transactions_apply_all_or_none,
    cas_from_several_processes_loses_no_update,
    watch_delivers_changes_in_order_and_resumes_from_any_revision,
    watch_from_zero_sees_only_later_changes,
    watch_sees_writes_of_another_process_in_order,
    watch_from_a_compacted_revision_fails_with_compacted,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "root: starts, kills and restarts a real etcd server (full suite)"]
async fn etcd_watch_survives_a_server_restart_without_loss_or_duplicates() {
    let mut fx = Fixture::etcd().await;
    let s = Arc::clone(&fx.store);
    let mut w = s.watch("/r/", 0).await.unwrap();
    for i in 0..5 {
        s.put(&format!("/r/{i}"), b"before".to_vec()).await.unwrap();
    }
    let mut evs = next_events(&mut w, 5).await;
    let etcd = fx.etcd.as_mut().unwrap();
    etcd.stop();
    tokio::task::block_in_place(|| etcd.start_again()).unwrap();
    for i in 5..10 {
        loop {
            match s.put(&format!("/r/{i}"), b"after".to_vec()).await {
                Ok(_) => break,
                Err(e) if e.is_transient() => continue,
                Err(e) => panic!("put after restart: {e}"),
            }
        }
    }
    evs.extend(next_events(&mut w, 5).await);
    let keys: Vec<String> = evs.iter().map(|e| e.key().to_string()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("/r/{i}")).collect();
    assert_eq!(keys, want);
    assert!(evs.windows(2).all(|p| p[0].revision() < p[1].revision()));
    let extra = tokio::time::timeout(Duration::from_millis(300), w.next()).await;
    assert!(extra.is_err(), "no duplicate after the restart: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "root: starts, wipes and restarts a real etcd server (full suite)"]
async fn etcd_watch_ends_with_rewound_when_the_server_comes_back_empty() {
    let mut fx = Fixture::etcd().await;
    let s = Arc::clone(&fx.store);
    let mut w = s.watch("/r/", 0).await.unwrap();
    for i in 0..5 {
        s.put(&format!("/r/{i}"), b"before".to_vec()).await.unwrap();
    }
    let seen = next_events(&mut w, 5).await.last().unwrap().revision();
    let etcd = fx.etcd.as_mut().unwrap();
    etcd.wipe().unwrap();
    tokio::task::block_in_place(|| etcd.start_again()).unwrap();
    match tokio::time::timeout(DEADLINE, w.next()).await {
        Ok(Some(Err(StoreError::Rewound { seen: s2, current }))) => {
            assert_eq!(s2, seen);
            assert!(current < seen, "current {current} < seen {seen}");
        }
        other => panic!("expected Rewound, got {other:?}"),
    }
    assert!(tokio::time::timeout(DEADLINE, w.next())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_history_is_compacted_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let mut opts = OpenOptions::default();
    opts.sqlite.history = 500;
    let s = open(&url, &opts).await.unwrap();
    for chunk in 0..10 {
        let ops = (0..100)
            .map(|i| TxnOp::Put {
                key: format!("/h/{chunk}/{i}"),
                value: b"v".to_vec(),
            })
            .collect();
        s.txn(ops).await.unwrap();
    }
    for i in 0..1_000 {
        s.put("/h/k", i.to_string().into_bytes()).await.unwrap();
    }
    let at = compacted(s.as_ref(), "/h/", 1).await;
    assert!(at > 1 && at <= 1_010 - 500, "compacted at {at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "root: starts a real etcd server (full suite)"]
async fn etcd_transactions_over_the_server_limit_fail_whole_and_say_why() {
    let fx = Fixture::etcd().await;
    let ops: Vec<TxnOp> = (0..200)
        .map(|i| TxnOp::Put {
            key: format!("/big/{i}"),
            value: b"v".to_vec(),
        })
        .collect();
    match fx.store.txn(ops).await {
        Err(StoreError::InvalidRequest(m)) => assert!(m.contains("max-txn-ops"), "{m}"),
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert!(fx.store.list("/big/").await.unwrap().items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "root: starts a real etcd server with TLS (full suite)"]
async fn etcd_over_tls_with_a_client_certificate_reads_writes_and_watches() {
    let etcd = Etcd::start_tls().expect("start etcd with TLS");
    let files = etcd.tls_files().unwrap();
    let mut opts = OpenOptions::default();
    opts.etcd.tls = tortie_datastore::EtcdTls {
        ca: Some(files.ca.clone()),
        cert: Some(files.cert.clone()),
        key: Some(files.key.clone()),
    };
    let s = open(&etcd.url(), &opts).await.unwrap();
    let mut w = s.watch("/tls/", 0).await.unwrap();
    let rev = s.create("/tls/a", b"1".to_vec()).await.unwrap();
    assert_eq!(s.get("/tls/a").await.unwrap().unwrap().revision, rev);
    assert_eq!(next_events(&mut w, 1).await[0].revision(), rev);
    let plain = open(&etcd.url(), &OpenOptions::default()).await.unwrap();
    assert!(
        plain.get("/tls/a").await.is_err(),
        "plain HTTP must not reach a TLS etcd"
    );
}
