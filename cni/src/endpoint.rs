//! The WorkloadEndpoint the plugin records in the datastore for each pod
//! (only when the network configuration names a `datastore`).

use std::sync::Arc;

use tortie_datastore::typed::{self, TypedError};
use tortie_ipam_core::{DatastoreIpamStore, Ipam};
use tortie_model::{Kind, ObjectMeta, Resource, WorkloadEndpoint, WorkloadEndpointSpec};

use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::CniError;
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

/// Calico's endpoint name: `<node>-k8s-<pod>-<iface>`, each part's `-` doubled.
pub fn endpoint_name(node: &str, pod: &str, ifname: &str) -> String {
    let esc = |s: &str| s.replace('-', "--");
    format!("{}-k8s-{}-{}", esc(node), esc(pod), esc(ifname))
}

/// The process's shared connection (see [`crate::shared_store`]).
fn open(url: &str) -> Result<Arc<Ipam<DatastoreIpamStore>>, CniError> {
    crate::shared_store::open(url)
}

/// Pod namespace and name, or the container ID when the runtime gave none.
fn pod_identity(env: &CniEnv) -> (String, String) {
    (
        env.args
            .pod_namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        env.args
            .pod_name
            .clone()
            .unwrap_or_else(|| env.container_id.clone()),
    )
}

/// The endpoint for one attachment.
fn build(conf: &NetConf, env: &CniEnv, result: &CniResult, host_veth: &str) -> WorkloadEndpoint {
    let node = node_name(conf);
    let (namespace, pod) = pod_identity(env);
    let mut labels = conf.labels.clone();
    labels.insert("projectcalico.org/namespace".into(), namespace.clone());
    labels.insert("projectcalico.org/orchestrator".into(), "k8s".into());
    let mut metadata = ObjectMeta::named(endpoint_name(&node, &pod, &env.ifname));
    metadata.namespace = Some(namespace);
    metadata.labels = labels;
    let has_v4 = result.ips.iter().any(|ip| ip.address.addr().is_ipv4());
    let mac = result
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_some())
        .map(|i| i.mac.clone())
        .unwrap_or_default();
    WorkloadEndpoint {
        metadata,
        spec: WorkloadEndpointSpec {
            orchestrator: "k8s".into(),
            node,
            container_id: env.container_id.clone(),
            pod,
            endpoint: env.ifname.clone(),
            ip_networks: result.ips.iter().map(|ip| ip.address).collect(),
            ipv4_gateway: has_v4.then_some(POD_GATEWAY_V4),
            interface_name: host_veth.to_string(),
            mac,
            ..WorkloadEndpointSpec::default()
        },
    }
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
    let wep = build(conf, env, result, host_veth);
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
    let (namespace, pod) = pod_identity(env);
    let name = endpoint_name(&node_name(conf), &pod, &env.ifname);
    Ok(get(url, &namespace, &name)?.map(|w| (w.metadata.name, w.spec.container_id)))
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

/// Deletes the pod's WorkloadEndpoint; absent is fine.
pub fn delete(conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
    let Some(url) = &conf.datastore else {
        return Ok(());
    };
    let (namespace, pod) = pod_identity(env);
    let name = endpoint_name(&node_name(conf), &pod, &env.ifname);
    delete_named(url, &namespace, &name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_double_dashes_like_calico() {
        assert_eq!(
            endpoint_name("node-1", "web-0", "eth0"),
            "node--1-k8s-web--0-eth0"
        );
    }
}
