//! The DaemonSet controller against an in-process apiserver; the test binds the pods to
//! the node their affinity names and makes them Ready.

mod workloads_support;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use workloads_support::{affinity_node, object, wait_for, Cluster};

fn daemonset() -> DaemonSet {
    object(json!({
        "metadata": { "name": "agent" },
        "spec": {
            "selector": { "matchLabels": { "app": "agent" } },
            "template": {
                "metadata": { "labels": { "app": "agent" } },
                "spec": {
                    "nodeSelector": { "role": "worker" },
                    "containers": [{ "name": "c", "image": "agent:1" }],
                },
            },
        },
    }))
}

#[tokio::test]
async fn one_pod_per_eligible_node() {
    let mut cluster = Cluster::start(&["daemonset"]).await;
    cluster
        .add_node("a", json!({ "role": "worker" }), json!([]))
        .await;
    cluster
        .add_node("b", json!({ "role": "worker" }), json!([]))
        .await;
    cluster
        .add_node(
            "tainted",
            json!({ "role": "worker" }),
            json!([{ "key": "dedicated", "value": "db", "effect": "NoSchedule" }]),
        )
        .await;
    cluster
        .add_node("other", json!({ "role": "db" }), json!([]))
        .await;
    // Cordoned nodes still get daemon pods: they tolerate node.kubernetes.io/unschedulable.
    cluster
        .add_node(
            "cordoned",
            json!({ "role": "worker" }),
            json!([{ "key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule" }]),
        )
        .await;
    cluster.run_kubelet("nowhere");
    let api = cluster.api::<DaemonSet>();
    api.create(&PostParams::default(), &daemonset())
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let ds = wait_for("3 pods available", || async {
        let ds = api.get("agent").await.ok()?;
        let s = ds.status.clone()?;
        (s.desired_number_scheduled == 3 && s.number_available == Some(3) && s.number_ready == 3)
            .then_some(ds)
    })
    .await;
    let s = ds.status.clone().unwrap_or_default();
    assert_eq!(s.current_number_scheduled, 3);
    assert_eq!(s.updated_number_scheduled, Some(3));
    assert_eq!(s.number_misscheduled, 0);
    assert_eq!(s.number_unavailable, Some(0));
    assert_eq!(s.observed_generation, ds.metadata.generation);
    let pods = cluster.pods("app=agent").await;
    let mut nodes: Vec<String> = pods.iter().filter_map(affinity_node).collect();
    nodes.sort();
    assert_eq!(nodes, ["a", "b", "cordoned"]);
    for p in &pods {
        let spec = p.spec.clone().unwrap_or_default();
        assert_eq!(
            spec.node_name,
            affinity_node(p),
            "bound where its affinity says"
        );
        let tolerations = spec.tolerations.unwrap_or_default();
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let t = tolerations.iter().find(|t| t.key.as_deref() == Some(key));
            let t = t.unwrap_or_else(|| panic!("no toleration for {key}"));
            assert_eq!(t.effect.as_deref(), Some("NoExecute"));
            assert_eq!(t.toleration_seconds, None);
        }
        assert!(p.labels().contains_key("controller-revision-hash"));
    }

    // A node leaving the selector loses its pod.
    Api::<Node>::all(cluster.client.clone())
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "role": "db" } } })),
        )
        .await
        .unwrap_or_else(|e| panic!("relabel: {e}"));
    wait_for("the pod on b to go", || async {
        let pods = cluster.pods("app=agent").await;
        let on_b = pods
            .iter()
            .any(|p| affinity_node(p).as_deref() == Some("b"));
        (!on_b && pods.len() == 2).then_some(())
    })
    .await;

    // A template change rolls out node by node (maxUnavailable 1).
    let old_hash = pods[0]
        .labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default();
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": "agent:2" }] } } } });
    api.patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch: {e}"));
    wait_for("the rolling update", || async {
        let pods: Vec<Pod> = cluster.pods("app=agent").await;
        let ds = api.get("agent").await.ok()?;
        let s = ds.status.clone()?;
        let done = pods.len() == 2
            && pods
                .iter()
                .all(|p| p.labels().get("controller-revision-hash") != Some(&old_hash))
            && s.updated_number_scheduled == Some(2)
            && s.number_available == Some(2)
            && s.observed_generation == ds.metadata.generation;
        done.then_some(())
    })
    .await;
}
