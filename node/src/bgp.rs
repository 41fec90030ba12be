//! The speaker's lifecycle in tortie-node: the settings that can only be
//! given when a speaker starts (our AS, the route reflector cluster id of
//! RFC 4456, the listen port), read from the snapshot; starting a speaker
//! with them and Calico's policy; and, when one of them changes at run
//! time, the reason to replace the running speaker (every session resets
//! then, as when calico-node's BIRD is reconfigured with a new AS).
//!
//! Must not: hold sessions or routes itself (the agent re-adds peers and
//! originations to a new speaker).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tortie_bgp_rib::PolicyConfig;
use tortie_bgp_speaker::{
    EventRx, RestartOptions, Speaker, SpeakerConfig, SpeakerError, SpeakerHandle, SpeakerOptions,
};

use tortie_model::bgpconfig::BindMode;

use crate::snapshot::{node_addr, rr_cluster, Snapshot};

/// What a speaker is started with and cannot change while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerParams {
    /// Our AS: the Node's `spec.bgp.asNumber`, else BGPConfiguration
    /// `asNumber`, else 64512.
    pub asn: u32,
    /// The Node's `routeReflectorClusterID` (we reflect when set).
    pub cluster_id: Option<Ipv4Addr>,
    /// `--bgp-port`, else BGPConfiguration `listenPort` (`node.<name>`'s,
    /// else `default`'s), else 179.
    pub port: u16,
    /// BGPConfiguration `bindMode: NodeIP`: the listener binds only the
    /// node's address (`None`: every address).
    pub bind: Option<IpAddr>,
}

impl SpeakerParams {
    /// The parameters for node `node` in `snap`; `port_flag` is `--bgp-port`.
    pub fn from_snapshot(snap: &Snapshot, node: &str, port_flag: Option<u16>) -> Self {
        let me = snap.node(node);
        Self {
            asn: me.map_or_else(|| snap.default_asn(), |n| snap.node_asn(n)),
            cluster_id: me.and_then(rr_cluster),
            port: port_flag
                .or_else(|| snap.bgp_setting(node, |c| c.listen_port))
                .unwrap_or(179),
            bind: match snap.bgp_config.as_ref().map(|c| c.bind_mode()) {
                Some(BindMode::NodeIp) => me.and_then(node_addr),
                _ => None,
            },
        }
    }

    /// The listener's address.
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(
            self.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.port,
        )
    }

    /// Why a speaker started with `self` must be replaced to run with
    /// `new`, in words; `None` when nothing that needs a restart changed.
    pub fn restart_reason(&self, new: &Self) -> Option<String> {
        let show = |c: Option<Ipv4Addr>| c.map_or_else(|| "none".to_string(), |c| c.to_string());
        let mut why = Vec::new();
        if self.asn != new.asn {
            why.push(format!("AS {} -> {}", self.asn, new.asn));
        }
        if self.cluster_id != new.cluster_id {
            why.push(format!(
                "route reflector cluster id {} -> {}",
                show(self.cluster_id),
                show(new.cluster_id)
            ));
        }
        if self.port != new.port {
            why.push(format!("listen port {} -> {}", self.port, new.port));
        }
        if self.bind != new.bind {
            let show = |b: Option<IpAddr>| b.map_or_else(|| "all".to_string(), |b| b.to_string());
            why.push(format!(
                "listen address {} -> {}",
                show(self.bind),
                show(new.bind)
            ));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }
}

/// How long [`start`] retries binding the listen port (the previous
/// speaker's listener may still be closing).
const BIND_RETRY: Duration = Duration::from_secs(5);

/// Starts a speaker listening at `params.listen()`, with
/// `params`' AS and cluster id and `policy`; with `restart`, as a
/// restarting speaker (RFC 4724 §4.1: the kernel kept our forwarding state).
/// Retries a busy port for a few seconds.
pub async fn start(
    params: SpeakerParams,
    router_id: Ipv4Addr,
    policy: Option<PolicyConfig>,
    restart: Option<RestartOptions>,
) -> Result<(SpeakerHandle, EventRx), SpeakerError> {
    let listen = params.listen();
    tracing::info!(
        asn = params.asn,
        %router_id,
        %listen,
        cluster_id = ?params.cluster_id,
        restarting = restart.is_some(),
        "starting the BGP speaker"
    );
    let deadline = tokio::time::Instant::now() + BIND_RETRY;
    loop {
        let options = SpeakerOptions {
            cluster_id: params.cluster_id,
            policy: policy.clone(),
            restart,
            ..SpeakerOptions::default()
        };
        let config = SpeakerConfig {
            asn: params.asn,
            router_id,
            listen: Some(listen),
            peers: vec![],
        };
        match Speaker::start_with(config, options) {
            Err(SpeakerError::Listen(..)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_model::{BgpConfigurationSpec, Node, NodeBgpSpec};

    fn snap(node_asn: Option<u32>, rr: Option<&str>) -> Snapshot {
        let mut n = Node::new("n1");
        n.spec.bgp = Some(NodeBgpSpec {
            as_number: node_asn.map(Into::into),
            route_reflector_cluster_id: rr.map(|r| r.parse().unwrap()),
            ..Default::default()
        });
        Snapshot {
            nodes: vec![n],
            bgp_config: Some(BgpConfigurationSpec {
                as_number: Some(65000.into()),
                listen_port: Some(17900),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_node_as_wins_over_the_cluster_default_and_the_flag_over_listen_port() {
        let p = SpeakerParams::from_snapshot(&snap(Some(65010), None), "n1", None);
        assert_eq!((p.asn, p.cluster_id, p.port), (65010, None, 17900));
        let p = SpeakerParams::from_snapshot(&snap(None, Some("1.0.0.1")), "n1", Some(179));
        assert_eq!(p.asn, 65000);
        assert_eq!(p.cluster_id, Some("1.0.0.1".parse().unwrap()));
        assert_eq!(p.port, 179);
        // Before our Node exists: the cluster default.
        let p = SpeakerParams::from_snapshot(&snap(Some(65010), None), "n9", None);
        assert_eq!(p.asn, 65000);
    }

    #[test]
    fn a_new_as_or_cluster_id_needs_a_restart_and_nothing_else_does() {
        let old = SpeakerParams::from_snapshot(&snap(None, None), "n1", None);
        assert_eq!(old.restart_reason(&old), None);
        let new = SpeakerParams::from_snapshot(&snap(Some(65010), None), "n1", None);
        assert_eq!(old.restart_reason(&new).unwrap(), "AS 65000 -> 65010");
        let rr = SpeakerParams::from_snapshot(&snap(None, Some("1.0.0.1")), "n1", None);
        assert_eq!(
            old.restart_reason(&rr).unwrap(),
            "route reflector cluster id none -> 1.0.0.1"
        );
        // bindMode: NodeIP binds the node's address (the listener moves).
        let mut s = snap(None, None);
        s.nodes[0].spec.bgp.as_mut().unwrap().ipv4_address = Some("10.0.1.5/24".parse().unwrap());
        s.bgp_config.as_mut().unwrap().bind_mode = Some(BindMode::NodeIp);
        let bound = SpeakerParams::from_snapshot(&s, "n1", None);
        assert_eq!(bound.listen().to_string(), "10.0.1.5:17900");
        assert_eq!(
            old.restart_reason(&bound).unwrap(),
            "listen address all -> 10.0.1.5"
        );
        // A node.<name> configuration's listenPort wins over default's.
        s.bgp_node_configs.insert(
            "n1".into(),
            BgpConfigurationSpec {
                listen_port: Some(17990),
                ..Default::default()
            },
        );
        assert_eq!(SpeakerParams::from_snapshot(&s, "n1", None).port, 17990);
        assert_eq!(SpeakerParams::from_snapshot(&s, "n2", None).port, 17900);
        // Other resources changing (a pool, a peer) do not touch the params.
        let mut s = snap(None, None);
        s.pools.push(tortie_model::IpPool::new(
            "p",
            "10.244.0.0/16".parse().unwrap(),
        ));
        assert_eq!(
            old.restart_reason(&SpeakerParams::from_snapshot(&s, "n1", None)),
            None
        );
    }
}
