//! One datastore connection per plugin process: IPAM (run in-process by
//! `tortie`, or as `tortie-ipam`) and the WorkloadEndpoint write share it
//! instead of each starting a runtime and opening SQLite again.

use std::sync::{Arc, Mutex};

use tortie_datastore::OpenOptions;
use tortie_ipam_core::{DatastoreIpamStore, Ipam};

use crate::error::CniError;

/// The store opened so far in this process, with its URL.
static OPENED: Mutex<Option<(String, Arc<Ipam<DatastoreIpamStore>>)>> = Mutex::new(None);

/// The IPAM over the datastore at `url`, opened on first use in this process.
///
/// A plugin process serves one command for one network configuration, so
/// there is at most one URL; another URL replaces the cached one.
pub fn open(url: &str) -> Result<Arc<Ipam<DatastoreIpamStore>>, CniError> {
    let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((u, ipam)) = opened.as_ref() {
        if u == url {
            return Ok(Arc::clone(ipam));
        }
    }
    let ipam = DatastoreIpamStore::open(url, &OpenOptions::default())
        .map(|s| Arc::new(Ipam::new(s)))
        .map_err(|e| CniError::Datastore(format!("open {url}: {e}")))?;
    *opened = Some((url.to_string(), Arc::clone(&ipam)));
    Ok(ipam)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_url_is_opened_once_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let a = open(&url).unwrap();
        let b = open(&url).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
