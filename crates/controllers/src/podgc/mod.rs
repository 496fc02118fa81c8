//! The pod garbage collector, as upstream's podgc controller:
//!
//! - terminated pods (Succeeded or Failed) above `--terminated-pod-gc-threshold` are
//!   deleted, evicted ones first, then oldest first (0 turns this off);
//! - orphaned pods, bound to a node that no longer exists, are marked Failed with a
//!   `DisruptionTarget` condition ("PodGC: node no longer exists") and force-deleted, once a
//!   read of the node from the apiserver confirms it is gone (the node informer may lag);
//! - unscheduled pods that are terminating are force-deleted (no kubelet will finish them).
//!
//! Work is driven by the informers: a pod turning terminal queues a threshold check, a pod
//! on an unknown node or a deleted node's pods queue an orphan check.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::Context;

/// What the queue holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Work {
    /// Check the number of terminated pods against the threshold.
    Terminated,
    /// Check one pod for being orphaned or unscheduled and terminating.
    Pod(ObjectKey),
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Whether a pod is Succeeded or Failed.
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn is_evicted(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// Which terminated pods go so that at most `threshold` stay: evicted ones first, then the
/// oldest.
pub fn over_threshold(mut terminated: Vec<Arc<Pod>>, threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 || terminated.len() <= threshold {
        return Vec::new();
    }
    let excess = terminated.len() - threshold;
    terminated.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                !is_evicted(p),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.namespace.clone(),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    terminated.truncate(excess);
    terminated
}

struct Shared {
    client: kube::Client,
    threshold: usize,
    pods: Store<Pod>,
    nodes: Store<Node>,
}

async fn force_delete(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Marks a pod Failed (if it is not finished) with a DisruptionTarget condition, then
/// force-deletes it.
async fn fail_and_delete(
    client: &kube::Client,
    pod: &Pod,
    message: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conditions.iter().any(|c| c.type_ == "DisruptionTarget") {
        let now = Timestamp::now();
        conditions.push(PodCondition {
            type_: "DisruptionTarget".to_owned(),
            status: "True".to_owned(),
            reason: Some("DeletionByPodGC".to_owned()),
            message: Some(message.to_owned()),
            last_transition_time: Some(Time(
                Timestamp::from_second(now.as_second()).unwrap_or(now),
            )),
            ..PodCondition::default()
        });
    }
    let mut status = serde_json::json!({ "conditions": conditions });
    if !is_terminated(pod) {
        status["phase"] = serde_json::json!("Failed");
    }
    match api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    }
    force_delete(client, pod).await
}

async fn sync(s: &Shared, work: Work) -> Result<Option<std::time::Duration>, kube::Error> {
    match work {
        Work::Terminated => {
            let terminated = s.pods.filter(is_terminated);
            let doomed = over_threshold(terminated, s.threshold);
            if !doomed.is_empty() {
                tracing::info!(
                    count = doomed.len(),
                    threshold = s.threshold,
                    "garbage collecting terminated pods"
                );
            }
            let results =
                futures::future::join_all(doomed.iter().map(|p| force_delete(&s.client, p))).await;
            results.into_iter().collect::<Result<Vec<_>, _>>()?;
            Ok(None)
        }
        Work::Pod(key) => {
            let Some(pod) = s.pods.get(&key) else {
                return Ok(None);
            };
            let node = node_name(&pod);
            if node.is_empty() {
                if pod.metadata.deletion_timestamp.is_some() {
                    tracing::info!(pod = %key, "force-deleting an unscheduled terminating pod");
                    force_delete(&s.client, &pod).await?;
                }
                return Ok(None);
            }
            if s.nodes.get(&ObjectKey::cluster(node)).is_some() {
                return Ok(None);
            }
            let nodes: Api<Node> = Api::all(s.client.clone());
            if nodes.get_opt(node).await?.is_some() {
                return Ok(None);
            }
            tracing::info!(pod = %key, node, "deleting a pod whose node is gone");
            fail_and_delete(&s.client, &pod, "PodGC: node no longer exists").await?;
            Ok(None)
        }
    }
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let queue: Queue<Work> = Queue::new();
    let threshold = ctx.options.terminated_pod_gc_threshold;
    let (q, node_store) = (queue.clone(), nodes.store());
    pods.on_change(move |c: &Change<'_, Pod>| {
        if matches!(c, Change::Deleted(_)) {
            return;
        }
        let pod = c.object();
        if threshold > 0 && is_terminated(pod) && !c.old().is_some_and(|o| is_terminated(o)) {
            q.add(Work::Terminated);
        }
        let node = node_name(pod);
        let unscheduled_terminating = node.is_empty() && pod.metadata.deletion_timestamp.is_some();
        let orphan = !node.is_empty() && node_store.get(&ObjectKey::cluster(node)).is_none();
        if unscheduled_terminating || orphan {
            q.add(Work::Pod(ObjectKey::of(pod.as_ref())));
        }
    });
    let (q, pod_store) = (queue.clone(), pods.store());
    nodes.on_change(move |c: &Change<'_, Node>| {
        if let Change::Deleted(node) = c {
            let name = node.name_any();
            for pod in pod_store.filter(|p| node_name(p) == name) {
                q.add(Work::Pod(ObjectKey::of(pod.as_ref())));
            }
        }
    });
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        threshold,
        pods: pods.store(),
        nodes: nodes.store(),
    });
    ctx.run_workers("podgc", queue, move |work: Work| {
        let s = shared.clone();
        async move { sync(&s, work).await }
    })
}

#[cfg(test)]
mod tests;
