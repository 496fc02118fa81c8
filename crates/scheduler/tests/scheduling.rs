//! End-to-end tests of the scheduler against an in-process apiserver: Node objects only (no
//! kubelets), pods created through the API, outcomes read back through the API.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;

async fn start() -> kube::Client {
    let client = tug_apiserver::local::client(
        tug_apiserver::local::in_memory()
            .await
            .unwrap_or_else(|e| panic!("in-process apiserver: {e}")),
        tug_apiserver::local::component_user("test"),
    );
    let options = tug_scheduler::Options {
        pod_initial_backoff: Duration::from_millis(100),
        pod_max_backoff: Duration::from_millis(500),
        ..Default::default()
    };
    tokio::spawn(tug_scheduler::run(client.clone(), options));
    client
}

async fn node(client: &kube::Client, name: &str, cpu: &str, extra: serde_json::Value) {
    let mut v = serde_json::json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"}
        }
    });
    merge(&mut v, extra);
    let status = v["status"].take();
    let n: Node = serde_json::from_value(v).unwrap_or_else(|e| panic!("node: {e}"));
    let nodes = Api::<Node>::all(client.clone());
    nodes
        .create(&PostParams::default(), &n)
        .await
        .unwrap_or_else(|e| panic!("create node {name}: {e}"));
    // Status is a subresource: create ignores it, as a kubelet's first status update sets it.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": status})),
        )
        .await
        .unwrap_or_else(|e| panic!("node {name} status: {e}"));
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A pod; an `extra` `spec.priority` (and `preemptionPolicy`) becomes a PriorityClass of that value (the Priority
/// admission computes spec.priority from the class, as upstream).
async fn pod(client: &kube::Client, name: &str, cpu: &str, mut extra: serde_json::Value) -> Pod {
    let priority = extra
        .get_mut("spec")
        .and_then(|s| s.as_object_mut())
        .and_then(|s| s.remove("priority"));
    if let Some(value) = priority {
        let policy = extra["spec"]
            .as_object_mut()
            .and_then(|s| s.remove("preemptionPolicy"))
            .unwrap_or_else(|| "PreemptLowerPriority".into());
        let class = format!(
            "prio-{value}-{}",
            policy.as_str().unwrap_or("").to_lowercase()
        );
        let pc: PriorityClass = serde_json::from_value(serde_json::json!({
            "metadata": {"name": class}, "value": value, "preemptionPolicy": policy,
        }))
        .unwrap_or_else(|e| panic!("class: {e}"));
        match Api::<PriorityClass>::all(client.clone())
            .create(&PostParams::default(), &pc)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create class {class}: {e}"),
        }
        extra["spec"]["priorityClassName"] = class.into();
    }
    let mut v = serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}
    });
    merge(&mut v, extra);
    let p: Pod = serde_json::from_value(v).unwrap_or_else(|e| panic!("pod: {e}"));
    pods(client)
        .create(&PostParams::default(), &p)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"))
}

fn pods(client: &kube::Client) -> Api<Pod> {
    Api::namespaced(client.clone(), "default")
}

/// Polls `check` every 50 ms until it returns Some, for at most 20 s.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bound_to(client: &kube::Client, name: &str) -> String {
    wait_for(&format!("{name} to be bound"), || async {
        pods(client)
            .get(name)
            .await
            .ok()
            .and_then(|p| p.spec.and_then(|s| s.node_name))
    })
    .await
}

async fn unschedulable_message(client: &kube::Client, name: &str) -> String {
    wait_for(&format!("{name} to be unschedulable"), || async {
        let p = pods(client).get(name).await.ok()?;
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
        c.message
    })
    .await
}

async fn event(client: &kube::Client, pod: &str, reason: &str) -> String {
    wait_for(&format!("a {reason} event for {pod}"), || async {
        let events: Api<Event> = Api::namespaced(client.clone(), "default");
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.involved_object.name.as_deref() == Some(pod)
                    && e.reason.as_deref() == Some(reason)
            })
            .and_then(|e| e.message)
    })
    .await
}

fn taint() -> serde_json::Value {
    serde_json::json!({"spec": {"taints": [{"key": "node-role", "value": "x", "effect": "NoSchedule"}]}})
}

#[tokio::test]
async fn pods_go_where_selectors_taints_and_resources_allow() {
    let client = start().await;
    node(&client, "tainted", "8", taint()).await;
    node(&client, "small", "1", serde_json::json!({})).await;
    node(
        &client,
        "big",
        "8",
        serde_json::json!({"metadata": {"labels": {"disk": "ssd"}}}),
    )
    .await;
    pod(
        &client,
        "ssd",
        "100m",
        serde_json::json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
    )
    .await;
    pod(&client, "hungry", "2", serde_json::json!({})).await;
    pod(
        &client,
        "tolerant",
        "100m",
        serde_json::json!({"spec": {
            "nodeSelector": {"kubernetes.io/hostname": "tainted"},
            "tolerations": [{"key": "node-role", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]
        }}),
    )
    .await;
    pod(&client, "gpu", "100m", serde_json::json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}}]}})).await;
    assert_eq!(bound_to(&client, "ssd").await, "big");
    assert_eq!(bound_to(&client, "hungry").await, "big");
    assert_eq!(bound_to(&client, "tolerant").await, "tainted");
    assert_eq!(
        event(&client, "ssd", "Scheduled").await,
        "Successfully assigned default/ssd to big"
    );
    assert_eq!(
        unschedulable_message(&client, "gpu").await,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role: x}, \
         2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: \
         1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
}

#[tokio::test]
async fn an_impossible_pod_is_reported_as_upstream_does() {
    let client = start().await;
    node(&client, "tainted", "4", taint()).await;
    node(&client, "a", "4", serde_json::json!({})).await;
    node(&client, "b", "4", serde_json::json!({})).await;
    pod(&client, "huge", "100", serde_json::json!({})).await;
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role: x}, \
                2 Insufficient cpu. preemption: 0/3 nodes are available: \
                1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.";
    assert_eq!(unschedulable_message(&client, "huge").await, want);
    assert_eq!(event(&client, "huge", "FailedScheduling").await, want);
    // A new node that fits moves it back to the queue.
    node(&client, "giant", "128", serde_json::json!({})).await;
    assert_eq!(bound_to(&client, "huge").await, "giant");
}

#[tokio::test]
async fn required_anti_affinity_spreads_pods() {
    let client = start().await;
    for n in ["n1", "n2", "n3"] {
        node(&client, n, "4", serde_json::json!({})).await;
    }
    let anti = serde_json::json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}}}
    });
    let mut placed = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        pod(&client, &name, "100m", anti.clone()).await;
        placed.push(bound_to(&client, &name).await);
    }
    placed.sort();
    assert_eq!(placed, ["n1", "n2", "n3"]);
    pod(&client, "web-3", "100m", anti).await;
    assert_eq!(
        unschedulable_message(&client, "web-3").await,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
}

#[tokio::test]
async fn a_high_priority_pod_preempts_a_low_priority_one() {
    let client = start().await;
    node(&client, "only", "2", serde_json::json!({})).await;
    let low = pod(
        &client,
        "low",
        "1500m",
        serde_json::json!({"spec": {"priority": 10}}),
    )
    .await;
    assert_eq!(bound_to(&client, "low").await, "only");
    let high = pod(
        &client,
        "high",
        "1500m",
        serde_json::json!({"spec": {"priority": 1000}}),
    )
    .await;
    // The victim is deleted gracefully (it is bound): it gets a deletionTimestamp.
    wait_for("the victim to be terminating", || async {
        pods(&client)
            .get("low")
            .await
            .ok()
            .and_then(|p| p.metadata.deletion_timestamp)
    })
    .await;
    let nominated = wait_for("a nominated node", || async {
        pods(&client)
            .get("high")
            .await
            .ok()
            .and_then(|p| p.status?.nominated_node_name)
    })
    .await;
    assert_eq!(nominated, "only");
    let uid = high.metadata.uid.clone().unwrap_or_default();
    assert_eq!(
        event(&client, "low", "Preempted").await,
        format!("Preempted by pod {uid} on node only")
    );
    // While the victim terminates its resources still count: the pod is not bound yet.
    let still = pods(&client)
        .get("high")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(still.spec.and_then(|s| s.node_name).is_none());
    // Act as the kubelet: the victim is gone.
    pods(&client)
        .delete(
            "low",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("delete victim: {e}"));
    assert_eq!(bound_to(&client, "high").await, "only");
    assert!(low.metadata.uid.is_some());
}

#[tokio::test]
async fn preemption_never_does_not_preempt() {
    let client = start().await;
    node(&client, "only", "1", serde_json::json!({})).await;
    pod(
        &client,
        "low",
        "800m",
        serde_json::json!({"spec": {"priority": 1}}),
    )
    .await;
    bound_to(&client, "low").await;
    pod(
        &client,
        "polite",
        "800m",
        serde_json::json!({"spec": {"priority": 100, "preemptionPolicy": "Never"}}),
    )
    .await;
    assert_eq!(
        unschedulable_message(&client, "polite").await,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
}

#[tokio::test]
async fn gated_pods_wait_for_their_gates() {
    let client = start().await;
    node(&client, "n", "4", serde_json::json!({})).await;
    pod(
        &client,
        "gated",
        "100m",
        serde_json::json!({"spec": {"schedulingGates": [{"name": "example.com/wait"}]}}),
    )
    .await;
    pod(&client, "after", "100m", serde_json::json!({})).await;
    // The pod created later is scheduled; the gated one, queued first, is not.
    bound_to(&client, "after").await;
    let gated = pods(&client)
        .get("gated")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(gated.spec.and_then(|s| s.node_name).is_none());
    pods(&client)
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"schedulingGates": null}})),
        )
        .await
        .unwrap_or_else(|e| panic!("ungate: {e}"));
    assert_eq!(bound_to(&client, "gated").await, "n");
}
