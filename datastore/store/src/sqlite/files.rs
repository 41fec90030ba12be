//! The database's files are private to their owner (tortie runs as root):
//! a folder the store creates is `0700`, the database file is created
//! `0600` before SQLite opens it (SQLite gives its `-wal` and `-shm` files
//! the database file's mode), and a database, `-wal` or `-shm` file left
//! more open by an older release is tightened to `0600`. A folder that
//! already exists is left as it is: it may be shared (`/tmp`, `/var/lib`).
//!
//! Must not: change anything but the database's own three files and the
//! folders it creates.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// Mode of folders the store creates.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of the database and its `-wal` and `-shm` files.
pub(crate) const FILE_MODE: u32 = 0o600;

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The database file and the two files SQLite keeps beside it in WAL mode.
fn files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

/// Creates the missing folders of `db` (`0700`) and the database file
/// (`0600`), and tightens existing database files to `0600`.
pub(crate) fn prepare(db: &Path) -> Result<()> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| io(dir, e))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(db)
        .map_err(|e| io(db, e))?;
    for f in files(db) {
        tighten(&f)?;
    }
    Ok(())
}

/// Drops group and other permissions of an existing regular file.
fn tighten(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path, e)),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || mode & !FILE_MODE == 0 {
        return Ok(());
    }
    match std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE)) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), from = format!("{mode:o}"), "datastore file was readable by others: now 0600");
            Ok(())
        }
        // Not ours to change (another owner): SQLite opens it or says why.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "cannot make the datastore file private: {e}");
            Ok(())
        }
        Err(e) => Err(io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_folders_are_0700_and_the_database_0600() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("a/b/tortie.db");
        prepare(&db).unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(&t.path().join("a/b")), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    }

    #[test]
    fn loose_existing_files_are_tightened_and_kept() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("tortie.db");
        for (f, m) in files(&db).iter().zip([0o644, 0o666, 0o640]) {
            std::fs::write(f, b"x").unwrap();
            std::fs::set_permissions(f, Permissions::from_mode(m)).unwrap();
        }
        prepare(&db).unwrap();
        for f in files(&db) {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
            assert_eq!(std::fs::read(&f).unwrap(), b"x", "content kept");
        }
    }

    #[test]
    fn an_existing_folder_keeps_its_mode() {
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, Permissions::from_mode(0o755)).unwrap();
        prepare(&shared.join("x.db")).unwrap();
        assert_eq!(mode(&shared), 0o755);
        assert_eq!(mode(&shared.join("x.db")), 0o600);
    }
}
