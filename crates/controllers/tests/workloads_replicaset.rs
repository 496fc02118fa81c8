//! The ReplicaSet and ReplicationController controllers against an in-process apiserver.

mod workloads_support;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use workloads_support::{object, wait_for, Cluster};

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    object(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "c", "image": "nginx" }] },
            },
        },
    }))
}

#[tokio::test]
async fn replaces_a_deleted_pod_and_scales_down_unready_first() {
    let cluster = Cluster::start(&["replicaset"]).await;
    cluster.add_node("n1", json!({}), json!([])).await;
    let rss = cluster.api::<ReplicaSet>();
    rss.create(&PostParams::default(), &replicaset("web", 3))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let pods = wait_for("3 pods", || async {
        let p = cluster.pods("app=web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for p in &pods {
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
        let owner = p
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true))
            .unwrap_or_else(|| panic!("no controller ref"));
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", "web")
        );
    }
    // Two of them run; the third stays Pending (unassigned): it goes first on scale-down.
    cluster.run_pod(&pods[0].name_any(), "n1").await;
    cluster.run_pod(&pods[1].name_any(), "n1").await;
    let rs = wait_for("status", || async {
        let rs = rss.get("web").await.ok()?;
        let s = rs.status.clone()?;
        (s.replicas == 3 && s.ready_replicas == Some(2) && s.available_replicas == Some(2))
            .then_some(rs)
    })
    .await;
    assert_eq!(
        rs.status.as_ref().and_then(|s| s.fully_labeled_replicas),
        Some(3)
    );
    assert_eq!(
        rs.status.as_ref().and_then(|s| s.observed_generation),
        rs.metadata.generation
    );

    // A deleted pod is replaced.
    cluster
        .api::<Pod>()
        .delete(
            &pods[0].name_any(),
            &DeleteParams::default().grace_period(0),
        )
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let after = wait_for("a replacement", || async {
        let p = cluster.pods("app=web").await;
        let fresh = p
            .iter()
            .any(|p| pods.iter().all(|o| o.name_any() != p.name_any()));
        (p.len() == 3 && fresh).then_some(p)
    })
    .await;
    let replacement = after
        .iter()
        .find(|p| pods.iter().all(|o| o.name_any() != p.name_any()))
        .map(ResourceExt::name_any)
        .unwrap_or_default();
    cluster.run_pod(&replacement, "n1").await;

    // Scale to 2: the Pending, unassigned pod is the one deleted.
    rss.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
    )
    .await
    .unwrap_or_else(|e| panic!("scale: {e}"));
    let left = wait_for("2 pods", || async {
        let p = cluster.pods("app=web").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    assert!(left.iter().all(|p| p.name_any() != pods[2].name_any()));
    let events = wait_for("events", || async {
        let ev = cluster
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .ok()?
            .items;
        ev.iter()
            .any(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
            .then_some(ev)
    })
    .await;
    assert!(events
        .iter()
        .any(|e| e.reason.as_deref() == Some("SuccessfulCreate")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("Created pod: web-"))));
    assert!(events
        .iter()
        .any(|e| e.message.as_deref() == Some(&format!("Deleted pod: {}", pods[2].name_any()))));
}

#[tokio::test]
async fn adopts_orphans_and_releases_pods_that_stop_matching() {
    let cluster = Cluster::start(&["replicaset"]).await;
    let pods = cluster.api::<Pod>();
    let orphan: Pod = object(json!({
        "metadata": { "name": "orphan", "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "c", "image": "nginx" }] },
    }));
    pods.create(&PostParams::default(), &orphan)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    cluster
        .api::<ReplicaSet>()
        .create(&PostParams::default(), &replicaset("web", 2))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    wait_for("adoption", || async {
        let p = pods.get("orphan").await.ok()?;
        p.owner_references()
            .iter()
            .any(|r| r.name == "web" && r.controller == Some(true))
            .then_some(())
    })
    .await;
    // Two pods in all: the orphan counts.
    wait_for("2 pods", || async {
        (cluster.pods("app=web").await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(cluster.pods("app=web").await.len(), 2);
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "app": "other" } } })),
    )
    .await
    .unwrap_or_else(|e| panic!("relabel: {e}"));
    wait_for("release and replacement", || async {
        let p = pods.get("orphan").await.ok()?;
        let released = p.owner_references().is_empty();
        (released && cluster.pods("app=web").await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_replication_controller_keeps_its_replicas() {
    let cluster = Cluster::start(&["replicationcontroller"]).await;
    let rc: ReplicationController = object(json!({
        "metadata": { "name": "legacy" },
        "spec": {
            "replicas": 2,
            "selector": { "app": "legacy" },
            "template": {
                "metadata": { "labels": { "app": "legacy" } },
                "spec": { "containers": [{ "name": "c", "image": "nginx" }] },
            },
        },
    }));
    let rcs = cluster.api::<ReplicationController>();
    rcs.create(&PostParams::default(), &rc)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    wait_for("2 pods and status", || async {
        let n = cluster.pods("app=legacy").await.len();
        let s = rcs.get("legacy").await.ok()?.status?;
        (n == 2 && s.replicas == 2).then_some(())
    })
    .await;
    let pods = cluster.pods("app=legacy").await;
    let owner = &pods[0].owner_references()[0];
    assert_eq!(owner.kind, "ReplicationController");
}
