//! The WorkloadEndpoint the plugin records in the datastore for each pod
//! (only when the network configuration names a `datastore`).

use std::sync::Arc;

use tortie_datastore::typed::{self, TypedError};
use tortie_ipam_core::{DatastoreIpamStore, Ipam};
use tortie_model::profile::NAMESPACE_PROFILE_PREFIX;
use tortie_model::{Kind, ObjectMeta, Resource, WorkloadEndpoint, WorkloadEndpointSpec};

use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::CniError;
use crate::identity::{self, EndpointId};
use crate::naming::POD_GATEWAY_V4;
use crate::result::CniResult;

/// The node name: the config's `nodename`, else the host name.
pub fn node_name(conf: &NetConf) -> String {
    conf.nodename.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// The process's shared connection (see [`crate::shared_store`]).
fn open(url: &str) -> Result<Arc<Ipam<DatastoreIpamStore>>, CniError> {
    crate::shared_store::open(url)
}

/// The attachment's endpoint identity (see [`crate::identity`]).
pub fn endpoint_identity(conf: &NetConf, env: &CniEnv) -> Result<EndpointId, CniError> {
    identity::endpoint_id(&node_name(conf), &env.args, &env.container_id, &env.ifname)
}

/// The endpoint for one attachment.
fn build(
    conf: &NetConf,
    env: &CniEnv,
    result: &CniResult,
    host_veth: &str,
) -> Result<WorkloadEndpoint, CniError> {
    let node = node_name(conf);
    let id = endpoint_identity(conf, env)?;
    let mut labels = conf.labels.clone();
    labels.insert("projectcalico.org/namespace".into(), id.namespace.clone());
    labels.insert(
        "projectcalico.org/orchestrator".into(),
        id.orchestrator.into(),
    );
    // As Calico's CNI plugin: the namespace's profile, whose labels
    // (`pcns.*`) namespaceSelectors match and whose default rules allow
    // the pod's traffic when no policy applies. Endpoints without
    // Kubernetes arguments live in namespace `default` and get its profile.
    let profiles = vec![format!("{NAMESPACE_PROFILE_PREFIX}{}", id.namespace)];
    let mut metadata = ObjectMeta::named(id.name);
    metadata.namespace = Some(id.namespace);
    metadata.labels = labels;
    let has_v4 = result.ips.iter().any(|ip| ip.address.addr().is_ipv4());
    let mac = result
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_some())
        .map(|i| i.mac.clone())
        .unwrap_or_default();
    Ok(WorkloadEndpoint {
        metadata,
        spec: WorkloadEndpointSpec {
            orchestrator: id.orchestrator.into(),
            workload: id.workload,
            node,
            container_id: env.container_id.clone(),
            pod: id.pod,
            endpoint: env.ifname.clone(),
            ip_networks: result.ips.iter().map(|ip| ip.address).collect(),
            ipv4_gateway: has_v4.then_some(POD_GATEWAY_V4),
            interface_name: host_veth.to_string(),
            mac,
            profiles,
            ..WorkloadEndpointSpec::default()
        },
    })
}

/// What [`write`] replaced, so a failed ADD can put it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// There was no endpoint: undo deletes the one written.
    Absent,
    /// This endpoint was stored: undo writes it back.
    Stored(Box<WorkloadEndpoint>),
    /// The stored endpoint was already the one to write: nothing was written.
    Unchanged,
}

/// Writes (or replaces) the pod's WorkloadEndpoint when a datastore is
/// configured; returns what was there before (`None`: no datastore).
pub fn write(
    conf: &NetConf,
    env: &CniEnv,
    result: &CniResult,
    host_veth: &str,
) -> Result<Option<Previous>, CniError> {
    let Some(url) = &conf.datastore else {
        return Ok(None);
    };
    let wep = build(conf, env, result, host_veth)?;
    let namespace = wep.metadata.namespace.clone().unwrap_or_default();
    let previous = match get(url, &namespace, &wep.metadata.name)? {
        None => Previous::Absent,
        Some(old) if old.spec == wep.spec && old.metadata.labels == wep.metadata.labels => {
            return Ok(Some(Previous::Unchanged))
        }
        Some(old) => Previous::Stored(Box::new(old)),
    };
    put(url, wep)?;
    Ok(Some(previous))
}

/// The pod's stored endpoint as `(name, containerID)` (`None` without a
/// datastore or when there is none). A containerID other than this
/// invocation's means a newer sandbox of the pod owns the endpoint.
pub fn stored(conf: &NetConf, env: &CniEnv) -> Result<Option<(String, String)>, CniError> {
    let Some(url) = &conf.datastore else {
        return Ok(None);
    };
    // A node name no endpoint can carry: ADD never wrote one.
    let Ok(id) = endpoint_identity(conf, env) else {
        return Ok(None);
    };
    Ok(get(url, &id.namespace, &id.name)?.map(|w| (w.metadata.name, w.spec.container_id)))
}

/// Undoes [`write`]: deletes the endpoint it created or restores the one it replaced.
pub fn restore(conf: &NetConf, env: &CniEnv, previous: Previous) -> Result<(), CniError> {
    match (previous, &conf.datastore) {
        (Previous::Absent, _) => delete(conf, env),
        (Previous::Stored(mut old), Some(url)) => {
            old.metadata.resource_version = None;
            put(url, *old)
        }
        _ => Ok(()),
    }
}

fn get(url: &str, namespace: &str, name: &str) -> Result<Option<WorkloadEndpoint>, CniError> {
    let ipam = open(url)?;
    let store = ipam.store().blocking();
    match store.block_on(typed::get(
        store.store().as_ref(),
        Kind::WorkloadEndpoint,
        Some(namespace),
        name,
    )) {
        Ok(Resource::WorkloadEndpoint(w)) => Ok(Some(w)),
        Ok(_) | Err(TypedError::NotFound { .. }) => Ok(None),
        Err(e) => Err(CniError::Datastore(format!(
            "read WorkloadEndpoint {name}: {e}"
        ))),
    }
}

fn put(url: &str, wep: WorkloadEndpoint) -> Result<(), CniError> {
    let ipam = open(url)?;
    let store = ipam.store().blocking();
    let name = wep.metadata.name.clone();
    store
        .block_on(typed::apply(
            store.store().as_ref(),
            vec![Resource::WorkloadEndpoint(wep)],
        ))
        .map(drop)
        .map_err(|e| CniError::Datastore(format!("write WorkloadEndpoint {name}: {e}")))
}

/// Deletes the pod's WorkloadEndpoint; absent is fine. For a `cni`
/// attachment also the endpoint an older tortie wrote for it
/// (`<node>-k8s-<containerID>-<iface>` in `default`), if it names this
/// container.
pub fn delete(conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
    let Some(url) = &conf.datastore else {
        return Ok(());
    };
    // A node name no endpoint can carry: ADD never wrote one, DEL succeeds.
    let Ok(id) = endpoint_identity(conf, env) else {
        return Ok(());
    };
    delete_named(url, &id.namespace, &id.name)?;
    if id.orchestrator != identity::ORCHESTRATOR_CNI {
        return Ok(());
    }
    let legacy = identity::join_parts(&[
        &node_name(conf),
        identity::ORCHESTRATOR_K8S,
        &env.container_id,
        &env.ifname,
    ]);
    match get(url, identity::DEFAULT_NAMESPACE, &legacy)? {
        Some(w) if w.spec.container_id == env.container_id => {
            delete_named(url, identity::DEFAULT_NAMESPACE, &legacy)
        }
        _ => Ok(()),
    }
}

fn delete_named(url: &str, namespace: &str, name: &str) -> Result<(), CniError> {
    let ipam = open(url)?;
    let store = ipam.store().blocking();
    let s = store.store().as_ref();
    match store.block_on(typed::delete_one(
        s,
        Kind::WorkloadEndpoint,
        Some(namespace),
        name,
    )) {
        Ok(_) | Err(TypedError::NotFound { .. }) => Ok(()),
        Err(e) => Err(CniError::Datastore(format!(
            "delete WorkloadEndpoint {namespace}/{name}: {e}"
        ))),
    }
}

/// A stored endpoint of this node, as GC needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.containerID`.
    pub container_id: String,
    /// `spec.endpoint` (the pod's interface).
    pub ifname: String,
    /// `spec.interfaceName` (the host veth).
    pub host_veth: String,
}

/// The endpoints of this node (none without a datastore).
pub fn on_node(conf: &NetConf) -> Result<Vec<EndpointRef>, CniError> {
    let Some(url) = &conf.datastore else {
        return Ok(Vec::new());
    };
    let node = node_name(conf);
    let ipam = open(url)?;
    let store = ipam.store().blocking();
    let all = store
        .block_on(typed::list(
            store.store().as_ref(),
            Kind::WorkloadEndpoint,
            None,
        ))
        .map_err(|e| CniError::Datastore(format!("list WorkloadEndpoints: {e}")))?;
    Ok(all
        .into_iter()
        .filter_map(|r| match r {
            Resource::WorkloadEndpoint(w) if w.spec.node == node => Some(EndpointRef {
                namespace: w.metadata.namespace.clone().unwrap_or_default(),
                name: w.metadata.name,
                container_id: w.spec.container_id,
                ifname: w.spec.endpoint,
                host_veth: w.spec.interface_name,
            }),
            _ => None,
        })
        .collect())
}

/// Deletes one endpoint found by [`on_node`]; absent is fine.
pub fn delete_ref(conf: &NetConf, ep: &EndpointRef) -> Result<(), CniError> {
    let Some(url) = &conf.datastore else {
        return Ok(());
    };
    delete_named(url, &ep.namespace, &ep.name)
}

/// STATUS: the datastore, when configured, can be opened and read.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    let Some(url) = &conf.datastore else {
        return Ok(());
    };
    let ipam = open(url).map_err(|e| CniError::NotAvailable(e.to_string()))?;
    ipam.store()
        .blocking()
        .list("/calico/resources/v3/projectcalico.org/nodes/")
        .map(drop)
        .map_err(|e| CniError::NotAvailable(format!("datastore {url}: {e}")))
}
