//! What policy sees of the cluster: every labelled entity a rule selector
//! can match (workload endpoints and network sets, with the labels they
//! inherit from their profiles), this node's endpoints with their
//! interfaces and profiles, and the profiles themselves (with the implicit
//! profile of a namespace that was never applied).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use tortie_model::k8s::namespace_profile;
use tortie_model::profile::NAMESPACE_PROFILE_PREFIX;
use tortie_model::workload_endpoint::{
    LABEL_NAMESPACE, LABEL_ORCHESTRATOR, NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX,
};
use tortie_model::{Profile, WorkloadEndpoint};

use super::{PolicyInput, PolicyProblem};

/// A named port of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedPort {
    pub(crate) name: String,
    pub(crate) proto: u8,
    pub(crate) port: u16,
}

/// Something a rule selector can match: an endpoint or a network set.
#[derive(Debug, Clone)]
pub(crate) struct Entity {
    /// Effective labels (own, then inherited from profiles).
    pub(crate) labels: BTreeMap<String, String>,
    /// Its addresses or networks.
    pub(crate) nets: Vec<IpNet>,
    /// Named ports (endpoints only).
    pub(crate) ports: Vec<NamedPort>,
}

/// An endpoint on this node.
#[derive(Debug, Clone)]
pub(crate) struct LocalEndpoint {
    /// `namespace/name`, for problems.
    pub(crate) key: String,
    /// Host-side interface.
    pub(crate) interface: String,
    /// Effective labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// Profiles, in order.
    pub(crate) profiles: Vec<String>,
}

/// The cluster as policy sees it.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) entities: Vec<Entity>,
    pub(crate) locals: Vec<LocalEndpoint>,
    pub(crate) profiles: BTreeMap<String, Profile>,
    pub(crate) problems: Vec<PolicyProblem>,
}

/// True for an interface name that is safe to write into nft syntax.
pub(crate) fn is_safe_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl View {
    /// Builds the view of `input` for node `input.node_name`.
    pub(crate) fn build(input: &PolicyInput) -> View {
        let mut v = View {
            profiles: input
                .profiles
                .iter()
                .map(|p| (p.metadata.name.clone(), p.clone()))
                .collect(),
            ..View::default()
        };
        v.add_implicit_namespace_profiles(input);
        for w in &input.endpoints {
            v.add_endpoint(input, w);
        }
        for s in &input.network_sets {
            let mut labels = own_labels(&s.metadata.labels);
            labels.insert(LABEL_NAMESPACE.into(), s.namespace().into());
            let profile = format!("{NAMESPACE_PROFILE_PREFIX}{}", s.namespace());
            v.inherit(&mut labels, std::slice::from_ref(&profile));
            v.push_set(labels, &s.spec.nets);
        }
        for s in &input.global_network_sets {
            v.push_set(own_labels(&s.metadata.labels), &s.spec.nets);
        }
        v
    }

    /// A namespace that has endpoints or sets (or whose `kns.<ns>` profile
    /// an endpoint names) but no such profile behaves as a Kubernetes
    /// namespace without labels: every pod's namespace exists in
    /// Kubernetes, and tortie has no API server that would create it.
    fn add_implicit_namespace_profiles(&mut self, input: &PolicyInput) {
        let named = input
            .endpoints
            .iter()
            .flat_map(|w| &w.spec.profiles)
            .filter_map(|p| p.strip_prefix(NAMESPACE_PROFILE_PREFIX));
        let namespaces: BTreeSet<&str> = input
            .endpoints
            .iter()
            .map(WorkloadEndpoint::namespace)
            .chain(input.network_sets.iter().map(|s| s.namespace()))
            .chain(named)
            .collect();
        for ns in namespaces {
            let name = format!("{NAMESPACE_PROFILE_PREFIX}{ns}");
            self.profiles
                .entry(name)
                .or_insert_with(|| namespace_profile(ns, &BTreeMap::new()));
        }
    }

    /// Adds the labels of `profiles` the entity does not have itself
    /// (the first profile to give a label wins).
    fn inherit(&self, labels: &mut BTreeMap<String, String>, profiles: &[String]) {
        for name in profiles {
            if let Some(p) = self.profiles.get(name) {
                for (k, val) in &p.spec.labels_to_apply {
                    labels.entry(k.clone()).or_insert_with(|| val.clone());
                }
            }
        }
    }

    fn push_set(&mut self, labels: BTreeMap<String, String>, nets: &[IpNet]) {
        self.entities.push(Entity {
            labels,
            nets: nets.iter().map(IpNet::trunc).collect(),
            ports: Vec::new(),
        });
    }

    fn add_endpoint(&mut self, input: &PolicyInput, w: &WorkloadEndpoint) {
        let ns = w.namespace();
        let key = format!("{ns}/{}", w.metadata.name);
        if w.spec.ip_networks.is_empty() {
            // As Calico: no addresses, no rules (its traffic is dropped).
            self.problems.push(PolicyProblem::NoAddresses(key));
            return;
        }
        let mut labels = own_labels(&w.metadata.labels);
        labels.insert(LABEL_NAMESPACE.into(), ns.into());
        let orchestrator = if w.spec.orchestrator.is_empty() {
            "k8s"
        } else {
            &w.spec.orchestrator
        };
        labels.insert(LABEL_ORCHESTRATOR.into(), orchestrator.into());
        let profiles = effective_profiles(w, orchestrator);
        self.inherit(&mut labels, &profiles);
        let ports = w
            .spec
            .ports
            .iter()
            .filter(|p| !p.name.is_empty())
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.clone(),
                    proto: p.protocol.number()?,
                    port: p.port,
                })
            })
            .collect();
        let local = w.spec.node == input.node_name && !w.spec.interface_name.is_empty();
        if local {
            self.add_local(key, w, labels.clone(), profiles);
        }
        self.entities.push(Entity {
            labels,
            nets: w.spec.ip_networks.clone(),
            ports,
        });
    }

    fn add_local(
        &mut self,
        key: String,
        w: &WorkloadEndpoint,
        labels: BTreeMap<String, String>,
        profiles: Vec<String>,
    ) {
        let iface = &w.spec.interface_name;
        if !is_safe_interface(iface) {
            self.problems.push(PolicyProblem::BadInterface {
                endpoint: key,
                interface: iface.clone(),
            });
            return;
        }
        if let Some(other) = self.locals.iter().find(|l| &l.interface == iface) {
            self.problems.push(PolicyProblem::DuplicateInterface {
                endpoint: key,
                other: other.key.clone(),
                interface: iface.clone(),
            });
            return;
        }
        self.locals.push(LocalEndpoint {
            key,
            interface: iface.clone(),
            labels,
            profiles,
        });
    }
}

/// An entity's own labels without the reserved inherited prefixes (which
/// only profiles may give, so that nothing can claim another namespace's
/// labels).
fn own_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| {
            !k.starts_with(NAMESPACE_LABEL_PREFIX) && !k.starts_with(SERVICE_ACCOUNT_LABEL_PREFIX)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The endpoint's profiles; a Kubernetes endpoint without any gets its
/// namespace's profile, as every pod has in Calico's Kubernetes datastore.
fn effective_profiles(w: &WorkloadEndpoint, orchestrator: &str) -> Vec<String> {
    if w.spec.profiles.is_empty() && orchestrator == "k8s" {
        vec![format!("{NAMESPACE_PROFILE_PREFIX}{}", w.namespace())]
    } else {
        w.spec.profiles.clone()
    }
}
