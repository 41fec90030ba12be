//! Which BGP sessions this node must hold, computed from the datastore the
//! way calico-node's confd does: the node-to-node mesh, BGPPeer objects
//! (global, node-specific, nodeSelector, peerSelector) and route reflector
//! clusters. Pure: the agent diffs the result against the running peers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use tortie_bgp_speaker::{
    Establishment, GracefulRestartConfig, PeerConfig, PeerType, TimersConfig,
};
use tortie_model::bgppeer::{NextHopMode, SourceAddress};
use tortie_model::{BgpPassword, BgpPeer, GoDuration, Node};

use crate::snapshot::{node_addr, rr_cluster, Snapshot};

/// Who we are, for peer computation.
#[derive(Debug, Clone)]
pub struct LocalIdentity {
    /// Our node name.
    pub name: String,
    /// Our node IP (session source).
    pub ip: IpAddr,
    /// The BGP port every node listens on.
    pub port: u16,
}

/// Timers for tortie's own sessions: retry quickly so that a cluster comes
/// up in seconds.
fn timers() -> TimersConfig {
    TimersConfig {
        connect_retry: 5,
        ..TimersConfig::default()
    }
}

fn base(me: &LocalIdentity, address: IpAddr, asn: u32, t: PeerType) -> PeerConfig {
    let mut p = PeerConfig::new(address, asn);
    p.port = me.port;
    p.peer_type = t;
    p.local_address = Some(me.ip);
    p.timers = timers();
    p.families = vec![tortie_bgp_speaker::AfiName::Ipv4];
    // RFC 4456: we reflect routes to our clients (needs our cluster id).
    p.route_reflector_client = t == PeerType::RouteReflectorClient;
    // RFC 4724, as Calico's BIRD: restart time 120 s, forwarding preserved
    // (felix leaves the kernel routes in place while tortie-node restarts).
    p.graceful_restart = Some(GracefulRestartConfig::default());
    p
}

/// Calico's `maxRestartTime` (BGPPeer) / `nodeMeshMaxRestartTime`
/// (BGPConfiguration): BIRD's `graceful restart time`, the restart time we
/// offer (at most RFC 4724's 4095 s); it also caps the time we keep the
/// peer's routes when it restarts.
fn with_restart_time(mut p: PeerConfig, max: Option<GoDuration>) -> PeerConfig {
    if let Some(max) = max {
        let secs = u32::try_from(max.as_duration().as_secs()).unwrap_or(u32::MAX);
        p.max_restart_time = Some(secs);
        if let Some(gr) = &mut p.graceful_restart {
            gr.restart_time = u16::try_from(secs.min(4095)).unwrap_or(4095);
        }
    }
    p
}

/// The type of a session between two tortie nodes given their RR roles;
/// without RR roles, `default` (the mesh's or the BGPPeer's type, as
/// Calico shows it).
fn node_peer_type(local: &Node, remote: &Node, default: PeerType) -> PeerType {
    match (rr_cluster(local), rr_cluster(remote)) {
        (Some(_), None) => PeerType::RouteReflectorClient,
        (_, Some(_)) => PeerType::RouteReflector,
        (None, None) => default,
    }
}

/// A session with another tortie node, whatever its type: the speaker puts
/// it under the cluster import rules (only pool and service prefixes,
/// nothing inside our own blocks but the addresses lent out of them), not
/// under the external filter that `global` / `node specific` BGPPeers get
/// (accept all, as Calico). Else a node (a BGPPeer with a peerSelector, or
/// a peerIP that is a Node's address) could announce any prefix (a
/// hijack) and we would install it.
fn node_base(me: &LocalIdentity, address: IpAddr, asn: u32, t: PeerType) -> PeerConfig {
    let mut p = base(me, address, asn, t);
    p.cluster_node = true;
    p
}

/// The Node (other than us) whose address is `ip`.
fn node_at<'a>(snap: &'a Snapshot, me: &LocalIdentity, ip: IpAddr) -> Option<&'a Node> {
    snap.nodes
        .iter()
        .find(|n| n.metadata.name != me.name && node_addr(n) == Some(ip))
}

/// Sessions being computed, with the password reference of each.
#[derive(Debug, Default)]
struct Out {
    peers: PeerMap,
    passwords: BTreeMap<IpAddr, BgpPassword>,
    problems: Vec<String>,
}

impl Out {
    /// Sets the session to `p.address` (a later source wins, as in Calico).
    fn insert(&mut self, p: PeerConfig, pw: Option<&BgpPassword>) {
        match pw {
            Some(pw) => self.passwords.insert(p.address, pw.clone()),
            None => self.passwords.remove(&p.address),
        };
        self.peers.insert(p.address, p);
    }

    /// Sets the session unless one to that address is there already.
    fn insert_new(&mut self, p: PeerConfig, pw: Option<&BgpPassword>) {
        if !self.peers.contains_key(&p.address) {
            self.insert(p, pw);
        }
    }
}

fn mesh_peers(snap: &Snapshot, me: &LocalIdentity, local: &Node, out: &mut Out) {
    if !snap.mesh_enabled() || rr_cluster(local).is_some() {
        return;
    }
    for n in &snap.nodes {
        if n.metadata.name == me.name || rr_cluster(n).is_some() {
            continue;
        }
        let Some(addr) = node_addr(n) else { continue };
        let mesh_max = snap
            .bgp_config
            .as_ref()
            .and_then(|c| c.node_mesh_max_restart_time);
        let p = node_base(me, addr, snap.node_asn(n), PeerType::Mesh);
        let mut p = with_restart_time(p, mesh_max);
        p.establishment = Establishment::Mesh;
        let pw = snap
            .bgp_config
            .as_ref()
            .and_then(|c| c.node_mesh_password.as_ref());
        out.insert(p, pw);
    }
}

/// Calico's reverse direction of a peerSelector: a node that a BGPPeer's
/// peerSelector selects peers back with every node the BGPPeer applies to.
fn reverse_peers(snap: &Snapshot, me: &LocalIdentity, local: &Node, out: &mut Out) {
    for bp in &snap.bgp_peers {
        let spec = &bp.spec;
        if !spec.selects_peer(&local.metadata.labels) {
            continue;
        }
        for n in &snap.nodes {
            if n.metadata.name == me.name
                || !spec.applies_to_node(&n.metadata.name, &n.metadata.labels)
            {
                continue;
            }
            let Some(addr) = node_addr(n) else { continue };
            // Calico configures the reverse session per node.
            let t = node_peer_type(local, n, PeerType::NodeSpecific);
            let p = node_base(me, addr, snap.node_asn(n), t);
            let p = from_spec(p, bp, snap, out);
            out.insert_new(p, spec.password.as_ref());
        }
    }
}

/// What a BGPPeer sets on each session it makes: `maxRestartTime`,
/// `keepaliveTime` (BIRD's `keepalive time`), `sourceAddress` (`None`: the
/// kernel picks the source), `numAllowedLocalASNumbers` (BIRD's `allow
/// local as`: our AS may appear that often in received AS paths) and the
/// next hop of routes sent (`nextHopMode`, or `keepOriginalNextHop` for
/// `Keep`) and `filters` (the BGPFilters' rules, [`crate::filters`]).
fn from_spec(p: PeerConfig, bp: &BgpPeer, snap: &Snapshot, out: &mut Out) -> PeerConfig {
    let spec = &bp.spec;
    let mut p = with_restart_time(p, spec.max_restart_time);
    p.filters = crate::filters::peer_filters(
        &bp.metadata.name,
        &spec.filters,
        &snap.bgp_filters,
        &mut out.problems,
    );
    if let Some(k) = spec.keepalive_time {
        // Validation keeps it between 1 s and 65535 s.
        let secs = k.as_duration().as_secs().clamp(1, u64::from(u16::MAX));
        p.timers.keepalive = u16::try_from(secs).ok();
    }
    if spec.source_address() == SourceAddress::None {
        p.local_address = None;
    }
    if let Some(n) = spec.num_allowed_local_as_numbers {
        // More than 255 copies of our AS is no path anyone sends.
        p.allowas_in = u8::try_from(n.max(0)).unwrap_or(u8::MAX);
    }
    p.next_hop_mode = match (spec.keep_original_next_hop, spec.next_hop_mode) {
        (true, _) | (_, Some(NextHopMode::Keep)) => tortie_bgp_speaker::NextHopMode::Keep,
        (_, Some(NextHopMode::SelfAddress)) => tortie_bgp_speaker::NextHopMode::SelfAddr,
        (_, Some(NextHopMode::Auto) | None) => tortie_bgp_speaker::NextHopMode::Auto,
    };
    p
}

fn explicit_peers(snap: &Snapshot, me: &LocalIdentity, local: &Node, out: &mut Out) {
    let labels = &local.metadata.labels;
    reverse_peers(snap, me, local, out);
    for bp in &snap.bgp_peers {
        let spec = &bp.spec;
        if !spec.applies_to_node(&me.name, labels) {
            continue;
        }
        let kind = if spec.node.is_some() || spec.node_selector.is_some() {
            PeerType::NodeSpecific
        } else {
            PeerType::Global
        };
        if let Some(pip) = &spec.peer_ip {
            let asn = spec.as_number.map_or_else(|| snap.default_asn(), |a| a.0);
            // External only when no Node has this address.
            let p = match node_at(snap, me, pip.ip) {
                Some(n) => node_base(me, pip.ip, asn, node_peer_type(local, n, kind)),
                None => base(me, pip.ip, asn, kind),
            };
            let mut p = from_spec(p, bp, snap, out);
            p.port = pip.port.unwrap_or(179);
            p.ttl_security = spec.ttl_security.filter(|t| *t > 0);
            out.insert(p, spec.password.as_ref());
        }
        if spec.peer_selector.is_some() {
            for n in &snap.nodes {
                if n.metadata.name == me.name || !spec.selects_peer(&n.metadata.labels) {
                    continue;
                }
                let Some(addr) = node_addr(n) else { continue };
                let t = node_peer_type(local, n, kind);
                let p = node_base(me, addr, snap.node_asn(n), t);
                let p = from_spec(p, bp, snap, out);
                out.insert(p, spec.password.as_ref());
            }
        }
    }
}

/// Peers keyed by address.
pub type PeerMap = BTreeMap<IpAddr, PeerConfig>;

/// The sessions this node must hold, before their passwords are read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// Every session (passwords unset).
    pub peers: PeerMap,
    /// The password reference of each session that has one
    /// (`BGPPeer.password`, `BGPConfiguration.nodeMeshPassword`).
    pub passwords: BTreeMap<IpAddr, BgpPassword>,
    /// What could not be honoured (a BGPFilter that does not exist), in
    /// words, for the log.
    pub problems: Vec<String>,
}

/// Every session this node must hold, with password references. Without
/// our own Node resource there are none.
pub fn desired(snap: &Snapshot, me: &LocalIdentity) -> Desired {
    let mut out = Out::default();
    let Some(local) = snap.node(&me.name) else {
        return Desired::default();
    };
    mesh_peers(snap, me, local, &mut out);
    explicit_peers(snap, me, local, &mut out);
    out.peers.remove(&me.ip);
    out.passwords.remove(&me.ip);
    out.problems.sort();
    out.problems.dedup();
    Desired {
        peers: out.peers,
        passwords: out.passwords,
        problems: out.problems,
    }
}

/// Every session this node must hold (passwords unset).
pub fn desired_peers(snap: &Snapshot, me: &LocalIdentity) -> PeerMap {
    desired(snap, me).peers
}

/// A session that cannot start: its password could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The session as it would run.
    pub cfg: PeerConfig,
    /// Why not, in words (names the secret, never its content).
    pub error: String,
}

/// Sessions with their passwords, and those without a readable one.
#[derive(Debug, Default, PartialEq)]
pub struct Resolved {
    /// Sessions to run, passwords set.
    pub peers: PeerMap,
    /// Sessions held back (never started without their password).
    pub blocked: BTreeMap<IpAddr, Blocked>,
}

/// Reads the passwords of `d` with `read` (see [`crate::secrets::resolve`]).
pub fn resolve<F>(d: &Desired, mut read: F) -> Resolved
where
    F: FnMut(&BgpPassword) -> Result<Option<crate::secrets::Password>, crate::secrets::SecretError>,
{
    let mut r = Resolved::default();
    for (addr, cfg) in &d.peers {
        let mut cfg = cfg.clone();
        if let Some(pw) = d.passwords.get(addr) {
            match read(pw) {
                Ok(p) => cfg.password = p.map(|p| p.0),
                Err(e) => {
                    let error = e.to_string();
                    r.blocked.insert(*addr, Blocked { cfg, error });
                    continue;
                }
            }
        }
        r.peers.insert(*addr, cfg);
    }
    r
}

/// What to do to go from `running` to `desired`.
#[derive(Debug, Default, PartialEq)]
pub struct PeerDiff {
    /// New sessions.
    pub add: Vec<PeerConfig>,
    /// Changed sessions (only these restart).
    pub update: Vec<PeerConfig>,
    /// Sessions to stop.
    pub remove: Vec<IpAddr>,
}

/// Diffs two peer maps.
pub fn diff(running: &PeerMap, desired: &PeerMap) -> PeerDiff {
    let mut d = PeerDiff::default();
    for (addr, cfg) in desired {
        match running.get(addr) {
            None => d.add.push(cfg.clone()),
            Some(old) if old != cfg => d.update.push(cfg.clone()),
            Some(_) => {}
        }
    }
    d.remove = running
        .keys()
        .filter(|a| !desired.contains_key(a))
        .copied()
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_model::{BgpConfigurationSpec, BgpPeer, NodeBgpSpec};

    fn node(name: &str, ip: &str, labels: &[(&str, &str)], rr: Option<&str>) -> Node {
        let mut n = Node::new(name);
        n.spec.bgp = Some(NodeBgpSpec {
            ipv4_address: Some(ip.parse().unwrap()),
            route_reflector_cluster_id: rr.map(|r| r.parse().unwrap()),
            ..Default::default()
        });
        for (k, v) in labels {
            n.metadata.labels.insert(k.to_string(), v.to_string());
        }
        n
    }

    fn me(name: &str, ip: &str) -> LocalIdentity {
        LocalIdentity {
            name: name.into(),
            ip: ip.parse().unwrap(),
            port: 179,
        }
    }

    fn peer(yaml: &str) -> BgpPeer {
        let text = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: p\nspec:\n{yaml}"
        );
        match tortie_model::parse_manifest(&text).unwrap().remove(0) {
            tortie_model::Resource::BgpPeer(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn snap3() -> Snapshot {
        Snapshot {
            nodes: vec![
                node("n1", "10.0.1.11/24", &[], None),
                node("n2", "10.0.1.12/24", &[], None),
                node("n3", "10.0.2.13/24", &[("rack", "b")], None),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_mesh_peers_with_every_other_node() {
        let p = desired_peers(&snap3(), &me("n1", "10.0.1.11"));
        let addrs: Vec<String> = p.keys().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["10.0.1.12", "10.0.2.13"]);
        assert!(p.values().all(|c| c.peer_type == PeerType::Mesh));
        assert!(p.values().all(|c| c.establishment == Establishment::Mesh));
        assert!(p.values().all(|c| c.cluster_node));
    }

    #[test]
    fn no_sessions_without_our_own_node() {
        assert!(desired_peers(&snap3(), &me("n9", "10.0.1.99")).is_empty());
    }

    #[test]
    fn mesh_off_leaves_only_bgp_peers() {
        let mut s = snap3();
        s.bgp_config = Some(BgpConfigurationSpec {
            node_to_node_mesh_enabled: Some(false),
            ..Default::default()
        });
        s.bgp_peers = vec![peer("  peerIP: 192.0.2.1\n  asNumber: 65001\n")];
        let p = desired_peers(&s, &me("n1", "10.0.1.11"));
        assert_eq!(p.len(), 1);
        let g = &p[&"192.0.2.1".parse::<IpAddr>().unwrap()];
        assert_eq!((g.asn, g.peer_type), (65001, PeerType::Global));
        assert!(!g.cluster_node);
    }

    #[test]
    fn a_node_specific_peer_applies_only_to_its_node() {
        let mut s = snap3();
        s.bgp_peers = vec![peer("  node: n2\n  peerIP: 192.0.2.1\n  asNumber: 65001\n")];
        assert_eq!(desired_peers(&s, &me("n1", "10.0.1.11")).len(), 2);
        let p = desired_peers(&s, &me("n2", "10.0.1.12"));
        assert_eq!(
            p[&"192.0.2.1".parse::<IpAddr>().unwrap()].peer_type,
            PeerType::NodeSpecific
        );
    }

    #[test]
    fn route_reflectors_leave_the_mesh_and_peer_by_selector() {
        let mut s = snap3();
        s.nodes[2] = node("n3", "10.0.2.13/24", &[("rr", "yes")], Some("1.0.0.1"));
        s.bgp_peers = vec![peer("  nodeSelector: all()\n  peerSelector: rr == 'yes'\n")];
        let p = desired_peers(&s, &me("n1", "10.0.1.11"));
        let rr = &p[&"10.0.2.13".parse::<IpAddr>().unwrap()];
        assert_eq!(rr.peer_type, PeerType::RouteReflector);
        assert!(rr.cluster_node);
        assert_eq!(
            p[&"10.0.1.12".parse::<IpAddr>().unwrap()].peer_type,
            PeerType::Mesh
        );
    }

    #[test]
    fn a_route_reflector_sees_its_clients() {
        let mut s = snap3();
        s.nodes[2] = node("n3", "10.0.2.13/24", &[("rr", "yes")], Some("1.0.0.1"));
        s.bgp_peers = vec![peer("  nodeSelector: rr == 'yes'\n  peerSelector: all()\n")];
        let p = desired_peers(&s, &me("n3", "10.0.2.13"));
        assert_eq!(p.len(), 2);
        assert!(p
            .values()
            .all(|c| c.peer_type == PeerType::RouteReflectorClient));
        assert!(p.values().all(|c| c.route_reflector_client));
    }

    #[test]
    fn a_peer_selected_node_peers_back_with_the_nodes_the_bgppeer_applies_to() {
        let mut s = snap3();
        s.nodes[2] = node("n3", "10.0.2.13/24", &[("rr", "yes")], Some("1.0.0.1"));
        s.bgp_config = Some(BgpConfigurationSpec {
            node_to_node_mesh_enabled: Some(false),
            ..Default::default()
        });
        s.bgp_peers = vec![peer("  nodeSelector: all()\n  peerSelector: rr == 'yes'\n")];
        let p = desired_peers(&s, &me("n3", "10.0.2.13"));
        assert_eq!(p.len(), 2);
        assert!(p.values().all(|c| c.route_reflector_client));
        let c = desired_peers(&s, &me("n1", "10.0.1.11"));
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.values().next().unwrap().peer_type,
            PeerType::RouteReflector
        );
    }

    #[test]
    fn bgppeers_to_other_nodes_get_the_cluster_import_rules_and_others_not() {
        let mut s = snap3();
        s.bgp_config = Some(BgpConfigurationSpec {
            node_to_node_mesh_enabled: Some(false),
            ..Default::default()
        });
        s.bgp_peers = vec![
            peer("  peerSelector: rack == 'b'\n"),
            peer("  node: n1\n  peerIP: 10.0.1.12\n  asNumber: 64512\n"),
            peer("  node: n1\n  peerIP: 192.0.2.1\n  asNumber: 65001\n"),
        ];
        let p = desired_peers(&s, &me("n1", "10.0.1.11"));
        let c = |a: &str| {
            let c = &p[&a.parse::<IpAddr>().unwrap()];
            (c.peer_type, c.cluster_node)
        };
        // Shown with Calico's types, imported under the cluster rules.
        assert_eq!(c("10.0.2.13"), (PeerType::Global, true));
        assert_eq!(c("10.0.1.12"), (PeerType::NodeSpecific, true));
        assert_eq!(c("192.0.2.1"), (PeerType::NodeSpecific, false));
        // The selected node peers back with us under the cluster rules too,
        // per node as Calico configures the reverse sessions.
        let back = desired_peers(&s, &me("n3", "10.0.2.13"));
        assert!(back
            .values()
            .all(|c| c.peer_type == PeerType::NodeSpecific && c.cluster_node));
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn every_peer_offers_graceful_restart_with_calicos_restart_times() {
        let mut s = snap3();
        s.bgp_config = Some(BgpConfigurationSpec {
            node_mesh_max_restart_time: Some(GoDuration::from_secs(300)),
            ..Default::default()
        });
        s.bgp_peers = vec![
            peer("  peerIP: 192.0.2.1\n  asNumber: 65001\n  maxRestartTime: 2h\n"),
            peer("  peerIP: 192.0.2.2\n  asNumber: 65001\n"),
        ];
        let p = desired_peers(&s, &me("n1", "10.0.1.11"));
        let gr = |a: &str| {
            let c = &p[&a.parse::<IpAddr>().unwrap()];
            (c.graceful_restart.unwrap(), c.max_restart_time)
        };
        let (mesh, mesh_max) = gr("10.0.1.12");
        assert_eq!((mesh.restart_time, mesh_max), (300, Some(300)));
        assert!(mesh.forwarding_preserved);
        let (long, long_max) = gr("192.0.2.1");
        assert_eq!((long.restart_time, long_max), (4095, Some(7200)));
        let (plain, plain_max) = gr("192.0.2.2");
        assert_eq!((plain.restart_time, plain_max), (120, None));
        assert!(plain.forwarding_preserved);
    }

    #[test]
    fn per_node_as_numbers_are_used() {
        let mut s = snap3();
        s.nodes[1].spec.bgp.as_mut().unwrap().as_number = Some(65002.into());
        let p = desired_peers(&s, &me("n1", "10.0.1.11"));
        assert_eq!(p[&"10.0.1.12".parse::<IpAddr>().unwrap()].asn, 65002);
        assert_eq!(p[&"10.0.2.13".parse::<IpAddr>().unwrap()].asn, 64512);
    }

    #[test]
    fn a_diff_touches_only_the_sessions_concerned() {
        let s = snap3();
        let me1 = me("n1", "10.0.1.11");
        let before = desired_peers(&s, &me1);
        let mut s2 = s.clone();
        s2.nodes.remove(2);
        s2.nodes.push(node("n4", "10.0.2.14/24", &[], None));
        s2.nodes[1].spec.bgp.as_mut().unwrap().as_number = Some(65002.into());
        let d = diff(&before, &desired_peers(&s2, &me1));
        assert_eq!(d.add.len(), 1);
        assert_eq!(d.add[0].address.to_string(), "10.0.2.14");
        assert_eq!(d.update.len(), 1);
        assert_eq!(d.update[0].asn, 65002);
        assert_eq!(d.remove, vec!["10.0.2.13".parse::<IpAddr>().unwrap()]);
    }

    fn secret(name: &str, key: &str) -> String {
        format!("    secretKeyRef:\n      name: {name}\n      key: {key}\n")
    }

    fn with_passwords() -> Snapshot {
        let mut s = snap3();
        s.bgp_config = Some(BgpConfigurationSpec {
            node_mesh_password: Some(tortie_model::BgpPassword {
                secret_key_ref: Some(tortie_model::SecretKeyRef {
                    name: "mesh".into(),
                    key: "pw".into(),
                    optional: None,
                }),
            }),
            ..Default::default()
        });
        s.bgp_peers = vec![
            peer(&format!(
                "  peerIP: 192.0.2.1\n  asNumber: 65001\n  password:\n{}",
                secret("tor", "pw")
            )),
            peer("  peerIP: 192.0.2.2\n  asNumber: 65001\n"),
        ];
        s
    }

    fn read_from<'a>(
        files: &'a [(&'a str, &'a str)],
    ) -> impl FnMut(
        &tortie_model::BgpPassword,
    ) -> Result<Option<crate::secrets::Password>, crate::secrets::SecretError>
           + 'a {
        |pw| {
            let r = pw.secret_key_ref.as_ref().unwrap();
            let want = format!("{}/{}", r.name, r.key);
            match files.iter().find(|(k, _)| *k == want) {
                Some((_, v)) => Ok(Some(crate::secrets::Password(v.to_string()))),
                None => Err(crate::secrets::SecretError::Missing {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    path: want.into(),
                }),
            }
        }
    }

    #[test]
    fn mesh_sessions_take_the_mesh_password_and_bgppeers_their_own() {
        let d = desired(&with_passwords(), &me("n1", "10.0.1.11"));
        let key = |a: &str| {
            d.passwords
                .get(&a.parse::<IpAddr>().unwrap())
                .map(|p| p.secret_key_ref.as_ref().unwrap().name.clone())
        };
        assert_eq!(key("10.0.1.12").as_deref(), Some("mesh"));
        assert_eq!(key("10.0.2.13").as_deref(), Some("mesh"));
        assert_eq!(key("192.0.2.1").as_deref(), Some("tor"));
        assert_eq!(key("192.0.2.2"), None);
        assert!(d.peers.values().all(|p| p.password.is_none()));
    }

    #[test]
    fn a_peer_whose_secret_cannot_be_read_is_held_back_and_the_others_run() {
        let d = desired(&with_passwords(), &me("n1", "10.0.1.11"));
        let r = resolve(&d, read_from(&[("mesh/pw", "m")]));
        let tor: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!r.peers.contains_key(&tor));
        assert!(r.blocked[&tor].error.contains("tor/pw"), "{:?}", r.blocked);
        assert_eq!(r.peers.len(), 3);
        let mesh = &r.peers[&"10.0.1.12".parse::<IpAddr>().unwrap()];
        assert_eq!(mesh.password.as_deref(), Some("m"));
        assert_eq!(
            r.peers[&"192.0.2.2".parse::<IpAddr>().unwrap()].password,
            None
        );
    }

    #[test]
    fn a_rotated_secret_updates_only_the_sessions_that_use_it() {
        let d = desired(&with_passwords(), &me("n1", "10.0.1.11"));
        let before = resolve(&d, read_from(&[("mesh/pw", "m"), ("tor/pw", "t1")]));
        let after = resolve(&d, read_from(&[("mesh/pw", "m"), ("tor/pw", "t2")]));
        let dd = diff(&before.peers, &after.peers);
        assert!(dd.add.is_empty() && dd.remove.is_empty());
        assert_eq!(dd.update.len(), 1);
        assert_eq!(dd.update[0].address.to_string(), "192.0.2.1");
        assert_eq!(dd.update[0].password.as_deref(), Some("t2"));
        // A secret that disappears stops its session (never unauthenticated).
        let gone = resolve(&d, read_from(&[("mesh/pw", "m")]));
        let dd = diff(&before.peers, &gone.peers);
        assert_eq!(dd.remove, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn bgppeer_fields_reach_the_session() {
        let mut s = snap3();
        s.bgp_peers = vec![
            peer("  peerIP: 192.0.2.1\n  asNumber: 65001\n  keepaliveTime: 7s\n  sourceAddress: None\n  numAllowedLocalASNumbers: 2\n  nextHopMode: Self\n"),
            peer("  peerIP: 192.0.2.2\n  asNumber: 65001\n  keepOriginalNextHop: true\n"),
            peer("  peerIP: 192.0.2.3\n  asNumber: 65001\n  nextHopMode: Keep\n"),
            peer("  peerIP: 192.0.2.4\n  asNumber: 65001\n"),
        ];
        let p = desired_peers(&s, &me("n1", "10.0.1.11"));
        let c = |a: &str| p[&a.parse::<IpAddr>().unwrap()].clone();
        let one = c("192.0.2.1");
        assert_eq!(one.timers.keepalive, Some(7));
        assert_eq!(one.local_address, None);
        assert_eq!(one.allowas_in, 2);
        assert_eq!(one.next_hop_mode, tortie_bgp_speaker::NextHopMode::SelfAddr);
        assert_eq!(
            c("192.0.2.2").next_hop_mode,
            tortie_bgp_speaker::NextHopMode::Keep
        );
        assert_eq!(
            c("192.0.2.3").next_hop_mode,
            tortie_bgp_speaker::NextHopMode::Keep
        );
        let plain = c("192.0.2.4");
        assert_eq!(plain.next_hop_mode, tortie_bgp_speaker::NextHopMode::Auto);
        assert_eq!(plain.timers.keepalive, None);
        assert_eq!(plain.local_address, Some("10.0.1.11".parse().unwrap()));
        assert_eq!(plain.allowas_in, 0);
    }

    #[test]
    fn a_bgppeers_filters_reach_its_session_and_an_edit_changes_only_them() {
        let mut s = snap3();
        s.bgp_peers = vec![peer(
            "  peerIP: 192.0.2.1\n  asNumber: 65001\n  filters: [pools-only, missing]\n",
        )];
        let f: tortie_model::BgpFilterSpec = match tortie_model::parse_manifest(
            "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: pools-only\nspec:\n  exportV4:\n  - {action: Reject, matchOperator: Equal, cidr: 10.244.1.0/26}\n",
        )
        .unwrap()
        .remove(0)
        {
            tortie_model::Resource::BgpFilter(f) => f.spec,
            other => panic!("{other:?}"),
        };
        s.bgp_filters.insert("pools-only".into(), f.clone());
        let me = me("n1", "10.0.1.11");
        let d = desired(&s, &me);
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(d.peers[&addr].filters.export.v4.len(), 1);
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert!(d.problems[0].contains("\"missing\""), "{:?}", d.problems);
        // Mesh sessions have no filters.
        let mesh: IpAddr = "10.0.1.12".parse().unwrap();
        assert!(d.peers[&mesh].filters.is_empty());
        // Editing the filter: the same session, only its filters differ.
        let mut edited = f;
        edited.export_v4.clear();
        s.bgp_filters.insert("pools-only".into(), edited);
        let d2 = desired(&s, &me);
        let up = diff(&d.peers, &d2.peers).update;
        assert_eq!(up.len(), 1);
        assert!(d.peers[&addr].same_but_filters(&up[0]));
        assert!(up[0].filters.is_empty());
    }
}
