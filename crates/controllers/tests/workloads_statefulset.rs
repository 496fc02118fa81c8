//! The StatefulSet controller against an in-process apiserver; the test plays scheduler
//! and kubelet by hand so it can hold each pod un-Ready.

mod workloads_support;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use workloads_support::{object, wait_for, Cluster};

fn statefulset() -> StatefulSet {
    object(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "c", "image": "nginx" }] },
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": "1Gi" } },
                },
            }],
        },
    }))
}

/// Waits until the controller has written a status counting `replicas` pods for the
/// current generation: it has finished a sync that saw them.
async fn settled(cluster: &Cluster, replicas: i32) -> StatefulSet {
    wait_for("the status", || async {
        let s = cluster.api::<StatefulSet>().get("web").await.ok()?;
        let st = s.status.clone()?;
        (st.observed_generation == s.metadata.generation && st.replicas == replicas).then_some(s)
    })
    .await
}

async fn exists(cluster: &Cluster, name: &str) -> bool {
    cluster
        .api::<Pod>()
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .is_some()
}

#[tokio::test]
async fn ordered_ready_creates_one_ordinal_at_a_time_with_claims() {
    let cluster = Cluster::start(&["statefulset"]).await;
    cluster.add_node("n1", json!({}), json!([])).await;
    cluster
        .api::<StatefulSet>()
        .create(&PostParams::default(), &statefulset())
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    for ord in 0..3 {
        let name = format!("web-{ord}");
        let cluster = &cluster;
        let n = name.as_str();
        wait_for(
            &name,
            || async move { exists(cluster, n).await.then_some(()) },
        )
        .await;
        settled(cluster, ord + 1).await;
        let next = format!("web-{}", ord + 1);
        assert!(
            !exists(cluster, &next).await,
            "{next} created before {name} was Ready"
        );
        cluster.run_pod(&name, "n1").await;
    }
    let set = wait_for("3 ready", || async {
        let s = cluster.api::<StatefulSet>().get("web").await.ok()?;
        (s.status.as_ref()?.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    let status = set.status.clone().unwrap_or_default();
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(status.current_replicas, Some(3));
    let revision = status.update_revision.clone().unwrap_or_default();
    assert!(revision.starts_with("web-"), "{revision}");
    let revs = cluster
        .api::<ControllerRevision>()
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items;
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].name_any(), revision);
    assert_eq!(revs[0].revision, Some(1));

    let pod = cluster
        .api::<Pod>()
        .get("web-1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let labels = pod.labels();
    assert_eq!(
        labels
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some("web-1")
    );
    assert_eq!(
        labels
            .get("apps.kubernetes.io/pod-index")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(labels.get("controller-revision-hash"), Some(&revision));
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    let claim = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone());
    assert_eq!(claim.as_deref(), Some("data-web-1"));
    let claims = cluster.api::<PersistentVolumeClaim>();
    for ord in 0..3 {
        assert!(claims
            .get_opt(&format!("data-web-{ord}"))
            .await
            .ok()
            .flatten()
            .is_some());
    }

    // Scale down: the highest ordinal goes first, the next only once it is gone; the claims
    // stay.
    cluster
        .api::<StatefulSet>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
        )
        .await
        .unwrap_or_else(|e| panic!("scale: {e}"));
    let pods = cluster.api::<Pod>();
    wait_for("web-2 terminating", || async {
        pods.get("web-2")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    let web1 = pods.get("web-1").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        web1.metadata.deletion_timestamp.is_none(),
        "web-1 deleted while web-2 terminates"
    );
    pods.delete("web-2", &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("web-1 terminating", || async {
        pods.get("web-1")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    pods.delete("web-1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    settled(&cluster, 1).await;
    assert!(exists(&cluster, "web-0").await);
    assert!(claims.get_opt("data-web-2").await.ok().flatten().is_some());
}

#[tokio::test]
async fn a_rolling_update_replaces_from_the_highest_ordinal_down_to_the_partition() {
    let mut cluster = Cluster::start(&["statefulset"]).await;
    cluster.add_node("n1", json!({}), json!([])).await;
    cluster.run_kubelet("n1");
    let api = cluster.api::<StatefulSet>();
    let mut set = statefulset();
    set.spec.pod_management_policy = Some("Parallel".into());
    api.create(&PostParams::default(), &set)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let first = wait_for("3 ready", || async {
        let s = api.get("web").await.ok()?;
        (s.status.as_ref()?.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    let old_rev = first
        .status
        .and_then(|s| s.update_revision)
        .unwrap_or_default();
    let patch = json!({ "spec": {
        "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "partition": 1 } },
        "template": { "spec": { "containers": [{ "name": "c", "image": "nginx:2" }] } },
    }});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch: {e}"));
    let done = wait_for("the partitioned update", || async {
        let s = api.get("web").await.ok()?;
        let st = s.status.clone()?;
        (st.updated_replicas == Some(2) && st.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    let new_rev = done
        .status
        .and_then(|s| s.update_revision)
        .unwrap_or_default();
    assert_ne!(new_rev, old_rev);
    let rev = |p: &Pod| {
        p.labels()
            .get("controller-revision-hash")
            .cloned()
            .unwrap_or_default()
    };
    let pods = cluster.pods("app=web").await;
    assert_eq!(
        pods.iter().map(rev).collect::<Vec<_>>(),
        [old_rev.clone(), new_rev.clone(), new_rev]
    );
}
