//! The deployment controller, as upstream's `pkg/controller/deployment`: a Deployment owns
//! ReplicaSets named `<deployment>-<pod-template-hash>`, one per template it has had; a sync
//! claims them, finds (or creates) the one matching the current template, and moves
//! replicas from the old ones to it — RollingUpdate within maxSurge/maxUnavailable, or
//! Recreate — or, when only `replicas` changed, scales them proportionally. It keeps the
//! revision annotations `kubectl rollout history/undo` read, the Progressing and Available
//! conditions `kubectl rollout status` reads, and revisionHistoryLimit old ReplicaSets.
//!
//! [`util`] holds the arithmetic; [`rollout`] the strategies.

pub mod rollout;
pub mod util;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::replicaset::pods::{self, Owner};
use crate::util::{controller_of, controller_ref, selector_matches};
use crate::Context;
use util::{reason, POD_TEMPLATE_HASH};

/// What a sync can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A status could not be encoded.
    #[error("status: {0}")]
    Json(#[from] serde_json::Error),
    /// The new ReplicaSet's name is taken by another object: the collision count was bumped.
    #[error("replica set {0} already exists with another template; hashing again")]
    Collision(String),
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let deployments = ctx.informers.get::<Deployment>();
    let rss = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        deployments: deployments.store(),
        rss: rss.store(),
        pods: pods.store(),
        queue: Queue::new(),
        recorder: ctx.recorder("deployment-controller"),
    });
    deployments.on_change(crate::util::enqueue_self(&c.queue));
    let h = c.clone();
    rss.on_change(move |change: &Change<'_, ReplicaSet>| h.rs_changed(change));
    let h = c.clone();
    pods.on_change(move |change: &Change<'_, Pod>| {
        if let Change::Deleted(pod) = change {
            h.pod_deleted(pod);
        }
    });
    let queue = c.queue.clone();
    ctx.run_workers("deployment", queue, move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
}

/// The controller's state.
pub struct Controller {
    client: kube::Client,
    deployments: Store<Deployment>,
    rss: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: Queue<ObjectKey>,
    recorder: Recorder,
}

/// A Deployment's ReplicaSets: the one matching its template (if any) and the others.
pub struct Sets {
    /// The ReplicaSet of the current template.
    pub new: Option<ReplicaSet>,
    /// Every other ReplicaSet the Deployment owns.
    pub old: Vec<ReplicaSet>,
}

impl Sets {
    /// Every ReplicaSet, old ones first.
    pub fn all(&self) -> Vec<&ReplicaSet> {
        self.old.iter().chain(self.new.as_ref()).collect()
    }
}

fn selects_all(d: &Deployment) -> bool {
    let s = &d.spec.selector;
    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

impl Controller {
    fn owner_of(&self, rs: &ReplicaSet) -> Option<Arc<Deployment>> {
        let r = controller_of(rs).filter(|r| r.kind == "Deployment")?;
        let d = self
            .deployments
            .get_in(&rs.namespace().unwrap_or_default(), &r.name)?;
        (d.uid().as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    fn enqueue_owner_or_selecting(&self, rs: &ReplicaSet) {
        if let Some(d) = self.owner_of(rs) {
            self.queue.add(ObjectKey::of(d.as_ref()));
        } else if controller_of(rs).is_none() {
            let ns = rs.namespace().unwrap_or_default();
            for d in self.deployments.filter_namespace(&ns, |d| {
                selector_matches(Some(&d.spec.selector), rs.labels())
            }) {
                self.queue.add(ObjectKey::of(d.as_ref()));
            }
        }
    }

    fn rs_changed(&self, change: &Change<'_, ReplicaSet>) {
        if let Some(old) = change.old() {
            if controller_of(old.as_ref()) != controller_of(change.object().as_ref()) {
                if let Some(d) = self.owner_of(old) {
                    self.queue.add(ObjectKey::of(d.as_ref()));
                }
            }
        }
        self.enqueue_owner_or_selecting(change.object());
    }

    fn pod_deleted(&self, pod: &Pod) {
        let Some(r) = controller_of(pod).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        if let Some(rs) = self
            .rss
            .get_in(&pod.namespace().unwrap_or_default(), &r.name)
        {
            if let Some(d) = self.owner_of(&rs) {
                self.queue.add(ObjectKey::of(d.as_ref()));
            }
        }
    }

    fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(d) = self.deployments.get(key) else {
            return Ok(None);
        };
        let mut d = (*d).clone();
        if selects_all(&d) {
            self.recorder.event(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let mut status = d.status.clone().unwrap_or_default();
            if status.observed_generation < d.metadata.generation {
                status.observed_generation = d.metadata.generation;
                self.write_status(&mut d, status).await?;
            }
            return Ok(None);
        }
        let rss = self.claim(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let sets = self.sets(&mut d, rss, false).await?;
            self.sync_status(&mut d, &sets).await?;
            return Ok(None);
        }
        self.check_paused(&mut d).await?;
        if d.spec.paused == Some(true) {
            return self.sync_scale(&mut d, rss).await;
        }
        if self.is_scaling_event(&mut d, &rss).await? {
            return self.sync_scale(&mut d, rss).await;
        }
        if util::is_rolling(&d) {
            self.rollout_rolling(&mut d, rss).await
        } else {
            self.rollout_recreate(&mut d, rss).await
        }
    }

    /// The ReplicaSets `d` controls, after adopting and releasing.
    async fn claim(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, Error> {
        let ns = d.namespace().unwrap_or_default();
        let api: Api<ReplicaSet> = self.api(&ns);
        let deployments: Api<Deployment> = self.api(&ns);
        let (name, uid) = (d.name_any(), d.uid());
        let can_adopt = move || -> BoxFuture<'static, bool> {
            let (deployments, name, uid) = (deployments.clone(), name.clone(), uid.clone());
            Box::pin(async move {
                matches!(deployments.get(&name).await,
                    Ok(o) if o.uid() == uid && o.metadata.deletion_timestamp.is_none())
            })
        };
        let owner = Owner {
            reference: controller_ref(d),
            deleting: d.metadata.deletion_timestamp.is_some(),
            can_adopt: &can_adopt,
        };
        let selector = d.spec.selector.clone();
        let claimed = pods::claim(
            &api,
            &owner,
            |rs: &ReplicaSet| selector_matches(Some(&selector), rs.labels()),
            self.rss.list_namespace(&ns),
        )
        .await?;
        Ok(claimed.into_iter().map(|rs| (*rs).clone()).collect())
    }

    /// Progressing Unknown with DeploymentPaused / DeploymentResumed when `paused` flips
    /// (upstream's `checkPausedConditions`).
    async fn check_paused(&self, d: &mut Deployment) -> Result<(), Error> {
        if !util::has_progress_deadline(d) {
            return Ok(());
        }
        let mut status = d.status.clone().unwrap_or_default();
        let cond = util::get_condition(&status, "Progressing");
        let was_paused = cond.and_then(|c| c.reason.as_deref()) == Some(reason::PAUSED);
        let paused = d.spec.paused == Some(true);
        let c = if paused && !was_paused {
            util::condition(
                "Progressing",
                "Unknown",
                reason::PAUSED,
                "Deployment is paused".into(),
            )
        } else if !paused && was_paused {
            util::condition(
                "Progressing",
                "Unknown",
                reason::RESUMED,
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        util::set_condition(&mut status, c);
        self.write_status(d, status).await
    }

    /// Writes `status` through /status and keeps it in `d`.
    async fn write_status(
        &self,
        d: &mut Deployment,
        status: DeploymentStatus,
    ) -> Result<(), Error> {
        let mut body = serde_json::to_value(&status)?;
        if status.conditions.as_ref().is_none_or(Vec::is_empty) {
            body["conditions"] = serde_json::Value::Null;
        }
        let api: Api<Deployment> = self.api(&d.namespace().unwrap_or_default());
        api.patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": body })),
        )
        .await?;
        d.status = Some(status);
        Ok(())
    }

    /// Sets the Deployment's revision annotation (a metadata write; answers nothing).
    async fn set_revision(&self, d: &mut Deployment, revision: &str) -> Result<(), Error> {
        if d.annotations().get(util::REVISION).map(String::as_str) == Some(revision) {
            return Ok(());
        }
        let api: Api<Deployment> = self.api(&d.namespace().unwrap_or_default());
        let patch =
            serde_json::json!({ "metadata": { "annotations": { util::REVISION: revision } } });
        api.patch(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        d.annotations_mut()
            .insert(util::REVISION.to_owned(), revision.to_owned());
        Ok(())
    }

    /// Splits the ReplicaSets into new and old, syncs the new one's annotations and the
    /// Deployment's revision, and creates the new one when `create` (upstream's
    /// `getAllReplicaSetsAndSyncRevision`).
    async fn sets(
        &self,
        d: &mut Deployment,
        mut rss: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<Sets, Error> {
        rss.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        let new_at = rss.iter().position(|rs| {
            rs.spec
                .template
                .as_ref()
                .is_some_and(|t| util::equal_ignore_hash(t, &d.spec.template))
        });
        let existing = new_at.map(|i| rss.remove(i));
        let old = rss;
        let max_old = old.iter().map(util::revision).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let new = self.new_rs(d, &old, existing, new_revision, create).await?;
        Ok(Sets { new, old })
    }

    async fn new_rs(
        &self,
        d: &mut Deployment,
        old: &[ReplicaSet],
        existing: Option<ReplicaSet>,
        new_revision: i64,
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let ns = d.namespace().unwrap_or_default();
        let api: Api<ReplicaSet> = self.api(&ns);
        if let Some(mut rs) = existing {
            let annotated = util::set_new_rs_annotations(d, &mut rs, new_revision, true);
            if annotated || rs.spec.min_ready_seconds != d.spec.min_ready_seconds {
                rs.spec.min_ready_seconds = d.spec.min_ready_seconds;
                let rs = api
                    .replace(&rs.name_any(), &PostParams::default(), &rs)
                    .await?;
                return Ok(Some(rs));
            }
            let revision = rs
                .annotations()
                .get(util::REVISION)
                .cloned()
                .unwrap_or_default();
            self.set_revision(d, &revision).await?;
            let mut status = d.status.clone().unwrap_or_default();
            if util::has_progress_deadline(d)
                && util::get_condition(&status, "Progressing").is_none()
            {
                let msg = format!("Found new replica set {:?}", rs.name_any());
                util::set_condition(
                    &mut status,
                    util::condition("Progressing", "True", reason::FOUND_NEW_RS, msg),
                );
                self.write_status(d, status).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let status = d.status.clone().unwrap_or_default();
        let hash = util::compute_hash(&d.spec.template, status.collision_count);
        let mut template = d.spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let mut selector = d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let name = format!("{}-{hash}", d.name_any());
        let mut rs = ReplicaSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![controller_ref(d)]),
                labels: meta.labels.clone(),
                ..Default::default()
            },
            spec: k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let count = {
            let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&rs)).collect();
            rollout::new_rs_replicas(d, &all, &rs)
        };
        rs.spec.replicas = Some(count);
        util::set_new_rs_annotations(d, &mut rs, new_revision, false);
        let created = match api.create(&PostParams::default(), &rs).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let Some(found) = self.rss.get_in(&ns, &name) else {
                    return Err(Error::Kube(kube::Error::Api(s)));
                };
                let ours =
                    controller_of(found.as_ref()).is_some_and(|r| Some(&r.uid) == d.uid().as_ref());
                let same = found
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| util::equal_ignore_hash(t, &d.spec.template));
                if ours && same {
                    return Ok(Some((*found).clone()));
                }
                let mut status = d.status.clone().unwrap_or_default();
                status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                self.write_status(d, status).await?;
                return Err(Error::Collision(name));
            }
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Err(Error::Kube(kube::Error::Api(s)))
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set {name:?}: {e}");
                if util::has_progress_deadline(d) {
                    let mut status = d.status.clone().unwrap_or_default();
                    util::set_condition(
                        &mut status,
                        util::condition(
                            "Progressing",
                            "False",
                            reason::FAILED_RS_CREATE,
                            msg.clone(),
                        ),
                    );
                    let _ = self.write_status(d, status).await;
                }
                self.recorder
                    .event(d, EventType::Warning, reason::FAILED_RS_CREATE, msg);
                return Err(e.into());
            }
        };
        if count > 0 {
            self.recorder.event(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} from 0 to {count}",
                    created.name_any()
                ),
            );
        }
        self.set_revision(d, &new_revision.to_string()).await?;
        if util::has_progress_deadline(d) {
            let mut status = d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set {:?}", created.name_any());
            util::set_condition(
                &mut status,
                util::condition("Progressing", "True", reason::NEW_RS_CREATED, msg),
            );
            self.write_status(d, status).await?;
        }
        Ok(Some(created))
    }

    /// Scales `rs` to `to` (and refreshes its replica annotations) when either changed; an
    /// event for a size change. Answers whether the size changed.
    async fn scale_rs(
        &self,
        d: &Deployment,
        rs: &mut ReplicaSet,
        to: i32,
        op: &str,
    ) -> Result<bool, Error> {
        let from = util::rs_replicas(rs);
        let resize = from != to;
        let mut copy = rs.clone();
        let annotate = util::set_replicas_annotations(
            &mut copy,
            util::replicas(d),
            util::replicas(d) + util::max_surge(d),
        );
        if !resize && !annotate {
            return Ok(false);
        }
        copy.spec.replicas = Some(to);
        let api: Api<ReplicaSet> = self.api(&rs.namespace().unwrap_or_default());
        *rs = api
            .replace(&copy.name_any(), &PostParams::default(), &copy)
            .await?;
        if resize {
            self.recorder.event(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} from {from} to {to}",
                    rs.name_any()
                ),
            );
        }
        Ok(resize)
    }

    /// Scales `rs` to `to` when its size differs (upstream's `scaleReplicaSetAndRecordEvent`).
    async fn scale_rs_to(
        &self,
        d: &Deployment,
        rs: &mut ReplicaSet,
        to: i32,
    ) -> Result<bool, Error> {
        let from = util::rs_replicas(rs);
        if from == to {
            return Ok(false);
        }
        let op = if from < to { "up" } else { "down" };
        self.scale_rs(d, rs, to, op).await
    }

    /// The pods of the old ReplicaSets that still run or may (Recreate waits for them).
    fn old_pods_running(&self, d: &Deployment, sets: &Sets) -> bool {
        if util::actual_replicas(&sets.old.iter().collect::<Vec<_>>()) > 0 {
            return true;
        }
        let old_uids: Vec<String> = sets.old.iter().filter_map(|r| r.uid()).collect();
        let ns = d.namespace().unwrap_or_default();
        !self
            .pods
            .filter_namespace(&ns, |p| {
                controller_of(p).is_some_and(|r| old_uids.contains(&r.uid))
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
            })
            .is_empty()
    }
}
