//! How the job controller changes a Job's pods: creating the ones it lacks (each index once
//! for Indexed Jobs, after the failure back-off), deleting surplus ones, and taking the
//! tracking finalizer off the ones it has counted. Creations and deletions are remembered
//! as expectations until the informer shows them.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::EventType;

use super::pods::{is_indexed, new_pod, pod_index, TRACKING_FINALIZER};
use super::{lock, Controller, Tally};
use crate::replicaset::pods::pod_key;
use crate::util::is_pod_ready;
use tug_runtime::ObjectKey;

impl Controller {
    /// Creates or deletes pods to bring the active ones to what the Job wants; answers
    /// (created, deleted, wait before creating more).
    pub(super) async fn manage(
        &self,
        job: &Arc<Job>,
        tally: &Tally,
        succeeded: i32,
        completed: &BTreeSet<i32>,
        failed_indexes: &BTreeSet<i32>,
        parallelism: i32,
    ) -> Result<(usize, usize, Option<Duration>), kube::Error> {
        let spec = job.spec.clone().unwrap_or_default();
        let active = tally.active.len();
        let parallelism = usize::try_from(parallelism).unwrap_or(0);
        // Indexes to run, or None for a non-indexed Job.
        let mut pending: Option<Vec<i32>> = None;
        let mut extra: Vec<Arc<Pod>> = Vec::new();
        let want = if is_indexed(job) {
            let completions = spec.completions.unwrap_or(0);
            let mut running: HashSet<i32> = HashSet::new();
            for p in &tally.active {
                match pod_index(p) {
                    Some(i)
                        if (0..completions).contains(&i)
                            && !completed.contains(&i)
                            && running.insert(i) => {}
                    // Duplicates, out of range, or already done.
                    _ => extra.push(p.clone()),
                }
            }
            let todo: Vec<i32> = (0..completions)
                .filter(|i| {
                    !completed.contains(i) && !failed_indexes.contains(i) && !running.contains(i)
                })
                .collect();
            let want = parallelism.min(running.len() + todo.len());
            pending = Some(todo);
            want + extra.len()
        } else {
            match spec.completions {
                Some(c) => parallelism.min(usize::try_from(c - succeeded).unwrap_or(0)),
                None if succeeded > 0 => active,
                None => parallelism,
            }
        };
        let mut deleted = 0;
        if active > want || !extra.is_empty() {
            let surplus = active.saturating_sub(want);
            let mut victims = extra.clone();
            let mut rest: Vec<Arc<Pod>> = tally
                .active
                .iter()
                .filter(|p| !extra.iter().any(|e| e.uid() == p.uid()))
                .cloned()
                .collect();
            // Not ready before ready, newest first, as upstream's ActivePods ordering.
            rest.sort_by_key(|p| {
                (
                    is_pod_ready(p),
                    std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
                )
            });
            victims.extend(rest.into_iter().take(surplus.saturating_sub(victims.len())));
            deleted = self.delete_pods(job, &victims).await.len();
        }
        let active_after = active - deleted;
        let target = want.saturating_sub(extra.len());
        if active_after >= target {
            return Ok((0, deleted, None));
        }
        if let Some(wait) = self.backoff_remaining(job) {
            return Ok((0, deleted, Some(wait)));
        }
        let n = target - active_after;
        let indexes: Vec<Option<i32>> = match pending {
            Some(todo) => todo.into_iter().take(n).map(Some).collect(),
            None => vec![None; n],
        };
        let key = ObjectKey::of(job.as_ref());
        self.expectations.raise(&key, indexes.len(), &[]);
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let mut created = 0;
        for index in indexes {
            match api
                .create(&PostParams::default(), &new_pod(job, index))
                .await
            {
                Ok(pod) => {
                    created += 1;
                    self.recorder.event(
                        job.as_ref(),
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod.name_any()),
                    );
                }
                Err(e) => {
                    // A failed creation will not be seen.
                    self.expectations.creation_observed(&key);
                    self.recorder.event(
                        job.as_ref(),
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    if matches!(&e, kube::Error::Api(s) if s.code == 403) {
                        // The namespace is terminating.
                        return Ok((created, deleted, None));
                    }
                    return Err(e);
                }
            }
        }
        Ok((created, deleted, None))
    }

    /// Deletes pods; for each one deleted, whether it stays a while (bound, so graceful).
    pub(super) async fn delete_pods(&self, job: &Arc<Job>, pods: &[Arc<Pod>]) -> Vec<bool> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let key = ObjectKey::of(job.as_ref());
        let mut out = Vec::new();
        for pod in pods {
            self.expectations.raise(&key, 0, &[pod_key(pod)]);
            match api
                .delete(&pod.name_any(), &DeleteParams::background())
                .await
            {
                Ok(either) => {
                    self.recorder.event(
                        job.as_ref(),
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", pod.name_any()),
                    );
                    out.push(either.is_left());
                }
                Err(e) => {
                    self.expectations.deletion_observed(&key, &pod_key(pod));
                    tracing::debug!(pod = %pod.name_any(), error = %e, "job: pod delete failed");
                }
            }
        }
        out
    }

    /// Takes the tracking finalizer off pods; the uids released (or gone).
    pub(super) async fn remove_finalizers(
        &self,
        pods: &[Arc<Pod>],
    ) -> Result<HashSet<String>, kube::Error> {
        let mut released = HashSet::new();
        for pod in pods {
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let kept: Vec<&String> = pod
                .finalizers()
                .iter()
                .filter(|f| *f != TRACKING_FINALIZER)
                .collect();
            let patch = serde_json::json!({"metadata": {
                "finalizers": kept,
                "resourceVersion": pod.metadata.resource_version,
            }});
            // Expected before the write, so an informer event that beats the answer still
            // clears it.
            let uid = pod.uid().unwrap_or_default();
            lock(&self.finalizer_removals).insert(uid.clone());
            match api
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    lock(&self.finalizer_removals).remove(&uid);
                    return Err(e);
                }
            }
            released.insert(uid);
        }
        Ok(released)
    }
}
