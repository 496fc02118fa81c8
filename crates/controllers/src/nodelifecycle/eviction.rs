//! Taint eviction, as upstream's taint eviction controller: a pod on a node with NoExecute
//! taints is deleted at once if it does not tolerate them all, or once the shortest
//! `tolerationSeconds` of the tolerations it uses has passed since the taint was added.
//! Deleting only marks a pod on a node for deletion (its kubelet, if any, finishes it); its
//! controller replaces it since terminating pods do not count.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use tokio::time::Instant;
use tug_runtime::events::EventType;
use tug_runtime::ObjectKey;

use super::taints::{self, Verdict};
use super::Shared;

fn cancel(s: &Shared, pod: &Pod, key: &ObjectKey) {
    if s.evictions().remove(key).is_some() {
        s.eviction_events.event(
            pod,
            EventType::Normal,
            "TaintManagerEviction",
            format!("Cancelling deletion of Pod {key}"),
        );
    }
}

/// Adds the DisruptionTarget condition, then deletes the pod.
async fn evict(s: &Shared, pod: &Pod, key: &ObjectKey) -> Result<(), kube::Error> {
    s.evictions().remove(key);
    s.eviction_events.event(
        pod,
        EventType::Normal,
        "TaintManagerEviction",
        format!("Marking for deletion Pod {key}"),
    );
    let api: Api<Pod> = Api::namespaced(s.client.clone(), &key.namespace);
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|st| st.conditions.clone())
        .unwrap_or_default();
    if !conditions.iter().any(|c| c.type_ == "DisruptionTarget") {
        let now = Timestamp::now();
        conditions.push(PodCondition {
            type_: "DisruptionTarget".to_owned(),
            status: "True".to_owned(),
            reason: Some("DeletionByTaintManager".to_owned()),
            message: Some("Taint manager: deleting due to NoExecute taint".to_owned()),
            last_transition_time: Some(Time(
                Timestamp::from_second(now.as_second()).unwrap_or(now),
            )),
            ..PodCondition::default()
        });
        let patch = serde_json::json!({ "status": { "conditions": conditions } });
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&key.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Syncs one pod.
pub(super) async fn sync(s: &Shared, key: ObjectKey) -> Result<Option<Duration>, kube::Error> {
    let Some(pod) = s.pods.get(&key) else {
        s.evictions().remove(&key);
        return Ok(None);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        s.evictions().remove(&key);
        return Ok(None);
    }
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|sp| sp.node_name.clone())
        .unwrap_or_default();
    let Some(node) = s.nodes.get(&ObjectKey::cluster(&node_name)) else {
        return Ok(None);
    };
    let taints = taints::no_execute(&node);
    let now = Timestamp::now();
    match taints::verdict(&pod, &taints, now) {
        Verdict::Stay => cancel(s, &pod, &key),
        Verdict::Evict => evict(s, &pod, &key).await?,
        Verdict::EvictAt(at) => {
            let nanos = i128::from(at) * 1_000_000_000 - now.as_nanosecond();
            let wait = Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX));
            let fire = Instant::now() + wait;
            let mut pending = s.evictions();
            let current = pending.get(&key).copied();
            let armed = current.is_some_and(|t| t > Instant::now() && t <= fire);
            if !armed {
                pending.insert(key.clone(), fire);
                s.pod_queue.add_after(key.clone(), wait);
            }
        }
    }
    Ok(None)
}
