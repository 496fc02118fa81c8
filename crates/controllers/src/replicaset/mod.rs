//! The ReplicaSet and ReplicationController controllers, as upstream's
//! `pkg/controller/replicaset`: one loop, two adapters ([`Kind`] for `apps/v1` ReplicaSet
//! with a label selector and `v1` ReplicationController with a map selector). Each sync
//! claims the active pods the object selects (adopting orphans, releasing pods that no
//! longer match), creates or deletes pods until `replicas` are active — waiting on
//! [`expectations`] so a stale cache never doubles a creation — and writes the status.
//!
//! [`pods`] and [`expectations`] are shared with the other pod-owning controllers.

pub mod expectations;
pub mod pods;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::informer::Object;
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::util::{
    controller_of, controller_ref, is_pod_active, is_pod_available, is_pod_ready,
    map_selector_matches, pod_ready_since, selector_matches,
};
use crate::Context;
use expectations::Expectations;
use pods::Owner;

/// Most pods created or deleted in one sync (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// What a sync can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The status could not be encoded or decoded.
    #[error("status: {0}")]
    Json(#[from] serde_json::Error),
}

/// A ReplicaSet-like kind the controller runs over.
pub trait Kind: Object + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> {
    /// The queue's name in logs.
    const QUEUE: &'static str;
    /// The event source (`replicaset-controller`, `replication-controller`).
    const COMPONENT: &'static str;
    /// Whether the object's selector selects `labels`.
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool;
    /// `spec.replicas` (default 1).
    fn replicas(&self) -> i32;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// `spec.template`.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The status, read as a ReplicaSet status (both kinds' statuses have the same fields).
    fn rs_status(&self) -> ReplicaSetStatus;
}

impl Kind for ReplicaSet {
    const QUEUE: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        let sel = &self.spec.selector;
        // An empty selector matches nothing for a ReplicaSet (upstream refuses to sync it).
        if sel.match_labels.is_none() && sel.match_expressions.is_none() {
            return false;
        }
        selector_matches(Some(sel), labels)
    }
    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.min_ready_seconds.unwrap_or(0)
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.template.as_ref()
    }
    fn rs_status(&self) -> ReplicaSetStatus {
        self.status.clone().unwrap_or_default()
    }
}

impl Kind for ReplicationController {
    const QUEUE: &'static str = "replicationcontroller";
    const COMPONENT: &'static str = "replication-controller";
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        map_selector_matches(self.spec.as_ref().and_then(|s| s.selector.as_ref()), labels)
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn rs_status(&self) -> ReplicaSetStatus {
        self.status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }
}

/// Registers the ReplicaSet controller's handlers and returns its workers.
pub fn start_replicasets(ctx: &Context) -> BoxFuture<'static, ()> {
    start::<ReplicaSet>(ctx)
}

/// Registers the ReplicationController controller's handlers and returns its workers.
pub fn start_replication_controllers(ctx: &Context) -> BoxFuture<'static, ()> {
    start::<ReplicationController>(ctx)
}

struct Controller<K> {
    client: kube::Client,
    owners: Store<K>,
    pods: Store<Pod>,
    queue: Queue<ObjectKey>,
    expectations: Expectations,
    recorder: Recorder,
}

fn start<K: Kind>(ctx: &Context) -> BoxFuture<'static, ()> {
    let owners = ctx.informers.get::<K>();
    let pods = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller::<K> {
        client: ctx.client.clone(),
        owners: owners.store(),
        pods: pods.store(),
        queue: Queue::new(),
        expectations: Expectations::new(),
        recorder: ctx.recorder(K::COMPONENT),
    });
    let h = c.clone();
    owners.on_change(move |change: &Change<'_, K>| {
        let key = ObjectKey::of(change.object().as_ref());
        if matches!(change, Change::Deleted(_)) {
            h.expectations.forget(&key);
        }
        h.queue.add(key);
    });
    let h = c.clone();
    pods.on_change(move |change: &Change<'_, Pod>| h.pod_changed(change));
    let queue = c.queue.clone();
    ctx.run_workers(K::QUEUE, queue, move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
}

impl<K: Kind> Controller<K> {
    /// The owner `pod`'s controller reference names, if it is one of ours and exists.
    fn owner_of(&self, pod: &Pod) -> Option<Arc<K>> {
        let r = controller_of(pod).filter(|r| r.kind == K::kind(&()))?;
        let owner = self
            .owners
            .get_in(&pod.namespace().unwrap_or_default(), &r.name)?;
        (owner.uid().as_deref() == Some(r.uid.as_str())).then_some(owner)
    }

    fn enqueue_selecting(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        for o in self
            .owners
            .filter_namespace(&ns, |o| o.selects(pod.labels()))
        {
            self.queue.add(ObjectKey::of(o.as_ref()));
        }
    }

    fn pod_changed(&self, change: &Change<'_, Pod>) {
        match change {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_gone(pod);
                }
                if let Some(owner) = self.owner_of(pod) {
                    let key = ObjectKey::of(owner.as_ref());
                    self.expectations.creation_observed(&key);
                    self.queue.add(key);
                } else if controller_of(pod.as_ref()).is_none() {
                    self.enqueue_selecting(pod);
                }
            }
            Change::Updated { old, new } => {
                if new.metadata.deletion_timestamp.is_some()
                    && old.metadata.deletion_timestamp.is_none()
                {
                    self.pod_gone(new);
                    if controller_of(old.as_ref()) != controller_of(new.as_ref()) {
                        self.pod_gone(old);
                    }
                    return;
                }
                if controller_of(old.as_ref()) != controller_of(new.as_ref()) {
                    if let Some(owner) = self.owner_of(old) {
                        self.queue.add(ObjectKey::of(owner.as_ref()));
                    }
                }
                if let Some(owner) = self.owner_of(new) {
                    self.queue.add(ObjectKey::of(owner.as_ref()));
                } else if controller_of(new.as_ref()).is_none()
                    && (old.labels() != new.labels()
                        || controller_of(old.as_ref()) != controller_of(new.as_ref()))
                {
                    self.enqueue_selecting(new);
                }
            }
            Change::Deleted(pod) => self.pod_gone(pod),
        }
    }

    fn pod_gone(&self, pod: &Pod) {
        if let Some(owner) = self.owner_of(pod) {
            let key = ObjectKey::of(owner.as_ref());
            self.expectations
                .deletion_observed(&key, &pods::pod_key(pod));
            self.queue.add(key);
        }
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(owner) = self.owners.get(key) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let satisfied = self.expectations.satisfied(key);
        let active = self.pods.filter_namespace(&key.namespace, is_pod_active);
        let pods = self.claim(&owner, active).await?;
        let mut manage_err = None;
        let mut diff = 0;
        if satisfied && owner.meta().deletion_timestamp.is_none() {
            diff = pods.len() as i64 - i64::from(owner.replicas());
            manage_err = self.manage(&owner, key, &pods).await.err();
        }
        let requeue = self
            .write_status(&owner, &pods, manage_err.as_ref(), diff)
            .await?;
        match manage_err {
            Some(e) => Err(e),
            None => Ok(requeue),
        }
    }

    async fn claim(&self, owner: &Arc<K>, active: Vec<Arc<Pod>>) -> Result<Vec<Arc<Pod>>, Error> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &owner.namespace().unwrap_or_default());
        let owners: Api<K> =
            Api::namespaced(self.client.clone(), &owner.namespace().unwrap_or_default());
        let (name, uid) = (owner.name_any(), owner.uid());
        let can_adopt = move || -> BoxFuture<'static, bool> {
            let (owners, name, uid) = (owners.clone(), name.clone(), uid.clone());
            Box::pin(async move {
                matches!(owners.get(&name).await, Ok(o) if o.uid() == uid && o.meta().deletion_timestamp.is_none())
            })
        };
        let who = Owner {
            reference: controller_ref(owner.as_ref()),
            deleting: owner.meta().deletion_timestamp.is_some(),
            can_adopt: &can_adopt,
        };
        Ok(pods::claim(&api, &who, |p: &Pod| owner.selects(p.labels()), active).await?)
    }

    /// Creates or deletes pods toward `replicas`, as upstream's `manageReplicas`.
    async fn manage(
        &self,
        owner: &Arc<K>,
        key: &ObjectKey,
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let want = usize::try_from(owner.replicas()).unwrap_or(0);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        if pods.len() < want {
            let Some(template) = owner.template() else {
                return Ok(());
            };
            let n = (want - pods.len()).min(BURST_REPLICAS);
            self.expectations.expect_creations(key, n);
            let pod = pods::pod_from_template(
                template,
                &key.namespace,
                &owner.name_any(),
                controller_ref(owner.as_ref()),
            );
            let (created, err) = pods::slow_start(n, |_| {
                let (api, pod) = (api.clone(), pod.clone());
                async move {
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(p) => {
                            self.recorder.event(
                                owner.as_ref(),
                                EventType::Normal,
                                "SuccessfulCreate",
                                format!("Created pod: {}", p.name_any()),
                            );
                            Ok(())
                        }
                        Err(e) => {
                            self.recorder.event(
                                owner.as_ref(),
                                EventType::Warning,
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            Err(e)
                        }
                    }
                }
            })
            .await;
            // Creations that failed or were skipped will never be observed.
            for _ in created..n {
                self.expectations.creation_observed(key);
            }
            if let Some(e) = err {
                // A namespace being deleted refuses new pods; that is no failure of ours.
                if matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("terminat"))
                {
                    return Ok(());
                }
                return Err(e.into());
            }
        } else if pods.len() > want {
            let n = (pods.len() - want).min(BURST_REPLICAS);
            let mut victims = pods.to_vec();
            pods::sort_for_deletion(&mut victims, pods);
            victims.truncate(n);
            self.expectations
                .expect_deletions(key, victims.iter().map(|p| pods::pod_key(p)).collect());
            let results = futures::future::join_all(victims.iter().map(|p| {
                let api = api.clone();
                async move {
                    let name = p.name_any();
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {
                            self.recorder.event(
                                owner.as_ref(),
                                EventType::Normal,
                                "SuccessfulDelete",
                                format!("Deleted pod: {name}"),
                            );
                            Ok(())
                        }
                        Err(e) => {
                            self.expectations.deletion_observed(key, &pods::pod_key(p));
                            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                                return Ok(());
                            }
                            self.recorder.event(
                                owner.as_ref(),
                                EventType::Warning,
                                "FailedDelete",
                                format!("Error deleting: {e}"),
                            );
                            Err(e)
                        }
                    }
                }
            }))
            .await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Writes the status (upstream's `calculateStatus` and `updateReplicaSetStatus`);
    /// answers when to look again for pods that will become available.
    async fn write_status(
        &self,
        owner: &Arc<K>,
        pods: &[Arc<Pod>],
        manage_err: Option<&Error>,
        diff: i64,
    ) -> Result<Option<Duration>, Error> {
        let old = owner.rs_status();
        let now = Timestamp::now();
        let min_ready = owner.min_ready_seconds();
        let template_labels = owner
            .template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let mut status = ReplicaSetStatus {
            replicas: count(&|_| true),
            fully_labeled_replicas: Some(count(&|p| {
                template_labels
                    .iter()
                    .all(|(k, v)| p.labels().get(k) == Some(v))
            })),
            ready_replicas: Some(count(&is_pod_ready)),
            available_replicas: Some(count(&|p| is_pod_available(p, min_ready, now))),
            observed_generation: owner.meta().generation,
            conditions: old.conditions.clone(),
            terminating_replicas: old.terminating_replicas,
        };
        let has_failure = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_.as_deref() == Some("ReplicaFailure"));
        match manage_err {
            Some(e) if !has_failure => {
                let reason = if diff < 0 {
                    "FailedCreate"
                } else {
                    "FailedDelete"
                };
                status
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(ReplicaSetCondition {
                        type_: Some("ReplicaFailure".into()),
                        status: Some("True".into()),
                        reason: Some(reason.into()),
                        message: Some(e.to_string()),
                        last_transition_time: Some(tug_runtime::now()),
                    });
            }
            None if has_failure => {
                if let Some(cs) = status.conditions.as_mut() {
                    cs.retain(|c| c.type_.as_deref() != Some("ReplicaFailure"));
                }
            }
            _ => {}
        }
        if status.conditions.as_ref().is_some_and(Vec::is_empty) {
            status.conditions = None;
        }
        if status != old {
            let mut body = serde_json::to_value(&status)?;
            if status.conditions.is_none() {
                body["conditions"] = serde_json::Value::Null;
            }
            let api: Api<K> =
                Api::namespaced(self.client.clone(), &owner.namespace().unwrap_or_default());
            api.patch_status(
                &owner.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": body })),
            )
            .await?;
        }
        // Look again when the next ready pod has been ready for minReadySeconds.
        if min_ready > 0 && manage_err.is_none() {
            let wait = pods
                .iter()
                .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready, now))
                .filter_map(|p| pod_ready_since(p))
                .map(|since| i64::from(min_ready) - (now.as_second() - since.as_second()))
                .min();
            if let Some(secs) = wait {
                return Ok(Some(Duration::from_secs(
                    u64::try_from(secs.max(1)).unwrap_or(1),
                )));
            }
        }
        Ok(None)
    }
}
