//! Node health: marks a node whose kubelet went quiet Unknown, marks its pods not ready, and
//! keeps the node's condition-driven taints in line with its conditions.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use tokio::time::Instant;
use tug_runtime::events::EventType;
use tug_runtime::ObjectKey;

use super::{taints, Heard, Shared};

/// The conditions set Unknown when the kubelet goes quiet.
pub const MONITORED: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The condition list of a node that stopped posting status, or `None` if every monitored
/// condition is Unknown already.
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in MONITORED {
        match conditions.iter_mut().find(|c| c.type_ == *type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".to_owned();
                c.reason = Some("NodeStatusUnknown".to_owned());
                c.message = Some("Kubelet stopped posting node status.".to_owned());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: (*type_).to_owned(),
                    status: "Unknown".to_owned(),
                    reason: Some("NodeStatusNeverUpdated".to_owned()),
                    message: Some("Kubelet never posted node status.".to_owned()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

fn ready(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

fn now_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Sets Ready False on the pods of `node` that are Ready.
async fn mark_pods_not_ready(s: &Shared, node: &str) -> Result<(), kube::Error> {
    let now = now_seconds();
    for pod in s
        .pods_on(node)
        .into_iter()
        .filter(|p| crate::util::is_pod_ready(p))
    {
        let mut conditions: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|st| st.conditions.clone())
            .unwrap_or_default();
        for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
            c.status = "False".to_owned();
            c.last_transition_time = Some(Time(now));
        }
        let api: Api<Pod> = Api::namespaced(s.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = serde_json::json!({ "status": { "conditions": conditions } });
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                s.node_events.event(
                    pod.as_ref(),
                    EventType::Warning,
                    "NodeNotReady",
                    "Node is not ready",
                );
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Syncs one node: answers when to look again (the health timer is scheduled here).
pub(super) async fn sync(s: &Shared, key: ObjectKey) -> Result<Option<Duration>, kube::Error> {
    let Some(node) = s.nodes.get(&key) else {
        return Ok(None);
    };
    let now = Instant::now();
    let quiet = {
        let mut heard = s.heard();
        let entry = heard.entry(key.name.clone()).or_insert_with(|| Heard {
            at: now,
            renew: None,
            heartbeat: None,
            timer: None,
        });
        let deadline = entry.at + s.grace;
        if now < deadline && entry.timer.is_none_or(|t| t <= now) {
            entry.timer = Some(deadline);
            s.node_queue.add_after(key.clone(), deadline - now);
        }
        now >= deadline
    };
    let api: Api<Node> = Api::all(s.client.clone());
    let mut node = (*node).clone();
    if quiet {
        if let Some(conditions) = unknown_conditions(&node, now_seconds()) {
            let was_ready = ready(&node) == Some("True");
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": node.resource_version() },
                "status": { "conditions": conditions },
            });
            node = api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %key.name, "node stopped posting status; conditions Unknown");
            if was_ready {
                s.node_events.event(
                    &node,
                    EventType::Normal,
                    "NodeNotReady",
                    format!("Node {} status is now: NodeNotReady", key.name),
                );
            }
        }
    }
    if ready(&node).is_some_and(|r| r != "True") {
        mark_pods_not_ready(s, &key.name).await?;
    }
    if let Some(wanted) = taints::desired_taints(&node, now_seconds()) {
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": node.resource_version() },
            "spec": { "taints": wanted },
        });
        api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(None)
}
