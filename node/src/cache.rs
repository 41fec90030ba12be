//! The syncer's in-memory copy of the part of the datastore tortie-node
//! acts on, kept current by applying watch events one by one, and the
//! [`Snapshot`] built from it without reading the store again. Pure: no
//! I/O, the syncer feeds it lists and events.
//!
//! What it holds ([`Scope`]): every Node, BGPConfiguration, BGPPeer,
//! BGPFilter, IPPool and FelixConfiguration, every IPAM block and block affinity, and
//! this node's WorkloadEndpoints (through tortie's per-node index of
//! endpoints, `/index/v1/workloadendpoints/<node>/`, not Calico's
//! namespace-first keys): a node's felix programs its own workloads and
//! routes other nodes' blocks.
//!
//! When the node enforces network policy ([`Scope::with_policy`]), also
//! every NetworkPolicy, GlobalNetworkPolicy, NetworkSet, GlobalNetworkSet
//! and Profile, and every WorkloadEndpoint of the cluster, kept as the
//! little policy needs of it ([`slim_endpoint`]: labels, addresses,
//! profiles, named ports): a rule's source or destination selector can
//! match a pod anywhere. A BGP-only agent (`--dataplane none`) reads none
//! of these.

use std::collections::BTreeMap;

use ipnet::IpNet;
use tortie_datastore::keys;
use tortie_datastore::typed::{self, key_plural};
use tortie_datastore::{KeyValue, Revision, WatchEvent};
use tortie_ipam_core::store::keys::parse_key;
use tortie_ipam_core::store::IpamKey;
use tortie_model::ipam::{AffinityState, AllocationBlock, BlockAffinity};
use tortie_model::{
    BgpConfiguration, BgpFilter, BgpPeer, FelixConfiguration, GlobalNetworkPolicy,
    GlobalNetworkSet, IpPool, Kind, NetworkPolicy, NetworkSet, Node, Profile, Resource,
    WorkloadEndpoint,
};

use crate::snapshot::Snapshot;

/// The kinds of entries, in [`Scope::prefixes`] order (metric labels).
pub const SECTIONS: [&str; 15] = [
    "node",
    "bgpconfiguration",
    "bgppeer",
    "ippool",
    "workloadendpoint",
    "block",
    "affinity",
    "felixconfiguration",
    "bgpfilter",
    "networkpolicy",
    "globalnetworkpolicy",
    "networkset",
    "globalnetworkset",
    "profile",
    "clusterworkloadendpoint",
];

/// The section of every WorkloadEndpoint of the cluster (policy only).
const CLUSTER_ENDPOINTS: usize = 14;

/// The sections holding IPAM entries (the others hold resources).
const IPAM_SECTIONS: [usize; 2] = [5, 6];

/// The key prefixes one node's agent reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    prefixes: Vec<String>,
}

impl Scope {
    /// What node `me` reads to route (no network policy).
    pub fn for_node(me: &str) -> Self {
        Self::new(me, false)
    }

    /// What node `me` reads to route and enforce network policy.
    pub fn with_policy(me: &str) -> Self {
        Self::new(me, true)
    }

    fn new(me: &str, policy: bool) -> Self {
        let res = |k| keys::resource_prefix(key_plural(k));
        let mut prefixes = vec![
            res(Kind::Node),
            res(Kind::BgpConfiguration),
            res(Kind::BgpPeer),
            res(Kind::IpPool),
            keys::workload_index_prefix(me),
            format!("{}assignment/", keys::IPAM),
            format!("{}host/", keys::IPAM),
            res(Kind::FelixConfiguration),
            res(Kind::BgpFilter),
        ];
        if policy {
            prefixes.extend([
                res(Kind::NetworkPolicy),
                res(Kind::GlobalNetworkPolicy),
                res(Kind::NetworkSet),
                res(Kind::GlobalNetworkSet),
                res(Kind::Profile),
                res(Kind::WorkloadEndpoint),
            ]);
        }
        Self { prefixes }
    }

    /// Whether policy resources are in scope.
    pub fn policy(&self) -> bool {
        self.prefixes.len() > CLUSTER_ENDPOINTS
    }

    /// The prefixes, one per section of [`SECTIONS`] (the first nine
    /// without policy).
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// The section (index into [`SECTIONS`]) of `key`; `None` when out of scope.
    pub fn section(&self, key: &str) -> Option<usize> {
        self.prefixes.iter().position(|p| key.starts_with(p))
    }
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Node(Node),
    BgpConfig(Box<BgpConfiguration>),
    BgpPeer(BgpPeer),
    Pool(IpPool),
    Workload(Box<WorkloadEndpoint>),
    Block(Box<AllocationBlock>),
    Affinity(String, IpNet, BlockAffinity),
    FelixConfig(Box<FelixConfiguration>),
    BgpFilter(Box<BgpFilter>),
    NetworkPolicy(Box<NetworkPolicy>),
    GlobalNetworkPolicy(Box<GlobalNetworkPolicy>),
    NetworkSet(Box<NetworkSet>),
    GlobalNetworkSet(Box<GlobalNetworkSet>),
    Profile(Box<Profile>),
    /// Any node's endpoint, slimmed for policy.
    ClusterEndpoint(Box<WorkloadEndpoint>),
}

/// An entry with the revision of its last change.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    revision: Revision,
    item: Item,
}

/// Why a stored value was not taken into the cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct DecodeError {
    /// The store key.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// The cache: entries by store key, and per section the revision it was
/// last listed at (older events are already in the list).
#[derive(Debug, Clone)]
pub struct Cache {
    scope: Scope,
    entries: BTreeMap<String, Entry>,
    listed_at: Vec<Revision>,
    /// The highest revision of an event applied.
    seen: Revision,
}

fn bad(key: &str, message: impl ToString) -> DecodeError {
    DecodeError {
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// What policy needs of another node's endpoint: its name, namespace,
/// labels, node, interface, addresses, profiles and named ports; the rest
/// (container id, MAC, gateways, NAT) is dropped to keep the cache small.
pub fn slim_endpoint(w: WorkloadEndpoint) -> WorkloadEndpoint {
    let mut meta = tortie_model::ObjectMeta::named(w.metadata.name);
    meta.namespace = w.metadata.namespace;
    meta.labels = w.metadata.labels;
    WorkloadEndpoint {
        metadata: meta,
        spec: tortie_model::WorkloadEndpointSpec {
            orchestrator: w.spec.orchestrator,
            node: w.spec.node,
            interface_name: w.spec.interface_name,
            ip_networks: w.spec.ip_networks,
            profiles: w.spec.profiles,
            ports: w.spec.ports,
            ..Default::default()
        },
    }
}

fn decode_resource(section: usize, kv: &KeyValue) -> Result<Item, DecodeError> {
    let r = typed::decode(kv).map_err(|e| bad(&kv.key, e))?;
    Ok(match r {
        Resource::WorkloadEndpoint(w) if section == CLUSTER_ENDPOINTS => {
            Item::ClusterEndpoint(Box::new(slim_endpoint(w)))
        }
        Resource::NetworkPolicy(p) => Item::NetworkPolicy(Box::new(p)),
        Resource::GlobalNetworkPolicy(p) => Item::GlobalNetworkPolicy(Box::new(p)),
        Resource::NetworkSet(n) => Item::NetworkSet(Box::new(n)),
        Resource::GlobalNetworkSet(n) => Item::GlobalNetworkSet(Box::new(n)),
        Resource::Profile(p) => Item::Profile(Box::new(p)),
        Resource::Node(n) => Item::Node(n),
        Resource::BgpConfiguration(c) => Item::BgpConfig(Box::new(c)),
        Resource::BgpPeer(p) => Item::BgpPeer(p),
        Resource::IpPool(p) => Item::Pool(p),
        Resource::WorkloadEndpoint(w) => Item::Workload(Box::new(w)),
        Resource::FelixConfiguration(f) => Item::FelixConfig(Box::new(f)),
        Resource::BgpFilter(f) => Item::BgpFilter(Box::new(f)),
    })
}

fn decode_ipam(kv: &KeyValue) -> Result<Item, DecodeError> {
    let json = |e: serde_json::Error| bad(&kv.key, e);
    match parse_key("", &kv.key) {
        Some(IpamKey::Block(_)) => Ok(Item::Block(Box::new(
            serde_json::from_slice(&kv.value).map_err(json)?,
        ))),
        Some(IpamKey::Affinity { node, cidr }) => Ok(Item::Affinity(
            node,
            cidr,
            serde_json::from_slice(&kv.value).map_err(json)?,
        )),
        _ => Err(bad(&kv.key, "not an IPAM block or affinity key")),
    }
}

impl Cache {
    /// An empty cache for `scope`.
    pub fn new(scope: Scope) -> Self {
        let n = scope.prefixes().len();
        Self {
            scope,
            entries: BTreeMap::new(),
            listed_at: vec![0; n],
            seen: 0,
        }
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn decode(&self, section: usize, kv: &KeyValue) -> Result<Item, DecodeError> {
        if IPAM_SECTIONS.contains(&section) {
            decode_ipam(kv)
        } else {
            decode_resource(section, kv)
        }
    }

    /// Replaces section `section` with a list of it taken at `revision`;
    /// returns the values that did not decode (left out).
    pub fn load(
        &mut self,
        section: usize,
        items: &[KeyValue],
        revision: Revision,
    ) -> Vec<DecodeError> {
        let prefix = self.scope.prefixes[section].clone();
        self.entries.retain(|k, _| !k.starts_with(&prefix));
        self.listed_at[section] = revision;
        let mut errors = Vec::new();
        for kv in items.iter().filter(|kv| kv.key.starts_with(&prefix)) {
            match self.decode(section, kv) {
                Ok(item) => {
                    let e = Entry {
                        revision: kv.revision,
                        item,
                    };
                    self.entries.insert(kv.key.clone(), e);
                }
                Err(err) => errors.push(err),
            }
        }
        errors
    }

    /// Applies one watch event. `Ok(true)` when the cache changed; events
    /// out of scope, or already in the last list, change nothing. A value
    /// that does not decode removes the key's entry and is reported.
    pub fn apply(&mut self, ev: &WatchEvent) -> Result<bool, DecodeError> {
        let Some(section) = self.scope.section(ev.key()) else {
            return Ok(false);
        };
        if ev.revision() <= self.listed_at[section] {
            return Ok(false);
        }
        self.seen = self.seen.max(ev.revision());
        match ev {
            WatchEvent::Delete { key, .. } => Ok(self.entries.remove(key).is_some()),
            WatchEvent::Put(kv) => match self.decode(section, kv) {
                Ok(item) => {
                    let changed = self.entries.get(&kv.key).map(|e| &e.item) != Some(&item);
                    let entry = Entry {
                        revision: kv.revision,
                        item,
                    };
                    self.entries.insert(kv.key.clone(), entry);
                    Ok(changed)
                }
                Err(err) => {
                    self.entries.remove(&kv.key);
                    Err(err)
                }
            },
        }
    }

    /// The revision of the entry at `key` (0: none).
    pub fn revision_of(&self, key: &str) -> Revision {
        self.entries.get(key).map_or(0, |e| e.revision)
    }

    /// The highest revision of any list or applied event (how current the
    /// cache is).
    pub fn revision(&self) -> Revision {
        let listed = self.listed_at.iter().copied().max().unwrap_or(0);
        listed.max(self.seen)
    }

    /// Entries per section, in [`SECTIONS`] order.
    pub fn counts(&self) -> [usize; SECTIONS.len()] {
        let mut out = [0; SECTIONS.len()];
        for k in self.entries.keys() {
            if let Some(s) = self.scope.section(k) {
                out[s] += 1;
            }
        }
        out
    }

    /// Every entry as the agent's snapshot: resources by key (name) order,
    /// blocks by CIDR, confirmed live affinities by (node, block).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for e in self.entries.values() {
            match &e.item {
                Item::Node(n) => s.nodes.push(n.clone()),
                Item::BgpConfig(c) if c.metadata.name == "default" => {
                    s.bgp_config = Some(c.spec.clone());
                }
                Item::BgpConfig(c) => {
                    if let Some(node) = c.metadata.name.strip_prefix("node.") {
                        s.bgp_node_configs.insert(node.to_string(), c.spec.clone());
                    }
                }
                Item::BgpPeer(p) => s.bgp_peers.push(p.clone()),
                Item::Pool(p) => s.pools.push(p.clone()),
                Item::Workload(w) => s.workloads.push((**w).clone()),
                Item::Block(b) => s.blocks.push((**b).clone()),
                Item::Affinity(node, cidr, a) => {
                    if a.state == AffinityState::Confirmed && !a.deleted {
                        s.affinities.push((node.clone(), *cidr));
                    }
                }
                Item::FelixConfig(f) => s.felix_configs.push((**f).clone()),
                Item::BgpFilter(f) => {
                    s.bgp_filters
                        .insert(f.metadata.name.clone(), f.spec.clone());
                }
                Item::NetworkPolicy(p) => s.policy.input.network_policies.push((**p).clone()),
                Item::GlobalNetworkPolicy(p) => {
                    s.policy.input.global_network_policies.push((**p).clone())
                }
                Item::NetworkSet(n) => s.policy.input.network_sets.push((**n).clone()),
                Item::GlobalNetworkSet(n) => s.policy.input.global_network_sets.push((**n).clone()),
                Item::Profile(p) => s.policy.input.profiles.push((**p).clone()),
                Item::ClusterEndpoint(w) => s.policy.input.endpoints.push((**w).clone()),
            }
        }
        s.blocks.sort_by_key(|b| b.cidr);
        s.affinities.sort();
        s.policy.enabled = self.scope.policy();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, revision: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            revision,
            create_revision: revision,
        }
    }

    fn node_kv(name: &str, ip: &str, rev: Revision) -> KeyValue {
        let v = format!(
            r#"{{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{{"name":"{name}"}},"spec":{{"bgp":{{"ipv4Address":"{ip}"}}}}}}"#
        );
        kv(&typed::key_of(Kind::Node, None, name), &v, rev)
    }

    fn wep_kv(key: &str, node: &str, rev: Revision) -> KeyValue {
        let v = format!(
            r#"{{"apiVersion":"projectcalico.org/v3","kind":"WorkloadEndpoint","metadata":{{"name":"w","namespace":"ns"}},"spec":{{"node":"{node}","interfaceName":"cali1","ipNetworks":["10.244.0.1/32"]}}}}"#
        );
        kv(key, &v, rev)
    }

    #[test]
    fn the_scope_is_this_nodes_endpoints_and_the_clusters_routing_resources() {
        let s = Scope::for_node("n1");
        assert_eq!(s.prefixes().len(), CLUSTER_ENDPOINTS - 5);
        assert!(!s.policy());
        assert_eq!(
            s.section("/resources/v3/projectcalico.org/nodes/n2"),
            Some(0)
        );
        assert_eq!(s.section("/index/v1/workloadendpoints/n1/ns/w"), Some(4));
        // Other nodes' endpoints, Calico's own endpoint keys and handles are out.
        assert_eq!(s.section("/index/v1/workloadendpoints/n10/ns/w"), None);
        assert_eq!(
            s.section("/resources/v3/projectcalico.org/workloadendpoints/ns/w"),
            None
        );
        assert_eq!(s.section("/ipam/v2/handle/h1"), None);
        assert_eq!(
            s.section("/ipam/v2/host/n2/ipv4/block/10.0.0.0-26"),
            Some(6)
        );
    }

    #[test]
    fn events_update_the_snapshot_one_by_one() {
        let mut c = Cache::new(Scope::for_node("n1"));
        assert!(c.load(0, &[node_kv("n1", "10.0.0.1/24", 5)], 7).is_empty());
        assert_eq!(c.snapshot().nodes.len(), 1);
        // An event already in the list changes nothing.
        let old = WatchEvent::Put(node_kv("n2", "10.0.0.2/24", 6));
        assert_eq!(c.apply(&old), Ok(false));
        let n2 = WatchEvent::Put(node_kv("n2", "10.0.0.2/24", 8));
        assert_eq!(c.apply(&n2), Ok(true));
        // The same value rewritten is a new resourceVersion (which our own
        // Node writes compare-and-swap on).
        let again = WatchEvent::Put(node_kv("n2", "10.0.0.2/24", 9));
        assert_eq!(c.apply(&again), Ok(true));
        assert_eq!(c.apply(&again), Ok(false));
        assert_eq!(c.revision_of("/resources/v3/projectcalico.org/nodes/n2"), 9);
        let names: Vec<_> = c
            .snapshot()
            .nodes
            .iter()
            .map(|n| n.metadata.name.clone())
            .collect();
        assert_eq!(names, ["n1", "n2"]);
        let del = WatchEvent::Delete {
            key: "/resources/v3/projectcalico.org/nodes/n1".into(),
            revision: 10,
        };
        assert_eq!(c.apply(&del), Ok(true));
        assert_eq!(c.snapshot().nodes.len(), 1);
        assert_eq!(c.revision(), 10);
        assert_eq!(c.counts()[0], 1);
        // Out of scope: ignored.
        let h = WatchEvent::Put(kv("/ipam/v2/handle/h", "{}", 11));
        assert_eq!(c.apply(&h), Ok(false));
    }

    #[test]
    fn ipam_entries_and_own_endpoints_reach_the_snapshot() {
        let mut c = Cache::new(Scope::for_node("n1"));
        let aff = kv(
            "/ipam/v2/host/n2/ipv4/block/10.244.1.0-26",
            r#"{"state":"confirmed","deleted":false}"#,
            3,
        );
        let pending = kv(
            "/ipam/v2/host/n3/ipv4/block/10.244.2.0-26",
            r#"{"state":"pending","deleted":false}"#,
            3,
        );
        assert!(c.load(6, &[aff, pending], 3).is_empty());
        let b = AllocationBlock::new(
            "10.244.1.0/26".parse().unwrap(),
            Some("host:n2".into()),
            false,
        );
        let bkv = kv(
            "/ipam/v2/assignment/ipv4/block/10.244.1.0-26",
            &serde_json::to_string(&b).unwrap(),
            4,
        );
        assert_eq!(c.apply(&WatchEvent::Put(bkv)), Ok(true));
        let wep = wep_kv("/index/v1/workloadendpoints/n1/ns/w", "n1", 5);
        assert_eq!(c.apply(&WatchEvent::Put(wep)), Ok(true));
        let s = c.snapshot();
        assert_eq!(
            s.affinities,
            [("n2".to_string(), "10.244.1.0/26".parse().unwrap())]
        );
        assert_eq!(s.blocks.len(), 1);
        assert_eq!(s.workloads.len(), 1);
        assert_eq!(c.counts(), [0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn bgp_filters_are_followed_by_name_also_without_policy() {
        let mut c = Cache::new(Scope::for_node("n1"));
        let key = "/resources/v3/projectcalico.org/bgpfilters/no-bogons";
        let v = r#"{"apiVersion":"projectcalico.org/v3","kind":"BGPFilter","metadata":{"name":"no-bogons"},"spec":{"importV4":[{"action":"Reject","matchOperator":"In","cidr":"192.0.2.0/24"}]}}"#;
        assert_eq!(c.apply(&WatchEvent::Put(kv(key, v, 3))), Ok(true));
        let snap = c.snapshot();
        assert_eq!(snap.bgp_filters["no-bogons"].import_v4.len(), 1);
        let del = WatchEvent::Delete {
            key: key.into(),
            revision: 4,
        };
        assert_eq!(c.apply(&del), Ok(true));
        assert!(c.snapshot().bgp_filters.is_empty());
    }

    #[test]
    fn with_policy_every_endpoint_and_the_policy_kinds_are_read_slimmed() {
        let s = Scope::with_policy("n1");
        assert_eq!(s.prefixes().len(), SECTIONS.len());
        assert!(s.policy());
        let calico_key = "/resources/v3/projectcalico.org/workloadendpoints/ns/w";
        assert_eq!(s.section(calico_key), Some(CLUSTER_ENDPOINTS));
        assert_eq!(s.section("/index/v1/workloadendpoints/n1/ns/w"), Some(4));
        assert_eq!(
            s.section("/resources/v3/projectcalico.org/globalnetworkpolicies/p"),
            Some(10)
        );
        let mut c = Cache::new(s);
        // Another node's endpoint, with a MAC and a container id policy does not read.
        let v = r#"{"apiVersion":"projectcalico.org/v3","kind":"WorkloadEndpoint","metadata":{"name":"w","namespace":"ns","labels":{"app":"db"}},"spec":{"node":"n2","interfaceName":"cali1","ipNetworks":["10.244.1.1/32"],"mac":"aa:bb:cc:dd:ee:ff","containerID":"abc","profiles":["kns.ns"]}}"#;
        assert_eq!(c.apply(&WatchEvent::Put(kv(calico_key, v, 3))), Ok(true));
        let gnp = r#"{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkPolicy","metadata":{"name":"p"},"spec":{"selector":"all()","ingress":[{"action":"Allow"}]}}"#;
        let gkey = "/resources/v3/projectcalico.org/globalnetworkpolicies/p";
        assert_eq!(c.apply(&WatchEvent::Put(kv(gkey, gnp, 4))), Ok(true));
        let snap = c.snapshot();
        assert!(snap.policy.enabled);
        assert!(snap.workloads.is_empty(), "not ours: no route for it");
        let w = &snap.policy.input.endpoints[0];
        assert_eq!(w.metadata.labels.get("app").map(String::as_str), Some("db"));
        assert_eq!(w.spec.profiles, ["kns.ns"]);
        assert_eq!(w.spec.ip_networks.len(), 1);
        assert!(w.spec.mac.is_empty() && w.spec.container_id.is_empty());
        assert_eq!(snap.policy.input.global_network_policies.len(), 1);
        // Without policy none of it is in scope.
        let mut c = Cache::new(Scope::for_node("n1"));
        assert_eq!(c.apply(&WatchEvent::Put(kv(gkey, gnp, 4))), Ok(false));
        assert!(!c.snapshot().policy.enabled);
    }

    #[test]
    fn a_value_that_does_not_decode_is_reported_and_dropped() {
        let mut c = Cache::new(Scope::for_node("n1"));
        assert_eq!(
            c.apply(&WatchEvent::Put(node_kv("n2", "10.0.0.2/24", 2))),
            Ok(true)
        );
        let broken = kv("/resources/v3/projectcalico.org/nodes/n2", "{not json", 3);
        let err = c.apply(&WatchEvent::Put(broken)).unwrap_err();
        assert_eq!(err.key, "/resources/v3/projectcalico.org/nodes/n2");
        assert!(c.snapshot().nodes.is_empty());
        let errs = c.load(5, &[kv("/ipam/v2/assignment/ipv4/block/x", "[]", 4)], 4);
        assert_eq!(errs.len(), 1);
    }
}
