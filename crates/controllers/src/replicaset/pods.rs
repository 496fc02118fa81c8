//! What every pod-owning controller shares (upstream's `controller_utils.go` and
//! `controller_ref_manager.go`): pods made from a template with a controller reference,
//! creation in slow-start batches, adoption of matching orphans and release of owned objects
//! that no longer match, and the order in which surplus pods are deleted.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::util::{controller_of, is_pod_ready, pod_ready_since};

/// The first batch of a slow start (upstream's `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// The annotation that makes a pod cheaper or dearer to delete on scale-down.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A pod made from `template` in `namespace`, named `<prefix>-<random>` by the apiserver and
/// controlled by `owner`, as upstream's `GetPodFromTemplate`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    prefix: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            namespace: Some(namespace.to_owned()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Runs `count` calls of `create` in batches of 1, 2, 4, … (each batch concurrently), and
/// stops at the first batch with a failure, as upstream's `slowStartBatch`. Answers how many
/// succeeded and the first error.
pub async fn slow_start<F, Fut, E>(count: usize, create: F) -> (usize, Option<E>)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut done = 0;
    let mut batch = count.min(SLOW_START_INITIAL_BATCH);
    while batch > 0 {
        let results = futures::future::join_all((done..done + batch).map(&create)).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => done += 1,
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if first_err.is_some() {
            return (done, first_err);
        }
        batch = (2 * batch).min(count - done);
    }
    (done, None)
}

/// The owner an object is claimed for.
pub struct Owner<'a> {
    /// A controller reference to the owner.
    pub reference: OwnerReference,
    /// Whether the owner is being deleted (it then adopts nothing and releases nothing).
    pub deleting: bool,
    /// Re-reads the owner before the first adoption: whether it still exists with this uid
    /// and is not being deleted (upstream's `RecheckDeletionTimestamp`).
    pub can_adopt: &'a (dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync),
}

/// The objects of `candidates` that `owner` controls after adopting matching orphans and
/// releasing owned objects that no longer match (upstream's `ClaimObject`): owned by
/// `owner` and matching, or orphans adopted now.
pub async fn claim<K>(
    api: &Api<K>,
    owner: &Owner<'_>,
    matches: impl Fn(&K) -> bool,
    candidates: Vec<Arc<K>>,
) -> Result<Vec<Arc<K>>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut claimed = Vec::new();
    let mut adoptable: Option<bool> = None;
    for obj in candidates {
        match controller_of(obj.as_ref()) {
            Some(r) if r.uid == owner.reference.uid => {
                if matches(&obj) || owner.deleting {
                    claimed.push(obj);
                } else {
                    release(api, &obj, &owner.reference.uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if owner.deleting || obj.meta().deletion_timestamp.is_some() || !matches(&obj) {
                    continue;
                }
                let ok = match adoptable {
                    Some(ok) => ok,
                    None => {
                        let ok = (owner.can_adopt)().await;
                        adoptable = Some(ok);
                        ok
                    }
                };
                if !ok {
                    continue;
                }
                if let Some(adopted) = adopt(api, &obj, &owner.reference).await? {
                    claimed.push(Arc::new(adopted));
                }
            }
        }
    }
    Ok(claimed)
}

/// Whether an error means the object is gone or cannot take the change (upstream ignores
/// both when adopting or releasing).
fn gone_or_invalid(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 422)
}

async fn adopt<K>(api: &Api<K>, obj: &K, owner: &OwnerReference) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "metadata": { "ownerReferences": [owner], "uid": obj.uid() }
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(e) if gone_or_invalid(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn release<K>(api: &Api<K>, obj: &K, owner_uid: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "metadata": {
            "ownerReferences": [{ "$patch": "delete", "uid": owner_uid }],
            "uid": obj.uid(),
        }
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if gone_or_invalid(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

fn deletion_cost(pod: &Pod) -> i64 {
    pod.annotations()
        .get(POD_DELETION_COST)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// floor(log2(seconds since `t`)), upstream's logarithmic bucketing of ages.
fn log_age(t: Option<Timestamp>, now: Timestamp) -> i64 {
    let Some(t) = t else { return i64::MAX };
    let secs = (now.as_second() - t.as_second()).max(0);
    if secs <= 0 {
        return -1;
    }
    i64::from(63 - secs.leading_zeros()) // floor(log2)
}

/// Sorts `pods` so the ones to delete first come first, as upstream's
/// `ActivePodsWithRanks` with logarithmic scale-down: unassigned before assigned, Pending
/// before Unknown before Running, not ready before ready, more pods of the set on the same
/// node first, lower deletion cost first, ready for less time first, more restarts first,
/// newer first.
pub fn sort_for_deletion(pods: &mut [Arc<Pod>], related: &[Arc<Pod>]) {
    let mut per_node: HashMap<String, i64> = HashMap::new();
    for p in related {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *per_node.entry(n).or_default() += 1;
        }
    }
    let now = Timestamp::now();
    let rank = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| per_node.get(n))
            .copied()
            .unwrap_or(0)
    };
    pods.sort_by(|a, b| deletion_order(a, b, rank(a), rank(b), now));
}

fn deletion_order(a: &Pod, b: &Pod, rank_a: i64, rank_b: i64, now: Timestamp) -> Ordering {
    let assigned = |p: &Pod| p.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_pod_ready(a).cmp(&is_pod_ready(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| {
            if is_pod_ready(a) && is_pod_ready(b) {
                log_age(pod_ready_since(b), now).cmp(&log_age(pod_ready_since(a), now))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| log_age(created(b), now).cmp(&log_age(created(a), now)))
}

/// `namespace/name` of a pod, the key expectations track deletions by.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        })
    }

    #[test]
    fn deletes_unassigned_pending_unready_first() {
        let mut pods = vec![
            pod("running-ready", Some("n1"), "Running", true),
            pod("running-unready", Some("n2"), "Running", false),
            pod("pending", Some("n3"), "Pending", false),
            pod("unassigned", None, "Pending", false),
            pod("unknown", Some("n4"), "Unknown", false),
        ];
        let all = pods.clone();
        sort_for_deletion(&mut pods, &all);
        let names: Vec<_> = pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            [
                "unassigned",
                "pending",
                "unknown",
                "running-unready",
                "running-ready"
            ]
        );
    }

    #[test]
    fn doubled_up_nodes_lose_pods_first() {
        let mut pods = vec![
            pod("alone", Some("n1"), "Running", true),
            pod("twin-a", Some("n2"), "Running", true),
            pod("twin-b", Some("n2"), "Running", true),
        ];
        let all = pods.clone();
        sort_for_deletion(&mut pods, &all);
        assert_eq!(pods[2].name_any(), "alone");
    }

    #[tokio::test]
    async fn slow_start_doubles_and_stops_at_a_failure() {
        let calls = std::sync::Mutex::new(Vec::new());
        let (ok, err) = slow_start(10, |i| {
            calls.lock().unwrap_or_else(|e| e.into_inner()).push(i);
            async move {
                if i == 4 {
                    Err("boom")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        // batches 1, 2, 4: the third batch (3..7) has the failure; nothing after it runs.
        assert_eq!(ok, 6);
        assert_eq!(err, Some("boom"));
        assert_eq!(calls.lock().unwrap_or_else(|e| e.into_inner()).len(), 7);
    }
}
