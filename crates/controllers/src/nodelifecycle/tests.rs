//! Tests of the node lifecycle controller: the taint rules, and a node whose lease stops
//! being renewed (renewed by hand here; the hollow crate's tests use hollow kubelets).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

use super::taints::{desired_taints, tolerates, verdict, Verdict, UNREACHABLE};
use crate::nodeipam::tests::{apiserver, eventually, node, run_controller};
use crate::Options;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap_or_else(|e| panic!("{e}"))
}

fn with_ready(status: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": "n" },
        "spec": { "taints": [{ "key": "dedicated", "value": "x", "effect": "NoSchedule" }] },
        "status": { "conditions": [
            { "type": "Ready", "status": status },
            { "type": "MemoryPressure", "status": "True" },
        ]},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn keys(taints: &[Taint]) -> Vec<String> {
    taints
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

#[test]
fn conditions_drive_taints() {
    let unknown = desired_taints(&with_ready("Unknown"), at(10)).unwrap_or_default();
    assert_eq!(
        keys(&unknown),
        [
            "dedicated:NoSchedule",
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/memory-pressure:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    assert_eq!(unknown[3].time_added, Some(Time(at(10))));
    // Already tainted: nothing to change.
    let mut tainted = with_ready("Unknown");
    if let Some(spec) = tainted.spec.as_mut() {
        spec.taints = Some(unknown);
    }
    assert_eq!(desired_taints(&tainted, at(20)), None);
    // Ready again: the unreachable taints go, the user's taint stays.
    if let Some(c) = tainted
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
        .and_then(|c| c.first_mut())
    {
        c.status = "True".to_owned();
    }
    let back = desired_taints(&tainted, at(30)).unwrap_or_default();
    assert_eq!(
        keys(&back),
        [
            "dedicated:NoSchedule",
            "node.kubernetes.io/memory-pressure:NoSchedule"
        ]
    );
    let not_ready = desired_taints(&with_ready("False"), at(10)).unwrap_or_default();
    assert!(keys(&not_ready).contains(&"node.kubernetes.io/not-ready:NoExecute".to_owned()));
}

fn pod_tolerating(tolerations: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": "p", "namespace": "default" },
        "spec": { "containers": [], "tolerations": tolerations },
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tolerations_decide_when_pods_go() {
    let taint = Taint {
        key: UNREACHABLE.to_owned(),
        effect: "NoExecute".to_owned(),
        time_added: Some(Time(at(100))),
        value: None,
    };
    let taints = [taint.clone()];
    let none = pod_tolerating(serde_json::json!([]));
    assert_eq!(verdict(&none, &taints, at(100)), Verdict::Evict);
    assert_eq!(verdict(&none, &[], at(100)), Verdict::Stay);
    let forever = pod_tolerating(serde_json::json!([{ "key": UNREACHABLE, "operator": "Exists" }]));
    assert_eq!(verdict(&forever, &taints, at(100)), Verdict::Stay);
    let two = pod_tolerating(serde_json::json!([
        { "key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2 }
    ]));
    assert_eq!(verdict(&two, &taints, at(101)), Verdict::EvictAt(102));
    assert_eq!(verdict(&two, &taints, at(102)), Verdict::Evict);
    let everything = pod_tolerating(serde_json::json!([{ "operator": "Exists" }]));
    assert_eq!(verdict(&everything, &taints, at(100)), Verdict::Stay);
    // Equal needs the value; a NoSchedule toleration does not cover NoExecute.
    let wrong_value = serde_json::from_value(serde_json::json!(
        { "key": UNREACHABLE, "operator": "Equal", "value": "x" }
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!tolerates(&wrong_value, &taint));
    let wrong_effect = serde_json::from_value(serde_json::json!(
        { "key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule" }
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!tolerates(&wrong_effect, &taint));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_node_goes_unknown_and_comes_back() {
    let client = apiserver().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    nodes
        .create(&pp, &node("quiet", Some("10.1.0.0/24")))
        .await
        .unwrap_or_else(|e| panic!("node: {e}"));
    let ready = |hb: Timestamp| {
        serde_json::json!({ "status": { "conditions": [
            { "type": "Ready", "status": "True", "reason": "KubeletReady",
              "lastHeartbeatTime": Time(hb), "lastTransitionTime": Time(hb) },
        ]}})
    };
    nodes
        .patch_status(
            "quiet",
            &PatchParams::default(),
            &Patch::Merge(ready(Timestamp::now())),
        )
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "quiet", "namespace": "kube-node-lease" },
        "spec": { "holderIdentity": "quiet", "leaseDurationSeconds": 40,
                  "renewTime": MicroTime(Timestamp::now()) },
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    leases
        .create(&pp, &lease)
        .await
        .unwrap_or_else(|e| panic!("lease: {e}"));
    // A running, ready pod that tolerates the unreachable taint forever.
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "stays" },
        "spec": { "nodeName": "quiet", "containers": [{ "name": "c", "image": "i" }],
                  "tolerations": [{ "key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute" }] },
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    pods.create(&pp, &pod)
        .await
        .unwrap_or_else(|e| panic!("pod: {e}"));
    pods.patch_status(
        "stays",
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({ "status": { "phase": "Running", "conditions": [
            { "type": "Ready", "status": "True" }] } }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("pod status: {e}"));

    let options = Options {
        node_monitor_grace_period: Duration::from_secs(2),
        ..Options::default()
    };
    let task = run_controller(client.clone(), options, super::start);
    let started = tokio::time::Instant::now();
    let unknown = eventually(15, "quiet Unknown and tainted", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("quiet").await.ok()?;
            let cond = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            let tainted = n
                .spec
                .as_ref()?
                .taints
                .as_ref()?
                .iter()
                .any(|t| t.key == UNREACHABLE && t.effect == "NoExecute");
            (cond.status == "Unknown" && tainted).then_some(cond)
        }
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "marked before the grace period"
    );
    assert_eq!(unknown.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        unknown.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    let unready = eventually(10, "the pod not Ready", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("stays").await.ok()?;
            let r = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .status
                .clone();
            (r == "False").then_some(p)
        }
    })
    .await;
    assert!(unready.metadata.deletion_timestamp.is_none());

    // The kubelet is back: lease renewed, Ready posted; the taints go.
    let mut lease = leases.get("quiet").await.unwrap_or_else(|e| panic!("{e}"));
    if let Some(spec) = lease.spec.as_mut() {
        spec.renew_time = Some(MicroTime(Timestamp::now()));
    }
    leases
        .replace("quiet", &pp, &lease)
        .await
        .unwrap_or_else(|e| panic!("renew: {e}"));
    nodes
        .patch_status(
            "quiet",
            &PatchParams::default(),
            &Patch::Merge(ready(Timestamp::now())),
        )
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    eventually(10, "quiet's taints removed", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("quiet").await.ok()?;
            let taints = n.spec?.taints.unwrap_or_default();
            taints.iter().all(|t| t.key != UNREACHABLE).then_some(())
        }
    })
    .await;
    let p = pods.get("stays").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        p.metadata.deletion_timestamp.is_none(),
        "a pod tolerating forever stays"
    );
    task.abort();
}
