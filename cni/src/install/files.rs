//! The file work of `install-cni`: each file is written only when its
//! content (or, for a plugin, its mode) differs, through a new file in the
//! same folder renamed over the old one, so a runtime reading the folder
//! sees the old file or the new one, never a part.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::settings::{shadowing, InstallSettings};
use super::InstallError;

/// The plugins tortie ships and keeps current on the host.
pub const PLUGINS: [&str; 2] = ["tortie", "tortie-ipam"];
/// The chained plugin installed only when the host has none.
pub const PORTMAP: &str = "portmap";

const EXEC_MODE: u32 = 0o755;
const CONF_MODE: u32 = 0o644;

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It did not exist and was written.
    Installed,
    /// It existed with other content and was replaced.
    Updated,
    /// It already had the right content; nothing was written.
    Unchanged,
    /// The host's own file was kept (portmap).
    KeptHost,
}

impl Action {
    /// The word printed for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::KeptHost => "kept the host's",
        }
    }
}

/// Everything one run did, in order, and what the operator should know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Each file and what happened to it.
    pub files: Vec<(PathBuf, Action)>,
    /// Problems that do not stop the install (printed as warnings).
    pub warnings: Vec<String>,
}

impl Report {
    /// True when nothing was written.
    pub fn unchanged(&self) -> bool {
        self.files
            .iter()
            .all(|(_, a)| matches!(a, Action::Unchanged | Action::KeptHost))
    }
}

/// Installs the plugins and the configuration as `s` says. Everything is
/// checked (the configuration renders, the plugins exist in the image)
/// before the first write.
pub fn install(s: &InstallSettings) -> Result<Report, InstallError> {
    let conflist = s.render_conflist()?;
    for name in PLUGINS {
        let src = s.source_dir.join(name);
        if !src.is_file() {
            return Err(InstallError::MissingSource {
                name,
                path: src.display().to_string(),
            });
        }
    }
    let host_portmap = s.bin_dir.join(PORTMAP);
    let image_portmap = s.source_dir.join(PORTMAP);
    if fs::symlink_metadata(&host_portmap).is_err() && !image_portmap.is_file() {
        // The configuration chains portmap: without it every pod's ADD fails.
        return Err(InstallError::MissingSource {
            name: PORTMAP,
            path: format!(
                "{} (and the host has none at {})",
                image_portmap.display(),
                host_portmap.display()
            ),
        });
    }
    for d in [&s.bin_dir, &s.net_dir] {
        fs::create_dir_all(d)
            .map_err(|e| InstallError::io(format!("create {}", d.display()), e))?;
    }
    let mut report = Report::default();
    for name in PLUGINS {
        let dst = s.bin_dir.join(name);
        let action = copy_plugin(&s.source_dir.join(name), &dst)?;
        report.files.push((dst, action));
    }
    install_portmap(s, &mut report)?;
    let conf = s.conf_path();
    let action = write_if_changed(&conf, conflist.as_bytes(), CONF_MODE)?;
    report.files.push((conf, action));
    for other in shadowing(&s.conf_name, &list_names(&s.net_dir)?) {
        report.warnings.push(format!(
            "{} sorts before {}: the runtime uses the first configuration in {}, so pods would \
             not get tortie networking; remove it (e.g. a previous CNI's) or set TORTIE_CNI_CONF_NAME",
            s.net_dir.join(&other).display(),
            s.conf_name,
            s.net_dir.display()
        ));
    }
    Ok(report)
}

/// portmap: installed from the image only when the host has none (the
/// host's own, e.g. from its kubernetes-cni package, is never replaced).
/// [`install`] checked that one of the two exists.
fn install_portmap(s: &InstallSettings, report: &mut Report) -> Result<(), InstallError> {
    let dst = s.bin_dir.join(PORTMAP);
    let action = if fs::symlink_metadata(&dst).is_ok() {
        Action::KeptHost
    } else {
        copy_plugin(&s.source_dir.join(PORTMAP), &dst)?
    };
    report.files.push((dst, action));
    Ok(())
}

fn copy_plugin(src: &Path, dst: &Path) -> Result<Action, InstallError> {
    let bytes =
        fs::read(src).map_err(|e| InstallError::io(format!("read {}", src.display()), e))?;
    write_if_changed(dst, &bytes, EXEC_MODE)
}

/// Writes `bytes` to `path` with `mode` unless the file already holds
/// exactly that (content and permission bits).
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<Action, InstallError> {
    let existed = match fs::symlink_metadata(path) {
        Ok(meta) => {
            let same_mode = meta.is_file() && meta.permissions().mode() & 0o7777 == mode;
            if same_mode && fs::read(path).is_ok_and(|old| old == bytes) {
                return Ok(Action::Unchanged);
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(InstallError::io(format!("stat {}", path.display()), e)),
    };
    replace_atomically(path, bytes, mode)?;
    Ok(if existed {
        Action::Updated
    } else {
        Action::Installed
    })
}

/// A new file beside `path` (same file system), synced, then renamed over it.
fn replace_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => (d, n.to_string_lossy()),
        _ => {
            return Err(InstallError::io(
                format!("write {}", path.display()),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ))
        }
    };
    let tmp = dir.join(format!(".{name}.install-cni-{}", std::process::id()));
    let written = write_new(&tmp, bytes, mode)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| InstallError::io(format!("write {}", path.display()), e));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable once the folder is synced; a failure here
    // leaves the new file in place, so it is not an error.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_new(tmp: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let _ = fs::remove_file(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    f.write_all(bytes)?;
    // The umask may have cleared bits of `mode`.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.sync_all()
}

fn list_names(dir: &Path) -> Result<Vec<String>, InstallError> {
    let entries =
        fs::read_dir(dir).map_err(|e| InstallError::io(format!("list {}", dir.display()), e))?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn writes_a_new_file_with_its_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        assert_eq!(
            write_if_changed(&p, b"one", 0o755).unwrap(),
            Action::Installed
        );
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o755
        );
    }

    #[test]
    fn the_same_content_is_not_written_again() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        write_if_changed(&p, b"one", 0o644).unwrap();
        let ino = fs::metadata(&p).unwrap().ino();
        assert_eq!(
            write_if_changed(&p, b"one", 0o644).unwrap(),
            Action::Unchanged
        );
        assert_eq!(
            fs::metadata(&p).unwrap().ino(),
            ino,
            "the file was replaced"
        );
    }

    #[test]
    fn changed_content_replaces_the_file_by_rename() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        write_if_changed(&p, b"one", 0o644).unwrap();
        let ino = fs::metadata(&p).unwrap().ino();
        assert_eq!(
            write_if_changed(&p, b"two", 0o644).unwrap(),
            Action::Updated
        );
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_ne!(fs::metadata(&p).unwrap().ino(), ino, "written in place");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x"], "a temporary file was left behind");
    }

    #[test]
    fn a_lost_exec_bit_is_restored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tortie");
        write_if_changed(&p, b"bin", 0o755).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            write_if_changed(&p, b"bin", 0o755).unwrap(),
            Action::Updated
        );
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o755
        );
    }

    #[test]
    fn a_symlink_is_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        fs::write(&target, b"keep").unwrap();
        let p = d.path().join("tortie");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert_eq!(
            write_if_changed(&p, b"new", 0o755).unwrap(),
            Action::Updated
        );
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&p).unwrap().is_file());
    }
}
