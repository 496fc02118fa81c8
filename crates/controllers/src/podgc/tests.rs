//! Tests of the pod garbage collector.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

use super::*;
use crate::nodeipam::tests::{apiserver, eventually, node, run_controller};
use crate::Options;

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "nodeName": node, "containers": [{ "name": "c", "image": "i" }] },
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn evicted_then_oldest_go_first() {
    let at = |name: &str, secs: i64, evicted: bool| {
        let mut p = pod(name, None);
        p.metadata.creation_timestamp = Some(Time(
            Timestamp::from_second(secs).unwrap_or_else(|e| panic!("{e}")),
        ));
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Failed".to_owned()),
            reason: evicted.then(|| "Evicted".to_owned()),
            ..Default::default()
        });
        Arc::new(p)
    };
    let pods = vec![
        at("new", 30, false),
        at("old", 10, false),
        at("evicted", 40, true),
        at("mid", 20, false),
    ];
    let names = |v: Vec<Arc<Pod>>| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
    assert_eq!(names(over_threshold(pods.clone(), 2)), ["evicted", "old"]);
    assert!(over_threshold(pods.clone(), 4).is_empty());
    assert!(over_threshold(pods, 0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_and_orphaned_pods_are_collected() {
    let client = apiserver().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let pp = PostParams::default();
    nodes
        .create(&pp, &node("real", None))
        .await
        .unwrap_or_else(|e| panic!("node: {e}"));
    for name in ["done-1", "done-2", "done-3", "done-4"] {
        pods.create(&pp, &pod(name, None))
            .await
            .unwrap_or_else(|e| panic!("pod: {e}"));
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": { "phase": "Succeeded" } })),
        )
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    }
    pods.create(&pp, &pod("homed", Some("real")))
        .await
        .unwrap_or_else(|e| panic!("pod: {e}"));
    let options = Options {
        terminated_pod_gc_threshold: 2,
        ..Options::default()
    };
    let task = run_controller(client.clone(), options, super::start);
    let left = eventually(15, "two terminated pods left", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&Default::default()).await.ok()?;
            let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
            (names.iter().filter(|n| n.starts_with("done-")).count() == 2).then_some(names)
        }
    })
    .await;
    assert_eq!(left, ["done-3", "done-4", "homed"]);

    // A pod bound to a node that does not exist is collected (marked Failed, then deleted).
    pods.create(&pp, &pod("orphan", Some("ghost")))
        .await
        .unwrap_or_else(|e| panic!("pod: {e}"));
    eventually(15, "the orphan collected", || {
        let pods = pods.clone();
        async move { pods.get_opt("orphan").await.ok()?.is_none().then_some(()) }
    })
    .await;

    // Deleting a node orphans its pods.
    nodes
        .delete("real", &Default::default())
        .await
        .unwrap_or_else(|e| panic!("delete node: {e}"));
    eventually(15, "homed collected with its node", || {
        let pods = pods.clone();
        async move { pods.get_opt("homed").await.ok()?.is_none().then_some(()) }
    })
    .await;
    task.abort();
}
