//! Per-interface sysctls under /proc/sys/net (they apply to the network
//! namespace of the calling thread).

use crate::error::CniError;

/// Writes `value` to `/proc/sys/net/<key>` (key like `ipv4/conf/cali1/proxy_arp`).
pub fn write(key: &str, value: &str) -> Result<(), CniError> {
    let path = format!("/proc/sys/net/{key}");
    std::fs::write(&path, value).map_err(|e| CniError::io(format!("write {path}"), e))
}

/// Reads `/proc/sys/net/<key>`, trimmed.
pub fn read(key: &str) -> Result<String, CniError> {
    let path = format!("/proc/sys/net/{key}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| CniError::io(format!("read {path}"), e))
}
