//! Per-attachment state on the host (`<state_dir>/attachments/<id>-<ifname>.json`):
//! the result ADD returned and the host veth it made. It makes a repeated
//! ADD return the same result, lets DEL find the veth without CNI_ARGS, and
//! lists what GC may release. `<state_dir>/veths/<host veth>` names the
//! container that owns a host veth now (a pod's sandboxes share its veth
//! name), so a late DEL of an older sandbox leaves the veth alone.

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
    dir(state_dir).join(format!("{container_id}-{ifname}.json"))
}

/// Loads the state of one attachment; `Ok(None)` when there is none (or it is unreadable).
pub fn load(state_dir: &Path, container_id: &str, ifname: &str) -> Option<AttachmentState> {
    let bytes = std::fs::read(file(state_dir, container_id, ifname)).ok()?;
    serde_json::from_slice(&bytes).ok()
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

/// Removes the state of one attachment; absent is fine.
pub fn remove(state_dir: &Path, container_id: &str, ifname: &str) -> Result<(), CniError> {
    let path = file(state_dir, container_id, ifname);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CniError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Every recorded attachment.
pub fn list(state_dir: &Path) -> Vec<AttachmentState> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
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
}
