//! The typed layer over both backends: validation before writing, keys in
//! Calico's layout, resourceVersion = revision, all-or-none multi-writes.

use std::sync::Arc;

use tortie_datastore::typed::{self, TypedError};
use tortie_datastore::{open, OpenOptions, Store};
use tortie_model::{parse_manifest, Kind, Resource};
use tortie_testkit::etcd::Etcd;

struct Fixture {
    store: Arc<dyn Store>,
    _keep: (tempfile::TempDir, Option<Etcd>),
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = open(&url, &OpenOptions::default()).await.unwrap();
    Fixture {
        store,
        _keep: (dir, None),
    }
}

async fn etcd() -> Fixture {
    let etcd = Etcd::start().expect("start etcd");
    let store = open(&etcd.url(), &OpenOptions::default()).await.unwrap();
    Fixture {
        store,
        _keep: (tempfile::tempdir().unwrap(), Some(etcd)),
    }
}

fn manifest(text: &str) -> Vec<Resource> {
    parse_manifest(text).unwrap()
}

const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p1}\nspec: {cidr: 10.244.0.0/16}\n";
const WEPS: &str = "\
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node1-k8s-a-eth0, namespace: ns1}
spec: {node: node1, orchestrator: k8s, pod: a, endpoint: eth0, interfaceName: cali0000000000a, ipNetworks: [10.244.0.1/32]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node1-k8s-b-eth0, namespace: ns2}
spec: {node: node1, orchestrator: k8s, pod: b, endpoint: eth0, interfaceName: cali0000000000b, ipNetworks: [10.244.0.2/32]}
";

mod cases {
    use super::*;

    pub async fn resources_are_stored_as_json_at_calicos_keys(fx: &Fixture) {
        let created = typed::create(fx.store.as_ref(), manifest(POOL))
            .await
            .unwrap();
        let kv = fx
            .store
            .get("/resources/v3/projectcalico.org/ippools/p1")
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(v["kind"], "IPPool");
        assert!(
            v["metadata"].get("resourceVersion").is_none(),
            "revision is not stored: {v}"
        );
        assert!(v["metadata"]["uid"].is_string());
        assert_eq!(
            created[0].metadata().resource_version,
            Some(kv.revision.to_string())
        );
        let got = typed::get(fx.store.as_ref(), Kind::IpPool, None, "p1")
            .await
            .unwrap();
        assert_eq!(
            got.metadata().resource_version,
            Some(kv.revision.to_string())
        );
    }

    pub async fn invalid_resources_are_rejected_before_anything_is_written(fx: &Fixture) {
        let mut rs = manifest(WEPS);
        let mut pool = manifest(POOL).remove(0);
        if let Resource::IpPool(p) = &mut pool {
            p.spec.block_size = Some(40);
        }
        rs.push(pool);
        match typed::apply(fx.store.as_ref(), rs).await {
            Err(TypedError::Invalid(errors)) => {
                assert!(errors[0].path.contains("blockSize"), "{errors:?}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(typed::list(fx.store.as_ref(), Kind::WorkloadEndpoint, None)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn apply_with_one_stale_resource_version_writes_nothing(fx: &Fixture) {
        let s = fx.store.as_ref();
        let first = typed::create(s, manifest(POOL)).await.unwrap().remove(0);
        typed::apply(s, manifest(POOL)).await.unwrap();
        let mut rs = manifest(WEPS);
        rs.push(first);
        assert!(matches!(
            typed::apply(s, rs).await,
            Err(TypedError::Conflict { .. })
        ));
        assert!(typed::list(s, Kind::WorkloadEndpoint, None)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn replace_keeps_identity_and_delete_needs_the_current_version(fx: &Fixture) {
        let s = fx.store.as_ref();
        let created = typed::create(s, manifest(POOL)).await.unwrap().remove(0);
        let replaced = typed::replace(s, manifest(POOL)).await.unwrap().remove(0);
        assert_eq!(created.metadata().uid, replaced.metadata().uid);
        assert_eq!(
            created.metadata().creation_timestamp,
            replaced.metadata().creation_timestamp
        );
        assert!(matches!(
            typed::delete(s, vec![created]).await,
            Err(TypedError::Conflict { .. })
        ));
        typed::delete(s, vec![replaced]).await.unwrap();
        assert!(matches!(
            typed::get(s, Kind::IpPool, None, "p1").await,
            Err(TypedError::NotFound { .. })
        ));
    }

    pub async fn namespaced_lists_filter_by_namespace(fx: &Fixture) {
        let s = fx.store.as_ref();
        typed::create(s, manifest(WEPS)).await.unwrap();
        let all = typed::list(s, Kind::WorkloadEndpoint, None).await.unwrap();
        assert_eq!(all.len(), 2);
        let ns1 = typed::list(s, Kind::WorkloadEndpoint, Some("ns1"))
            .await
            .unwrap();
        assert_eq!(
            ns1.iter().map(|r| r.name()).collect::<Vec<_>>(),
            ["node1-k8s-a-eth0"]
        );
        let one = typed::get(s, Kind::WorkloadEndpoint, Some("ns2"), "node1-k8s-b-eth0").await;
        assert!(one.is_ok(), "{one:?}");
    }

    /// The keys under a node's WorkloadEndpoint index, each checked to hold
    /// the endpoint's own stored value.
    async fn indexed(s: &dyn Store, node: &str) -> Vec<String> {
        let l = s
            .list(&tortie_datastore::keys::workload_index_prefix(node))
            .await
            .unwrap();
        let mut out = Vec::new();
        for kv in l.items {
            let r = typed::decode(&kv).unwrap();
            let stored = s
                .get(&typed::key_of_resource(&r))
                .await
                .unwrap()
                .expect("an index entry without its endpoint");
            assert_eq!(stored.value, kv.value, "{}", kv.key);
            out.push(kv.key);
        }
        out
    }

    pub async fn every_write_keeps_the_node_index_of_endpoints(fx: &Fixture) {
        let s = fx.store.as_ref();
        typed::create(s, manifest(WEPS)).await.unwrap();
        let both = [
            "/index/v1/workloadendpoints/node1/ns1/node1-k8s-a-eth0",
            "/index/v1/workloadendpoints/node1/ns2/node1-k8s-b-eth0",
        ];
        assert_eq!(indexed(s, "node1").await, both);
        // apply of a changed endpoint rewrites the copy.
        let changed = WEPS.replace("10.244.0.2/32", "10.244.0.9/32");
        typed::apply(s, manifest(&changed)).await.unwrap();
        assert_eq!(indexed(s, "node1").await, both);
        // Moving an endpoint to another node moves its entry.
        let moved = manifest(&changed.replace(
            "{node: node1, orchestrator: k8s, pod: b",
            "{node: node2, orchestrator: k8s, pod: b",
        ));
        typed::replace(s, moved).await.unwrap();
        assert_eq!(indexed(s, "node1").await, both[..1]);
        assert_eq!(
            indexed(s, "node2").await,
            ["/index/v1/workloadendpoints/node2/ns2/node1-k8s-b-eth0"]
        );
        // An endpoint stored before the index (no entry) still deletes.
        s.delete(both[0], None).await.unwrap();
        typed::delete_one(s, Kind::WorkloadEndpoint, Some("ns1"), "node1-k8s-a-eth0")
            .await
            .unwrap();
        typed::delete_one(s, Kind::WorkloadEndpoint, Some("ns2"), "node1-k8s-b-eth0")
            .await
            .unwrap();
        assert!(indexed(s, "node2").await.is_empty());
        assert!(s.list("/index/").await.unwrap().items.is_empty());
    }

    pub async fn policy_kinds_live_at_calicos_keys(fx: &Fixture) {
        let s = fx.store.as_ref();
        typed::apply(s, manifest(POLICY_KINDS)).await.unwrap();
        let base = "/resources/v3/projectcalico.org";
        for key in [
            "networkpolicies/ns1/knp.default.deny",
            "networkpolicies/ns1/allow",
            "globalnetworkpolicies/g",
            "networksets/ns1/ext",
            "globalnetworksets/gext",
            "profiles/kns.ns1",
        ] {
            let kv = s.get(&format!("{base}/{key}")).await.unwrap();
            assert!(kv.is_some(), "{key} not stored");
        }
        let p = typed::get(s, Kind::NetworkPolicy, Some("ns1"), "knp.default.deny")
            .await
            .unwrap();
        let Resource::NetworkPolicy(p) = p else {
            panic!("{p:?}")
        };
        assert_eq!(p.spec.tier.as_deref(), Some("default"), "stored defaulted");
        // Deleting with the same manifest deletes the converted resources.
        typed::delete(s, manifest(POLICY_KINDS)).await.unwrap();
        assert!(typed::list(s, Kind::NetworkPolicy, None)
            .await
            .unwrap()
            .is_empty());
        assert!(typed::list(s, Kind::Profile, None)
            .await
            .unwrap()
            .is_empty());
    }
}

const POLICY_KINDS: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {team: a}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ns1}
spec: {podSelector: {}}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow, namespace: ns1}
spec: {ingress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: g}
spec: {order: 10, egress: [{action: Pass}]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: ext, namespace: ns1}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: gext}
spec: {nets: [203.0.113.0/24]}
";

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[tokio::test] async fn $case() { super::cases::$case(&super::sqlite().await).await; } )*
        }
        mod on_etcd {
            $(
                #[tokio::test]
                #[ignore = "root: starts a real etcd server (full suite)"]
                async fn $case() { super::cases::$case(&super::etcd().await).await; }
            )*
        }
    };
}

both_backends!(
    resources_are_stored_as_json_at_calicos_keys,
    invalid_resources_are_rejected_before_anything_is_written,
    apply_with_one_stale_resource_version_writes_nothing,
    replace_keeps_identity_and_delete_needs_the_current_version,
    namespaced_lists_filter_by_namespace,
    every_write_keeps_the_node_index_of_endpoints,
    policy_kinds_live_at_calicos_keys,
);
