//! The deployment controller (with the ReplicaSet controller under it) against an
//! in-process apiserver; the test binds pods and makes them Ready.

mod workloads_support;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use workloads_support::{object, wait_for, Cluster};

fn deployment(name: &str, replicas: i32, strategy: serde_json::Value) -> Deployment {
    object(json!({
        "metadata": { "name": name, "annotations": { "kubernetes.io/change-cause": "first" } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "strategy": strategy,
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "c", "image": "nginx:1" }] },
            },
        },
    }))
}

async fn replicasets(cluster: &Cluster) -> Vec<ReplicaSet> {
    let mut rss = cluster
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list: {e}"))
        .items;
    rss.sort_by_key(|r| {
        r.annotations()
            .get("deployment.kubernetes.io/revision")
            .cloned()
    });
    rss
}

fn size(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(0)
}

fn condition_reason(d: &Deployment, type_: &str) -> Option<String> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))?
        .reason
        .clone()
}

async fn set_image(cluster: &Cluster, name: &str, image: &str, cause: &str) {
    let patch = json!({
        "metadata": { "annotations": { "kubernetes.io/change-cause": cause } },
        "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": image }] } } },
    });
    cluster
        .api::<Deployment>()
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch: {e}"));
}

async fn rolled_out(cluster: &Cluster, name: &str, replicas: i32) -> Deployment {
    wait_for("a complete rollout", || async {
        let d = cluster.api::<Deployment>().get(name).await.ok()?;
        let s = d.status.clone()?;
        let done = s.observed_generation == d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && condition_reason(&d, "Progressing").as_deref() == Some("NewReplicaSetAvailable");
        done.then_some(d)
    })
    .await
}

#[tokio::test]
async fn rolling_update_honours_surge_and_unavailability() {
    let mut cluster = Cluster::start(&["deployment", "replicaset"]).await;
    cluster.add_node("n1", json!({}), json!([])).await;
    cluster.run_kubelet("n1");
    let strategy = json!({ "type": "RollingUpdate",
        "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } });
    cluster
        .api::<Deployment>()
        .create(&PostParams::default(), &deployment("web", 3, strategy))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let d = rolled_out(&cluster, "web", 3).await;
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        condition_reason(&d, "Available").as_deref(),
        Some("MinimumReplicasAvailable")
    );
    let rss = replicasets(&cluster).await;
    assert_eq!(rss.len(), 1);
    let first = &rss[0];
    let hash = first
        .labels()
        .get("pod-template-hash")
        .cloned()
        .unwrap_or_default();
    assert!(!hash.is_empty());
    assert_eq!(first.name_any(), format!("web-{hash}"));
    assert_eq!(
        first
            .spec
            .selector
            .match_labels
            .as_ref()
            .and_then(|m| m.get("pod-template-hash")),
        Some(&hash)
    );
    let a = first.annotations();
    assert_eq!(
        a.get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        a.get("deployment.kubernetes.io/desired-replicas")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        a.get("deployment.kubernetes.io/max-replicas")
            .map(String::as_str),
        Some("4")
    );
    assert_eq!(
        a.get("kubernetes.io/change-cause").map(String::as_str),
        Some("first")
    );
    let pods = cluster.pods("app=web").await;
    assert_eq!(pods.len(), 3);
    assert!(pods
        .iter()
        .all(|p| p.labels().get("pod-template-hash") == Some(&hash)));

    // A new template rolls out a second ReplicaSet; never more than 4 pods wanted, never
    // fewer than 3 available.
    set_image(&cluster, "web", "nginx:2", "second").await;
    wait_for("the rollout to finish", || async {
        let rss = replicasets(&cluster).await;
        let total: i32 = rss.iter().map(size).sum();
        assert!(total <= 4, "maxSurge exceeded: {total}");
        let available: i32 = rss
            .iter()
            .filter_map(|r| r.status.as_ref()?.available_replicas)
            .sum();
        assert!(
            available >= 3 || rss.len() < 2,
            "maxUnavailable exceeded: {available}"
        );
        let d = cluster.api::<Deployment>().get("web").await.ok()?;
        let done = rss.len() == 2
            && size(&rss[0]) == 0
            && size(&rss[1]) == 3
            && condition_reason(&d, "Progressing").as_deref() == Some("NewReplicaSetAvailable")
            && d.status.as_ref()?.updated_replicas == Some(3);
        done.then_some(())
    })
    .await;
    let rss = replicasets(&cluster).await;
    assert_eq!(rss[0].name_any(), first.name_any());
    let second = &rss[1];
    let a = second.annotations();
    assert_eq!(
        a.get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        a.get("kubernetes.io/change-cause").map(String::as_str),
        Some("second")
    );
    let d = cluster
        .api::<Deployment>()
        .get("web")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );

    // Going back to the first template (what `kubectl rollout undo` does) makes the first
    // ReplicaSet new again, as revision 3, remembering revision 1.
    set_image(&cluster, "web", "nginx:1", "first").await;
    wait_for("the rollback", || async {
        let rs = cluster
            .api::<ReplicaSet>()
            .get(&first.name_any())
            .await
            .ok()?;
        let a = rs.annotations();
        let back = a
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str)
            == Some("3")
            && a.get("deployment.kubernetes.io/revision-history")
                .map(String::as_str)
                == Some("1")
            && size(&rs) == 3;
        back.then_some(())
    })
    .await;
    rolled_out(&cluster, "web", 3).await;

    // Scaling goes to the one active ReplicaSet.
    cluster
        .api::<Deployment>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
        )
        .await
        .unwrap_or_else(|e| panic!("scale: {e}"));
    rolled_out(&cluster, "web", 5).await;
    assert_eq!(cluster.pods("app=web").await.len(), 5);
    let events = cluster
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("events: {e}"))
        .items;
    let messages: Vec<String> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
        .filter_map(|e| e.message.clone())
        .collect();
    let up = format!("Scaled up replica set {} from 0 to 1", second.name_any());
    assert!(messages.contains(&up), "{messages:?}");
    let down = format!("Scaled down replica set {} from 3 to 2", first.name_any());
    assert!(messages.contains(&down), "{messages:?}");
}

#[tokio::test]
async fn recreate_scales_the_old_set_to_zero_before_the_new_one_starts() {
    let mut cluster = Cluster::start(&["deployment", "replicaset"]).await;
    cluster.add_node("n1", json!({}), json!([])).await;
    cluster.run_kubelet("n1");
    cluster
        .api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment("db", 2, json!({ "type": "Recreate" })),
        )
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    rolled_out(&cluster, "db", 2).await;
    let old_hash = replicasets(&cluster).await[0]
        .labels()
        .get("pod-template-hash")
        .cloned()
        .unwrap_or_default();
    set_image(&cluster, "db", "nginx:2", "second").await;
    wait_for("the recreate", || async {
        let rss = replicasets(&cluster).await;
        let pods = cluster.pods("app=db").await;
        let old_pods = pods
            .iter()
            .filter(|p| p.labels().get("pod-template-hash") == Some(&old_hash))
            .count();
        let new_wanted = rss.get(1).map_or(0, size);
        assert!(
            old_pods == 0 || new_wanted == 0,
            "new pods wanted while {old_pods} old pods remain"
        );
        (rss.len() == 2 && size(&rss[0]) == 0 && new_wanted == 2).then_some(())
    })
    .await;
    rolled_out(&cluster, "db", 2).await;
}

#[tokio::test]
async fn paused_deployments_do_not_roll_out() {
    let mut cluster = Cluster::start(&["deployment", "replicaset"]).await;
    cluster.add_node("n1", json!({}), json!([])).await;
    cluster.run_kubelet("n1");
    let api = cluster.api::<Deployment>();
    api.create(&PostParams::default(), &deployment("app", 1, json!({})))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    rolled_out(&cluster, "app", 1).await;
    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "paused": true } })),
    )
    .await
    .unwrap_or_else(|e| panic!("pause: {e}"));
    set_image(&cluster, "app", "nginx:2", "second").await;
    let d = wait_for("the paused condition", || async {
        let d = api.get("app").await.ok()?;
        let seen = d.status.as_ref()?.observed_generation == d.metadata.generation
            && condition_reason(&d, "Progressing").as_deref() == Some("DeploymentPaused");
        seen.then_some(d)
    })
    .await;
    assert!(d.metadata.generation.is_some());
    assert_eq!(
        replicasets(&cluster).await.len(),
        1,
        "no rollout while paused"
    );
    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "paused": false } })),
    )
    .await
    .unwrap_or_else(|e| panic!("resume: {e}"));
    wait_for("the rollout after resume", || async {
        (replicasets(&cluster).await.len() == 2).then_some(())
    })
    .await;
    rolled_out(&cluster, "app", 1).await;
}
