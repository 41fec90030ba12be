//! Per-peer status for the status API and the metrics of INTERFACES.md.

use crate::config::PeerType;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;
use tortie_bgp_session::State;

/// Messages counted per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounters {
    /// OPEN messages.
    pub open: u64,
    /// UPDATE messages.
    pub update: u64,
    /// NOTIFICATION messages.
    pub notification: u64,
    /// KEEPALIVE messages.
    pub keepalive: u64,
    /// ROUTE-REFRESH messages.
    pub route_refresh: u64,
}

/// One peer as `node status` shows it (field names are the contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// Mesh, global, ...
    #[serde(rename = "type", serialize_with = "ser_type")]
    pub peer_type: PeerType,
    /// RFC 4271 state name.
    #[serde(serialize_with = "ser_state")]
    pub state: State,
    /// When the state last changed (RFC 3339 UTC).
    #[serde(serialize_with = "ser_time")]
    pub since: SystemTime,
    /// Prefixes in the Adj-RIB-In.
    pub prefixes_received: u64,
    /// Prefixes advertised to the peer.
    pub prefixes_sent: u64,
    /// The last NOTIFICATION sent or received, or why the connection failed, in words
    /// (a failed connect of ours does not replace a NOTIFICATION or a lost connection).
    pub last_error: Option<String>,
    /// Messages received.
    pub received: MessageCounters,
    /// Messages sent.
    pub sent: MessageCounters,
    /// Times the session left Established.
    pub flaps: u64,
}

impl PeerStatus {
    /// A peer that has not started yet.
    pub fn new(address: IpAddr, asn: u32, peer_type: PeerType) -> Self {
        Self {
            address,
            asn,
            peer_type,
            state: State::Idle,
            since: SystemTime::now(),
            prefixes_received: 0,
            prefixes_sent: 0,
            last_error: None,
            received: MessageCounters::default(),
            sent: MessageCounters::default(),
            flaps: 0,
        }
    }
}

fn ser_type<S: serde::Serializer>(t: &PeerType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn ser_state<S: serde::Serializer>(st: &State, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(st.name())
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// `2026-11-29T07:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.format(&fmt).unwrap_or_default()
}

/// The BGP metrics of INTERFACES.md in Prometheus text format.
pub fn render_metrics(peers: &[PeerStatus]) -> String {
    let mut m = String::new();
    let mut family = |name: &str, kind: &str, help: &str, f: &dyn Fn(&PeerStatus) -> String| {
        let _ = writeln!(
            m,
            "# HELP tortie_{name} {help}\n# TYPE tortie_{name} {kind}"
        );
        for p in peers {
            let _ = writeln!(m, "tortie_{name}{}", f(p));
        }
    };
    family(
        "bgp_peer_state",
        "gauge",
        "RFC 4271 session state (6 = Established).",
        &|p| {
            format!(
                "{{peer=\"{}\",type=\"{}\"}} {}",
                p.address,
                p.peer_type.as_str(),
                p.state.number()
            )
        },
    );
    family(
        "bgp_peer_prefixes_received",
        "gauge",
        "Prefixes in the peer's Adj-RIB-In.",
        &|p| format!("{{peer=\"{}\"}} {}", p.address, p.prefixes_received),
    );
    family(
        "bgp_peer_prefixes_sent",
        "gauge",
        "Prefixes advertised to the peer.",
        &|p| format!("{{peer=\"{}\"}} {}", p.address, p.prefixes_sent),
    );
    family(
        "bgp_peer_flaps_total",
        "counter",
        "Times the session left Established.",
        &|p| format!("{{peer=\"{}\"}} {}", p.address, p.flaps),
    );
    family(
        "bgp_updates_received_total",
        "counter",
        "UPDATE messages received.",
        &|p| format!("{{peer=\"{}\"}} {}", p.address, p.received.update),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serialises_with_the_contract_field_names() {
        let mut p = PeerStatus::new("10.0.1.6".parse().unwrap(), 64512, PeerType::Mesh);
        p.state = State::Established;
        p.since = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_935_600);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["address"], "10.0.1.6");
        assert_eq!(v["type"], "node-to-node mesh");
        assert_eq!(v["state"], "Established");
        assert_eq!(v["since"], "2026-11-29T07:00:00Z");
        assert_eq!(v["last_error"], serde_json::Value::Null);
    }

    #[test]
    fn metrics_name_the_state_number_per_peer() {
        let mut p = PeerStatus::new("10.0.1.6".parse().unwrap(), 64512, PeerType::Global);
        p.state = State::Established;
        let m = render_metrics(&[p]);
        assert!(
            m.contains("tortie_bgp_peer_state{peer=\"10.0.1.6\",type=\"global\"} 6"),
            "{m}"
        );
        assert!(m.contains("tortie_bgp_updates_received_total{peer=\"10.0.1.6\"} 0"));
    }
}
