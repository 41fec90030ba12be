//! The status API of tortie-node, in a crate of its own so that clients
//! (`tortiectl node status`, `tortiectl bgp rib`, the lab) link no agent:
//! one JSON request line in on the control socket, one JSON response line
//! out, then the connection closes. The types are the `node status -o json`
//! and `bgp rib -o json` shapes of INTERFACES.md; the `bgp rib` rows are the
//! RIB's own typed query rows ([`RibEntry`], [`RibPath`] with the
//! [`BestPathReason`]), carried as the RIB made them; [`query`] is the
//! blocking client. [`kernel_has_ipip`] is the probe tortie-node uses to decide
//! whether it manages `tunl0`, shared so a client can refuse an IPIP set-up
//! early with the same answer.
//!
//! Must not: depend on any tortie crate but the pure RIB and wire crates
//! (for the row types: no I/O, no agent), or do anything but talk to the
//! socket it is given.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use tortie_bgp_rib::{BestPathReason, RibEntry, RibPath};
pub use tortie_bgp_wire::{Origin, Prefix};

/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/tortie/node.sock";

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The node's status.
    Status,
    /// The Loc-RIB, optionally of one family (`ipv4` / `ipv6`).
    Rib {
        /// `ipv4`, `ipv6` or none for both.
        #[serde(default)]
        afi: Option<String>,
    },
}

/// One peer as `node status -o json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerReport {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// `node-to-node mesh`, `global`, `node specific`, `route reflector client`, `route reflector`.
    #[serde(rename = "type")]
    pub peer_type: String,
    /// RFC 4271 state name.
    pub state: String,
    /// When the state last changed (RFC 3339).
    pub since: String,
    /// Prefixes received.
    pub prefixes_received: u64,
    /// Prefixes sent.
    pub prefixes_sent: u64,
    /// The last error, in words.
    pub last_error: Option<String>,
}

/// The FIB part of the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FibReport {
    /// The kernel holds exactly the desired routes.
    pub in_sync: bool,
    /// Routes felix owns.
    pub routes: u64,
}

/// `node status -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Node name.
    pub node: String,
    /// BGP identifier.
    pub router_id: String,
    /// Our AS.
    pub asn: u32,
    /// See `/readyz`.
    pub ready: bool,
    /// Every configured peer.
    pub peers: Vec<PeerReport>,
    /// The FIB.
    pub fib: FibReport,
}

/// A response on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(NodeStatus),
    /// Answer to [`Request::Rib`].
    Rib(Vec<RibEntry>),
    /// The request failed.
    Error(String),
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The socket could not be reached.
    #[error("cannot reach tortie-node at {path}: {source} (is tortie-node running? set --control-socket or TORTIE_CONTROL_SOCKET)")]
    Connect {
        /// The socket path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("talking to tortie-node: {0}")]
    Io(#[from] std::io::Error),
    /// The answer did not parse.
    #[error("tortie-node sent an answer that does not parse: {0}")]
    Decode(#[from] serde_json::Error),
    /// tortie-node refused the request.
    #[error("tortie-node: {0}")]
    Refused(String),
}

/// Whether this kernel has IPIP (the `ipip` module is loaded or built in).
pub fn kernel_has_ipip() -> bool {
    Path::new("/sys/module/ipip").exists()
}

/// Sends one request and reads the response (blocking, 10 s timeout).
pub fn query(socket: &Path, req: &Request) -> Result<Response, QueryError> {
    let mut s = UnixStream::connect(socket).map_err(|source| QueryError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    match serde_json::from_str(&answer)? {
        Response::Error(e) => Err(QueryError::Refused(e)),
        r => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
        let r: Request = serde_json::from_str(r#"{"request":"rib","afi":"ipv4"}"#).unwrap();
        assert_eq!(
            r,
            Request::Rib {
                afi: Some("ipv4".into())
            }
        );
    }

    #[test]
    fn node_status_has_the_contract_fields() {
        let s = NodeStatus {
            node: "node1".into(),
            router_id: "10.0.1.5".into(),
            asn: 64512,
            ready: true,
            peers: vec![PeerReport {
                address: "10.0.1.6".parse().unwrap(),
                asn: 64512,
                peer_type: "node-to-node mesh".into(),
                state: "Established".into(),
                since: "2026-11-29T07:00:00Z".into(),
                prefixes_received: 3,
                prefixes_sent: 2,
                last_error: None,
            }],
            fib: FibReport {
                in_sync: true,
                routes: 12,
            },
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["peers"][0]["type"], "node-to-node mesh");
        assert_eq!(v["fib"]["routes"], 12);
        assert_eq!(v["peers"][0]["last_error"], serde_json::Value::Null);
    }

    #[test]
    fn a_rib_row_has_the_contract_fields_and_the_reason_and_reads_back() {
        let text = r#"[{"prefix": "10.244.1.0/26", "paths": [{"peer": "10.0.1.6",
            "next_hop": "10.0.1.6", "as_path": [65002], "local_pref": 100, "med": null,
            "origin": "igp", "communities": ["65000:1"], "large_communities": [],
            "best": true, "multipath": true, "stale": false, "reason": "as_path_length",
            "path_id": null}]}]"#;
        let rows: Vec<RibEntry> = serde_json::from_str(text).unwrap();
        let p = &rows[0].paths[0];
        assert_eq!(rows[0].prefix, "10.244.1.0/26".parse::<Prefix>().unwrap());
        assert_eq!(p.peer, Some("10.0.1.6".parse().unwrap()));
        assert_eq!(p.origin, Some(Origin::Igp));
        assert_eq!(p.reason, Some(BestPathReason::AsPathLength));
        let again: serde_json::Value = serde_json::to_value(&rows).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        let reply = serde_json::to_string(&Response::Rib(rows)).unwrap();
        assert!(
            reply.starts_with(r#"{"rib":[{"prefix":"10.244.1.0/26","paths""#),
            "{reply}"
        );
    }

    #[test]
    fn a_rib_row_with_a_bad_prefix_does_not_read() {
        let text = r#"{"prefix": "10.244.1.0/33", "paths": []}"#;
        let err = serde_json::from_str::<RibEntry>(text).unwrap_err();
        assert!(err.to_string().contains("longer than 32"), "{err}");
    }
}
