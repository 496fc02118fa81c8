//! The resourcequota and disruption controllers against an in-process apiserver.

mod ctrl_common;

use ctrl_common::{create, running, set_pod_status, start, wait_for};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use serde_json::json;

fn used(q: &ResourceQuota, name: &str) -> Option<String> {
    q.status
        .as_ref()?
        .used
        .as_ref()?
        .get(name)
        .map(|v| v.0.clone())
}

#[tokio::test]
async fn quota_usage_follows_the_namespace() {
    let c = start(&["resourcequota"]).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.client.clone(), "default");
    create(&quotas, json!({
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "2Gi", "configmaps": "5", "count/replicasets.apps": "3"}}
    })).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for (name, cpu) in [("a", "500m"), ("b", "1")] {
        create(
            &pods,
            json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": cpu}, "limits": {"memory": "512Mi"}}}]}
            }),
        )
        .await;
    }
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    create(&cms, json!({"metadata": {"name": "cm"}})).await;
    // configmaps counts whatever the namespace holds (a root CA one may be there too).
    let n_cms = cms
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    let q = wait_for("usage of two pods and the config maps", || async {
        let q = quotas.get("q").await.ok()?;
        (used(&q, "pods").as_deref() == Some("2")
            && used(&q, "configmaps") == Some(n_cms.to_string()))
        .then_some(q)
    })
    .await;
    assert_eq!(used(&q, "requests.cpu").as_deref(), Some("1500m"));
    assert_eq!(used(&q, "limits.memory").as_deref(), Some("1Gi"));
    assert_eq!(used(&q, "count/replicasets.apps").as_deref(), Some("0"));
    let hard = q
        .status
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    assert_eq!(hard.get("pods").map(|v| v.0.as_str()), Some("10"));

    // A finished pod stops counting.
    set_pod_status(&c.client, "default", "a", json!({"phase": "Succeeded"})).await;
    wait_for("usage of one pod", || async {
        let q = quotas.get("q").await.ok()?;
        (used(&q, "pods").as_deref() == Some("1")
            && used(&q, "requests.cpu").as_deref() == Some("1"))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn pdb_status_counts_healthy_pods() {
    let c = start(&["disruption"]).await;
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let rs = create(
        &rss,
        json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for (i, name) in ["w1", "w2", "w3"].iter().enumerate() {
        create(
            &pods,
            json!({
                "metadata": {"name": name, "labels": {"app": "web"}, "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": rs.uid().unwrap_or_default(), "controller": true}]},
                "spec": {"containers": [{"name": "c", "image": "x"}]}
            }),
        )
        .await;
        set_pod_status(
            &c.client,
            "default",
            name,
            running(i < 2, &format!("10.1.0.{i}")),
        )
        .await;
    }
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), "default");
    create(
        &pdbs,
        json!({
            "metadata": {"name": "web"},
            "spec": {"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}}
        }),
    )
    .await;
    let pdb = wait_for("pdb status", || async {
        let p = pdbs.get("web").await.ok()?;
        let st = p.status.as_ref()?;
        (st.current_healthy == Some(2) && st.disruptions_allowed == Some(1)).then_some(p)
    })
    .await;
    let st = pdb.status.clone().unwrap_or_default();
    // 34% of 3 rounds up to 2 unavailable: 1 must stay healthy; 2 are.
    assert_eq!(st.expected_pods, Some(3));
    assert_eq!(st.desired_healthy, Some(1));
    assert_eq!(st.current_healthy, Some(2));
    assert_eq!(st.disruptions_allowed, Some(1));
    assert_eq!(st.observed_generation, pdb.metadata.generation);
    let cond = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .unwrap_or_else(|| panic!("no condition"));
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "SufficientPods")
    );

    // Losing a ready pod leaves no room.
    pods.delete("w1", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let pdb = wait_for("insufficient pods", || async {
        let p = pdbs.get("web").await.ok()?;
        (p.status.as_ref()?.current_healthy == Some(1)).then_some(p)
    })
    .await;
    let st = pdb.status.unwrap_or_default();
    assert_eq!(st.disruptions_allowed, Some(0));
    let cond = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .unwrap_or_else(|| panic!("no condition"));
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "InsufficientPods")
    );
}
