//! The StatefulSet controller, as upstream's `pkg/controller/statefulset`: pods named
//! `<set>-<ordinal>` with a stable hostname (and the set's serviceName as subdomain), their
//! PersistentVolumeClaims `<template>-<set>-<ordinal>` made before them and kept after them;
//! OrderedReady creates one ordinal at a time, each only when every lower one is Running and
//! Ready, and removes from the highest; Parallel does all at once. Templates are kept as
//! ControllerRevisions ([`crate::history`]); RollingUpdate replaces pods from the highest
//! ordinal down to the partition, one at a time; OnDelete only on deletion.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::history::{self, CONTROLLER_REVISION_HASH};
use crate::replicaset::pods::{self, Owner};
use crate::util::{
    controller_of, controller_ref, is_pod_available, is_pod_ready, selector_matches,
};
use crate::Context;

/// The label with a pod's name, so a Service can select one pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What a sync can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A status could not be encoded.
    #[error("status: {0}")]
    Json(#[from] serde_json::Error),
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let sets = ctx.informers.get::<StatefulSet>();
    let pods = ctx.informers.get::<Pod>();
    let revisions = ctx.informers.get::<ControllerRevision>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        sets: sets.store(),
        pods: pods.store(),
        revisions: revisions.store(),
        queue: Queue::new(),
        recorder: ctx.recorder("statefulset-controller"),
    });
    sets.on_change(crate::util::enqueue_self(&c.queue));
    let h = c.clone();
    pods.on_change(move |change: &Change<'_, Pod>| {
        if let Some(old) = change.old() {
            h.enqueue_for(old);
        }
        h.enqueue_for(change.object());
    });
    let queue = c.queue.clone();
    ctx.run_workers("statefulset", queue, move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
}

struct Controller {
    client: kube::Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    queue: Queue<ObjectKey>,
    recorder: Recorder,
}

/// The ordinal in a pod's name, if it is `<set>-<n>`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.starts_with('+') || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok().filter(|n: &i32| *n >= 0)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.labels()
        .get(CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && is_pod_ready(pod)
}

/// The name of a claim for ordinal `ord`.
pub fn claim_name(template: &str, set: &str, ord: i32) -> String {
    format!("{template}-{set}-{ord}")
}

/// The pod of ordinal `ord` made from `template` at revision `revision` (upstream's
/// `newVersionedStatefulSetPod`).
fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ord: i32) -> Pod {
    let set_name = set.name_any();
    let name = format!("{set_name}-{ord}");
    let mut pod = pods::pod_from_template(
        template,
        &set.namespace().unwrap_or_default(),
        &set_name,
        controller_ref(set),
    );
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.to_owned(), name.clone());
    labels.insert(POD_INDEX_LABEL.to_owned(), ord.to_string());
    labels.insert(CONTROLLER_REVISION_HASH.to_owned(), revision.to_owned());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    for claim in set.spec.volume_claim_templates.iter().flatten() {
        let tname = claim.name_any();
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != tname);
        volumes.push(Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&tname, &set_name, ord),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    pod
}

impl Controller {
    fn enqueue_for(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        match controller_of(pod) {
            Some(r) if r.kind == "StatefulSet" => {
                self.queue.add(ObjectKey::new(ns, r.name.clone()))
            }
            Some(_) => {}
            None => {
                for s in self.sets.filter_namespace(&ns, |s| {
                    selector_matches(Some(&s.spec.selector), pod.labels())
                }) {
                    self.queue.add(ObjectKey::of(s.as_ref()));
                }
            }
        }
    }

    fn event(&self, set: &StatefulSet, kind: EventType, reason: &str, msg: String) {
        self.recorder.event(set, kind, reason, msg);
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(set) = self.sets.get(key) else {
            return Ok(None);
        };
        let ns = key.namespace.clone();
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let set_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
        let (name, uid) = (set.name_any(), set.uid());
        let can_adopt = move || -> BoxFuture<'static, bool> {
            let (api, name, uid) = (set_api.clone(), name.clone(), uid.clone());
            Box::pin(async move {
                matches!(api.get(&name).await, Ok(o) if o.uid() == uid && o.metadata.deletion_timestamp.is_none())
            })
        };
        let owner = Owner {
            reference: controller_ref(set.as_ref()),
            deleting: set.metadata.deletion_timestamp.is_some(),
            can_adopt: &can_adopt,
        };
        let set_name = set.name_any();
        let selector = set.spec.selector.clone();
        let claimed = pods::claim(
            &pod_api,
            &owner,
            |p: &Pod| {
                selector_matches(Some(&selector), p.labels())
                    && ordinal_of(&set_name, &p.name_any()).is_some()
            },
            self.pods.list_namespace(&ns),
        )
        .await?;
        let revisions = history::owned(set.as_ref(), self.revisions.list_namespace(&ns));
        let status = set.status.clone().unwrap_or_default();
        let hist = history::sync(
            &self.client,
            set.as_ref(),
            &set.spec.template,
            revisions,
            status.collision_count,
        )
        .await?;
        let update = hist.update.clone();
        let current = status
            .current_revision
            .as_ref()
            .and_then(|c| hist.revisions.iter().find(|r| &r.name_any() == c))
            .cloned()
            .unwrap_or_else(|| update.clone());
        let mut requeue = None;
        if set.metadata.deletion_timestamp.is_none() {
            requeue = self.manage(&set, &claimed, &current, &update).await?;
        }
        self.write_status(&set, &claimed, &current, &update, hist.collision_count)
            .await?;
        let mut live: HashSet<String> = claimed
            .iter()
            .filter_map(|p| revision_of(p).map(str::to_owned))
            .collect();
        live.insert(current.name_any());
        live.insert(update.name_any());
        history::truncate(
            &self.client,
            &hist.revisions,
            &live,
            set.spec.revision_history_limit,
        )
        .await?;
        Ok(requeue)
    }

    /// Creates, deletes and updates pods (upstream's `updateStatefulSet`).
    async fn manage(
        &self,
        set: &Arc<StatefulSet>,
        claimed: &[Arc<Pod>],
        current: &ControllerRevision,
        update: &ControllerRevision,
    ) -> Result<Option<Duration>, Error> {
        let ns = set.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let set_name = set.name_any();
        let start = set
            .spec
            .ordinals
            .as_ref()
            .and_then(|o| o.start)
            .unwrap_or(0);
        let replicas = set.spec.replicas.unwrap_or(1);
        let monotonic = set.spec.pod_management_policy.as_deref() != Some("Parallel");
        let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
        let strategy = set.spec.update_strategy.as_ref();
        let rolling = strategy
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        let partition = strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let status = set.status.clone().unwrap_or_default();
        let now = Timestamp::now();
        let mut slots: Vec<Option<Arc<Pod>>> = vec![None; usize::try_from(replicas).unwrap_or(0)];
        let mut condemned: Vec<(i32, Arc<Pod>)> = Vec::new();
        for p in claimed {
            let Some(ord) = ordinal_of(&set_name, &p.name_any()) else {
                continue;
            };
            if ord >= start && ord < start + replicas {
                slots[usize::try_from(ord - start).unwrap_or(0)] = Some(p.clone());
            } else {
                condemned.push((ord, p.clone()));
            }
        }
        condemned.sort_by_key(|(o, _)| *o);
        let current_template =
            history::template_of(current).unwrap_or_else(|| set.spec.template.clone());
        // Pods below the partition (or, without rollingUpdate settings, below currentReplicas)
        // are made at the current revision.
        let current_below = if strategy.and_then(|s| s.rolling_update.as_ref()).is_some() {
            start + partition
        } else {
            start + status.current_replicas.unwrap_or(0)
        };
        let mut waiting = None;
        for (i, slot) in slots.iter().enumerate() {
            let ord = start + i32::try_from(i).unwrap_or(0);
            match slot {
                Some(p)
                    if matches!(phase(p), Some("Failed" | "Succeeded"))
                        && !crate::util::is_deleting(p.as_ref()) =>
                {
                    self.delete_pod(set, &api, p).await?;
                    if monotonic {
                        return Ok(None);
                    }
                }
                Some(p) => {
                    if monotonic && (crate::util::is_deleting(p.as_ref()) || !running_and_ready(p))
                    {
                        return Ok(None);
                    }
                    if monotonic && !is_pod_available(p, min_ready, now) {
                        waiting = Some(Duration::from_secs(1));
                        return Ok(waiting);
                    }
                }
                None => {
                    let (template, revision) = if rolling && ord < current_below {
                        (&current_template, current.name_any())
                    } else {
                        (&set.spec.template, update.name_any())
                    };
                    self.create_claims(set, ord).await?;
                    let pod = new_pod(set, template, &revision, ord);
                    let pname = pod.name_any();
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(_) => self.event(
                            set,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("create Pod {pname} in StatefulSet {set_name} successful"),
                        ),
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => {
                            self.event(set, EventType::Warning, "FailedCreate",
                                format!("create Pod {pname} in StatefulSet {set_name} failed error: {e}"));
                            return Err(e.into());
                        }
                    }
                    if monotonic {
                        return Ok(None);
                    }
                }
            }
        }
        // Scale down from the highest ordinal.
        for (_, p) in condemned.iter().rev() {
            if crate::util::is_deleting(p.as_ref()) {
                if monotonic {
                    return Ok(None);
                }
                continue;
            }
            self.delete_pod(set, &api, p).await?;
            if monotonic {
                return Ok(None);
            }
        }
        if !rolling {
            return Ok(waiting);
        }
        // Rolling update: highest ordinal first, down to the partition, one at a time.
        let update_name = update.name_any();
        for (i, slot) in slots.iter().enumerate().rev() {
            let ord = start + i32::try_from(i).unwrap_or(0);
            if ord < start + partition {
                break;
            }
            let Some(p) = slot else { return Ok(None) };
            if revision_of(p) != Some(update_name.as_str()) {
                if !crate::util::is_deleting(p.as_ref()) {
                    self.delete_pod(set, &api, p).await?;
                }
                return Ok(None);
            }
            if !running_and_ready(p) {
                return Ok(None);
            }
        }
        Ok(waiting)
    }

    async fn delete_pod(&self, set: &StatefulSet, api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
        let (pname, set_name) = (pod.name_any(), set.name_any());
        match api.delete(&pname, &DeleteParams::default()).await {
            Ok(_) => {
                self.event(
                    set,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("delete Pod {pname} in StatefulSet {set_name} successful"),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => {
                self.event(
                    set,
                    EventType::Warning,
                    "FailedDelete",
                    format!("delete Pod {pname} in StatefulSet {set_name} failed error: {e}"),
                );
                Err(e.into())
            }
        }
    }

    /// Creates the claims of ordinal `ord` that do not exist yet (kept when the pod goes:
    /// the retention policy defaults to Retain).
    async fn create_claims(&self, set: &StatefulSet, ord: i32) -> Result<(), Error> {
        let ns = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let set_name = set.name_any();
        for template in set.spec.volume_claim_templates.iter().flatten() {
            // An existing claim answers 409, which is fine: no read first.
            let name = claim_name(&template.name_any(), &set_name, ord);
            let mut labels = template.labels().clone();
            labels.extend(set.spec.selector.match_labels.clone().unwrap_or_default());
            let mut claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: template.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                spec: template.spec.clone(),
                status: None,
            };
            let policy = set.spec.persistent_volume_claim_retention_policy.as_ref();
            if policy.and_then(|p| p.when_deleted.as_deref()) == Some("Delete") {
                let mut r = controller_ref(set);
                r.controller = Some(false);
                claim.metadata.owner_references = Some(vec![r]);
            }
            let pod = format!("{set_name}-{ord}");
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => self.event(
                    set,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("create Claim {name} Pod {pod} in StatefulSet {set_name} success"),
                ),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    self.event(set, EventType::Warning, "FailedCreate",
                        format!("create Claim {name} for Pod {pod} in StatefulSet {set_name} failed error: {e}"));
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        set: &StatefulSet,
        claimed: &[Arc<Pod>],
        current: &ControllerRevision,
        update: &ControllerRevision,
        collision_count: Option<i32>,
    ) -> Result<(), Error> {
        let set_name = set.name_any();
        let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
        let now = Timestamp::now();
        let (cur, upd) = (current.name_any(), update.name_any());
        let pods: Vec<&Arc<Pod>> = claimed
            .iter()
            .filter(|p| {
                ordinal_of(&set_name, &p.name_any()).is_some()
                    && !crate::util::is_deleting(p.as_ref())
            })
            .collect();
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(0)
        };
        let old = set.status.clone().unwrap_or_default();
        let mut status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            replicas: count(&|_| true),
            ready_replicas: Some(count(&|p| running_and_ready(p))),
            available_replicas: Some(count(&|p| {
                running_and_ready(p) && is_pod_available(p, min_ready, now)
            })),
            current_replicas: Some(count(&|p| revision_of(p) == Some(cur.as_str()))),
            updated_replicas: Some(count(&|p| revision_of(p) == Some(upd.as_str()))),
            current_revision: Some(cur.clone()),
            update_revision: Some(upd.clone()),
            collision_count,
            conditions: old.conditions.clone(),
        };
        // A finished rolling update makes the update revision current.
        let replicas = set.spec.replicas.unwrap_or(1);
        if status.updated_replicas == Some(replicas)
            && status.ready_replicas == Some(replicas)
            && status.replicas == replicas
        {
            status.current_revision = Some(upd);
            status.current_replicas = status.updated_replicas;
        }
        if status == old {
            return Ok(());
        }
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        api.patch_status(
            &set_name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_as_upstream() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(claim_name("data", "web", 2), "data-web-2");
    }
}
