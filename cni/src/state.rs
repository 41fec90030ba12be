//! Per-attachment state on the host (`<state_dir>/attachments/<id>+<ifname>.json`):
//! the result ADD returned and the host veth it made. It makes a repeated
//! ADD return the same result, lets DEL find the veth without CNI_ARGS, and
//! lists what GC may release. `<state_dir>/veths/<host veth>` names the
//! container that owns a host veth now (a pod's sandboxes share its veth
//! name), so a late DEL of an older sandbox leaves the veth alone.
//!
//! The file name joins container ID and interface with `+`, which a
//! container ID cannot hold (`[A-Za-z0-9_.-]`), so no two attachments share
//! a file. Older releases joined them with `-` (`a-b` + `c` and `a` + `b-c`
//! collided): such a file is still found, used only when the record inside
//! names the attachment asked for, and renamed on first use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CniError;
use crate::result::CniResult;

/// What ADD recorded for one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentState {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_NETNS at ADD time.
    pub netns: String,
    /// The host veth name.
    pub host_veth: String,
    /// The result (version-independent form).
    pub result: CniResult,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("attachments")
}

fn file(state_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    dir(state_dir).join(format!("{container_id}+{ifname}.json"))
}

/// The ambiguous name older releases used.
fn legacy_file(state_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    dir(state_dir).join(format!("{container_id}-{ifname}.json"))
}

fn read(path: &Path) -> Option<AttachmentState> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The legacy record of this attachment, if there is one that names it.
fn legacy(
    state_dir: &Path,
    container_id: &str,
    ifname: &str,
) -> Option<(PathBuf, AttachmentState)> {
    let path = legacy_file(state_dir, container_id, ifname);
    let st = read(&path)?;
    (st.container_id == container_id && st.ifname == ifname).then_some((path, st))
}

/// Loads the state of one attachment; `None` when there is none (or it is
/// unreadable). A legacy record of it is moved to the current name.
pub fn load(state_dir: &Path, container_id: &str, ifname: &str) -> Option<AttachmentState> {
    let path = file(state_dir, container_id, ifname);
    if let Some(st) = read(&path) {
        return Some(st);
    }
    let (old, st) = legacy(state_dir, container_id, ifname)?;
    let _ = std::fs::rename(&old, &path);
    Some(st)
}

/// Saves the state atomically (write to a temporary file, then rename).
pub fn save(state_dir: &Path, st: &AttachmentState) -> Result<(), CniError> {
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| CniError::io(format!("create {}", d.display()), e))?;
    let path = file(state_dir, &st.container_id, &st.ifname);
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(st).map_err(|e| CniError::Decode {
        what: "attachment state",
        source: e,
    })?;
    std::fs::write(&tmp, bytes).map_err(|e| CniError::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| CniError::io(format!("rename to {}", path.display()), e))?;
    if let Some((old, _)) = legacy(state_dir, &st.container_id, &st.ifname) {
        remove_file(&old)?;
    }
    let owners = state_dir.join("veths");
    std::fs::create_dir_all(&owners)
        .map_err(|e| CniError::io(format!("create {}", owners.display()), e))?;
    let owner = owners.join(&st.host_veth);
    std::fs::write(&owner, &st.container_id)
        .map_err(|e| CniError::io(format!("write {}", owner.display()), e))
}

/// The container that owns `host_veth` now, if recorded.
pub fn veth_owner(state_dir: &Path, host_veth: &str) -> Option<String> {
    std::fs::read_to_string(state_dir.join("veths").join(host_veth)).ok()
}

/// Forgets that `container_id` owns `host_veth` (kept when another container owns it now).
pub fn remove_veth_owner(
    state_dir: &Path,
    host_veth: &str,
    container_id: &str,
) -> Result<(), CniError> {
    if veth_owner(state_dir, host_veth).as_deref() != Some(container_id) {
        return Ok(());
    }
    let path = state_dir.join("veths").join(host_veth);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CniError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<(), CniError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CniError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Removes the state of one attachment (and a legacy record of it); absent is fine.
pub fn remove(state_dir: &Path, container_id: &str, ifname: &str) -> Result<(), CniError> {
    remove_file(&file(state_dir, container_id, ifname))?;
    match legacy(state_dir, container_id, ifname) {
        Some((old, _)) => remove_file(&old),
        None => Ok(()),
    }
}

/// Every recorded attachment, once each (a current record wins over a
/// legacy one of the same attachment).
pub fn list(state_dir: &Path) -> Vec<AttachmentState> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    // Current names (holding `+`) first, so they win the deduplication.
    paths.sort_by_key(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains('+'))
    });
    let mut seen = std::collections::BTreeSet::new();
    paths
        .iter()
        .filter_map(|p| read(p))
        .filter(|st| seen.insert((st.container_id.clone(), st.ifname.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_loads_lists_and_removes() {
        let d = tempfile::tempdir().unwrap();
        let st = AttachmentState {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: "/var/run/netns/x".into(),
            host_veth: "calic1".into(),
            result: CniResult::default(),
        };
        save(d.path(), &st).unwrap();
        assert_eq!(veth_owner(d.path(), "calic1").as_deref(), Some("c1"));
        remove_veth_owner(d.path(), "calic1", "c0").unwrap();
        assert_eq!(veth_owner(d.path(), "calic1").as_deref(), Some("c1"));
        remove_veth_owner(d.path(), "calic1", "c1").unwrap();
        assert_eq!(veth_owner(d.path(), "calic1"), None);
        assert_eq!(load(d.path(), "c1", "eth0"), Some(st.clone()));
        assert_eq!(list(d.path()), vec![st]);
        remove(d.path(), "c1", "eth0").unwrap();
        remove(d.path(), "c1", "eth0").unwrap();
        assert!(load(d.path(), "c1", "eth0").is_none());
    }

    fn attachment(cid: &str, ifname: &str) -> AttachmentState {
        AttachmentState {
            container_id: cid.into(),
            ifname: ifname.into(),
            netns: "/var/run/netns/x".into(),
            host_veth: format!("cali{cid}"),
            result: CniResult::default(),
        }
    }

    #[test]
    fn ids_and_interfaces_with_dashes_never_share_a_file() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (attachment("a-b", "c"), attachment("a", "b-c"));
        save(d.path(), &a).unwrap();
        save(d.path(), &b).unwrap();
        assert_eq!(load(d.path(), "a-b", "c"), Some(a.clone()));
        assert_eq!(load(d.path(), "a", "b-c"), Some(b.clone()));
        assert_eq!(list(d.path()).len(), 2);
        remove(d.path(), "a", "b-c").unwrap();
        assert_eq!(list(d.path()), vec![a]);
    }

    #[test]
    fn a_legacy_record_is_used_only_for_its_own_attachment_and_migrated() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir(d.path())).unwrap();
        let old = attachment("a-b", "c");
        let legacy = dir(d.path()).join("a-b-c.json");
        std::fs::write(&legacy, serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(
            load(d.path(), "a", "b-c"),
            None,
            "same legacy name, other attachment"
        );
        assert!(legacy.exists());
        assert_eq!(list(d.path()), vec![old.clone()]);
        assert_eq!(load(d.path(), "a-b", "c"), Some(old.clone()));
        assert!(!legacy.exists(), "moved to the current name");
        assert!(dir(d.path()).join("a-b+c.json").exists());
        assert_eq!(list(d.path()), vec![old]);
    }

    #[test]
    fn saving_or_removing_drops_the_legacy_record_of_that_attachment_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir(d.path())).unwrap();
        let mine = attachment("x", "eth0");
        let legacy = dir(d.path()).join("x-eth0.json");
        std::fs::write(&legacy, serde_json::to_vec(&mine).unwrap()).unwrap();
        save(d.path(), &mine).unwrap();
        assert!(!legacy.exists());
        assert_eq!(list(d.path()), vec![mine]);
        let other = attachment("p-q", "r");
        let shared = dir(d.path()).join("p-q-r.json");
        std::fs::write(&shared, serde_json::to_vec(&other).unwrap()).unwrap();
        remove(d.path(), "p", "q-r").unwrap();
        assert!(shared.exists(), "it records p-q + r, not p + q-r");
        remove(d.path(), "p-q", "r").unwrap();
        assert!(!shared.exists());
    }
}
