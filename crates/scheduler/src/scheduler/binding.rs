//! The binding cycle and failure handling: a pod assumed on a node is bound by POSTing a
//! Binding (DefaultBinder) on its own task, so the next cycle never waits for the API; a
//! failed bind forgets the assumed pod and requeues it. A pod that could not be scheduled
//! gets the PodScheduled=False condition (and nominatedNodeName) and a FailedScheduling
//! event, as upstream's `handleSchedulingFailure`.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use tug_runtime::events::EventType;

use super::Shared;
use crate::framework::{Code, Status};
use crate::node_info::PodInfo;
use crate::queue::{Event, QueuedPod};

/// POSTs pods/binding (the DefaultBinder plugin).
pub async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_owned()),
            ..Default::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
}

/// Binds an assumed pod; on failure forgets it and requeues it.
pub async fn bind_cycle(shared: Arc<Shared>, qp: QueuedPod, node: String) {
    match bind(&shared.client, &qp.pod, &node).await {
        Ok(()) => {
            shared.recorder.event(
                qp.pod.as_ref(),
                EventType::Normal,
                "Scheduled",
                format!("Successfully assigned {} to {}", qp.key, node),
            );
        }
        Err(e) => {
            tracing::debug!(pod = %qp.key, %node, error = %e, "binding failed");
            shared.cache().forget(&qp.key);
            shared.queue.move_all(Event::AssignedPodDelete);
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                return;
            }
            shared
                .queue
                .requeue_after_bind_failure(qp.pod.clone(), qp.attempts);
            let status = Status::new(Code::Error, format!("Binding rejected: {e}"));
            report(&shared, &qp.pod, &status, None);
        }
    }
}

/// A cycle failed: requeue, remember a nomination, update the pod's status and record the
/// event. `nominate`: `Some(node)` sets (or, when empty, clears) nominatedNodeName.
pub fn handle_failure(
    shared: &Arc<Shared>,
    qp: &QueuedPod,
    cycle: u64,
    status: &Status,
    plugins: BTreeSet<&'static str>,
    nominate: Option<String>,
) {
    // The latest object: the pod may have been deleted or bound meanwhile.
    let Some(current) = shared.pods.get(&qp.key) else {
        shared.queue.delete(&qp.key);
        return;
    };
    if current
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        shared.queue.delete(&qp.key);
        return;
    }
    shared
        .queue
        .add_unschedulable(&qp.key, cycle, plugins, status.code == Code::Error);
    if let Some(node) = &nominate {
        shared
            .nominator()
            .set(Arc::new(PodInfo::new(current.clone())), node);
    }
    report(shared, &current, status, nominate);
}

fn report(shared: &Arc<Shared>, pod: &Arc<Pod>, status: &Status, nominate: Option<String>) {
    let msg = status.message();
    shared.recorder.event(
        pod.as_ref(),
        EventType::Warning,
        "FailedScheduling",
        msg.clone(),
    );
    let reason = if status.is_rejected() {
        "Unschedulable"
    } else {
        "SchedulerError"
    };
    let old = pod.status.as_ref();
    let cond = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    let old_nominated = old
        .and_then(|s| s.nominated_node_name.clone())
        .unwrap_or_default();
    let same = cond.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(&msg)
    });
    let nominate_changed = nominate.as_ref().is_some_and(|n| *n != old_nominated);
    if same && !nominate_changed {
        return;
    }
    let transition = match cond {
        Some(c) if c.status == "False" => c
            .last_transition_time
            .clone()
            .unwrap_or_else(tug_runtime::now),
        _ => tug_runtime::now(),
    };
    let mut patch = serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": msg,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    }]}});
    if let Some(n) = nominate {
        patch["status"]["nominatedNodeName"] = if n.is_empty() {
            serde_json::Value::Null
        } else {
            n.into()
        };
    }
    let api: Api<Pod> = Api::namespaced(
        shared.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    tokio::spawn(async move {
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::debug!(pod = %name, error = %e, "updating the PodScheduled condition failed");
        }
    });
}
