//! The SQLite database is private: opened through the public API in a new
//! folder, the folder is 0700 and the database with the `-wal` and `-shm`
//! files SQLite makes beside it are 0600 (whatever the umask allows).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use tortie_datastore::{BlockingStore, OpenOptions};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_database_folder_is_0700_and_its_files_0600() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("var/lib/tortie");
    let db = dir.join("tortie.db");
    let store = BlockingStore::open(
        &format!("sqlite://{}", db.display()),
        &OpenOptions::default(),
    )
    .unwrap();
    store.put("/k", b"v".to_vec()).unwrap();
    assert_eq!(store.get("/k").unwrap().unwrap().value, b"v");
    assert_eq!(mode(&t.path().join("var")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    for f in ["tortie.db", "tortie.db-wal", "tortie.db-shm"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
}
