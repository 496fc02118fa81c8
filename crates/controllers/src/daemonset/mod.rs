//! The DaemonSet controller, as upstream's `pkg/controller/daemon`: one pod per eligible
//! node ([`predicates`]), created with a required `metadata.name In [<node>]` node affinity
//! for the scheduler to bind, the daemon tolerations, and the `controller-revision-hash` of
//! the template's ControllerRevision ([`crate::history`]); pods on nodes no longer eligible
//! are deleted; RollingUpdate replaces old pods within maxUnavailable (or surges within
//! maxSurge); OnDelete waits for deletions. Creations and deletions go through
//! [`crate::replicaset::expectations`].

pub mod predicates;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::deployment::util::scaled_value;
use crate::history::{self, CONTROLLER_REVISION_HASH};
use crate::replicaset::expectations::Expectations;
use crate::replicaset::pods::{self, Owner};
use crate::util::{
    controller_of, controller_ref, is_pod_available, is_pod_ready, selector_matches,
};
use crate::Context;

/// The deprecated label with the DaemonSet's generation a pod was made at.
pub const POD_TEMPLATE_GENERATION: &str = "pod-template-generation";

/// What a sync can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let sets = ctx.informers.get::<DaemonSet>();
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let revisions = ctx.informers.get::<ControllerRevision>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        sets: sets.store(),
        pods: pods.store(),
        nodes: nodes.store(),
        revisions: revisions.store(),
        queue: Queue::new(),
        expectations: Expectations::new(),
        recorder: ctx.recorder("daemonset-controller"),
    });
    let h = c.clone();
    sets.on_change(move |change: &Change<'_, DaemonSet>| {
        let key = ObjectKey::of(change.object().as_ref());
        if matches!(change, Change::Deleted(_)) {
            h.expectations.forget(&key);
        }
        h.queue.add(key);
    });
    let h = c.clone();
    pods.on_change(move |change: &Change<'_, Pod>| h.pod_changed(change));
    let h = c.clone();
    nodes.on_change(move |change: &Change<'_, Node>| {
        // Status heartbeats change nothing a daemon pod's placement depends on.
        if let Change::Updated { old, new } = change {
            if old.metadata.labels == new.metadata.labels && old.spec == new.spec {
                return;
            }
        }
        for ds in h.sets.list() {
            h.queue.add(ObjectKey::of(ds.as_ref()));
        }
    });
    let queue = c.queue.clone();
    ctx.run_workers("daemonset", queue, move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
}

struct Controller {
    client: kube::Client,
    sets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    queue: Queue<ObjectKey>,
    expectations: Expectations,
    recorder: Recorder,
}

/// The node a daemon pod is on, or is pinned to while unscheduled.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.labels()
        .get(CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

impl Controller {
    fn owner_of(&self, pod: &Pod) -> Option<Arc<DaemonSet>> {
        let r = controller_of(pod).filter(|r| r.kind == "DaemonSet")?;
        let ds = self
            .sets
            .get_in(&pod.namespace().unwrap_or_default(), &r.name)?;
        (ds.uid().as_deref() == Some(r.uid.as_str())).then_some(ds)
    }

    fn pod_changed(&self, change: &Change<'_, Pod>) {
        let pod = change.object();
        let Some(ds) = self.owner_of(pod) else {
            if controller_of(pod.as_ref()).is_none() {
                let ns = pod.namespace().unwrap_or_default();
                for ds in self.sets.filter_namespace(&ns, |d| {
                    selector_matches(Some(&d.spec.selector), pod.labels())
                }) {
                    self.queue.add(ObjectKey::of(ds.as_ref()));
                }
            }
            return;
        };
        let key = ObjectKey::of(ds.as_ref());
        match change {
            Change::Added(p) if p.metadata.deletion_timestamp.is_none() => {
                self.expectations.creation_observed(&key)
            }
            Change::Updated { old, new }
                if new.metadata.deletion_timestamp.is_some()
                    && old.metadata.deletion_timestamp.is_none() =>
            {
                self.expectations
                    .deletion_observed(&key, &pods::pod_key(new));
            }
            Change::Deleted(p) | Change::Added(p) => {
                self.expectations.deletion_observed(&key, &pods::pod_key(p))
            }
            Change::Updated { .. } => {}
        }
        self.queue.add(key);
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(ds) = self.sets.get(key) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let ns = key.namespace.clone();
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let ds_api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &ns);
        let (name, uid) = (ds.name_any(), ds.uid());
        let can_adopt = move || -> BoxFuture<'static, bool> {
            let (api, name, uid) = (ds_api.clone(), name.clone(), uid.clone());
            Box::pin(async move {
                matches!(api.get(&name).await, Ok(o) if o.uid() == uid && o.metadata.deletion_timestamp.is_none())
            })
        };
        let owner = Owner {
            reference: controller_ref(ds.as_ref()),
            deleting: ds.metadata.deletion_timestamp.is_some(),
            can_adopt: &can_adopt,
        };
        let selector = ds.spec.selector.clone();
        let claimed = pods::claim(
            &pod_api,
            &owner,
            |p: &Pod| selector_matches(Some(&selector), p.labels()),
            self.pods.list_namespace(&ns),
        )
        .await?;
        let revisions = history::owned(ds.as_ref(), self.revisions.list_namespace(&ns));
        let status = ds.status.clone().unwrap_or_default();
        let hist = history::sync(
            &self.client,
            ds.as_ref(),
            &ds.spec.template,
            revisions,
            status.collision_count,
        )
        .await?;
        let hash = hist
            .update
            .labels()
            .get(CONTROLLER_REVISION_HASH)
            .cloned()
            .unwrap_or_default();
        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in &claimed {
            if let Some(n) = node_of(p) {
                by_node.entry(n).or_default().push(p.clone());
            }
        }
        let nodes = self.nodes.list();
        let template = self.pod_template(&ds, &hash);
        if self.expectations.satisfied(key) && ds.metadata.deletion_timestamp.is_none() {
            self.manage(&ds, key, &nodes, &by_node, &template, &hash)
                .await?;
        }
        let requeue = self
            .write_status(
                &ds,
                &nodes,
                &by_node,
                &template,
                &hash,
                hist.collision_count,
            )
            .await?;
        let mut live: HashSet<String> = HashSet::new();
        live.insert(hist.update.name_any());
        let live_hashes: HashSet<&str> = claimed.iter().filter_map(|p| hash_of(p)).collect();
        for r in &hist.revisions {
            if r.labels()
                .get(CONTROLLER_REVISION_HASH)
                .is_some_and(|h| live_hashes.contains(h.as_str()))
            {
                live.insert(r.name_any());
            }
        }
        history::truncate(
            &self.client,
            &hist.revisions,
            &live,
            ds.spec.revision_history_limit,
        )
        .await?;
        Ok(requeue)
    }

    /// The template daemon pods are made from: the set's, with the daemon tolerations and
    /// the revision labels.
    fn pod_template(&self, ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
        let mut t = ds.spec.template.clone();
        let labels = t
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        labels.insert(CONTROLLER_REVISION_HASH.to_owned(), hash.to_owned());
        if let Some(g) = ds.metadata.generation {
            labels.insert(POD_TEMPLATE_GENERATION.to_owned(), g.to_string());
        }
        predicates::add_daemon_tolerations(t.spec.get_or_insert_with(Default::default));
        t
    }

    async fn manage(
        &self,
        ds: &Arc<DaemonSet>,
        key: &ObjectKey,
        nodes: &[Arc<Node>],
        by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
        template: &PodTemplateSpec,
        hash: &str,
    ) -> Result<(), Error> {
        let spec = template.spec.clone().unwrap_or_default();
        let now = Timestamp::now();
        let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
        let mut create_on: Vec<String> = Vec::new();
        let mut delete: Vec<Arc<Pod>> = Vec::new();
        let known: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        for node in nodes {
            let name = node.name_any();
            let (run, keep) = predicates::should_run(&spec, node);
            let here: Vec<&Arc<Pod>> = by_node
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if run && here.is_empty() {
                create_on.push(name);
            } else if keep {
                let (failed, alive): (Vec<&Arc<Pod>>, Vec<&Arc<Pod>>) =
                    here.into_iter().partition(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
                    });
                delete.extend(failed.into_iter().cloned());
                // More than one: keep the oldest (the rolling update handles surge pods).
                let surging = alive.len() == 2
                    && alive.iter().filter(|p| hash_of(p) == Some(hash)).count() == 1;
                if alive.len() > 1 && !surging {
                    let mut alive = alive;
                    alive.sort_by(|a, b| {
                        a.metadata
                            .creation_timestamp
                            .cmp(&b.metadata.creation_timestamp)
                    });
                    delete.extend(alive.into_iter().skip(1).cloned());
                }
            } else {
                delete.extend(here.into_iter().cloned());
            }
        }
        // Unscheduled pods pinned to nodes that are gone.
        for (node, ps) in by_node {
            if !known.contains(node) {
                delete.extend(
                    ps.iter()
                        .filter(|p| {
                            p.spec.as_ref().is_none_or(|s| s.node_name.is_none())
                                && p.metadata.deletion_timestamp.is_none()
                        })
                        .cloned(),
                );
            }
        }
        // A rolling update moves only once every node has its pod.
        if create_on.is_empty() && delete.is_empty() {
            rolling_update(
                ds,
                nodes,
                by_node,
                &spec,
                hash,
                min_ready,
                now,
                &mut create_on,
                &mut delete,
            );
        }
        self.sync_nodes(ds, key, create_on, delete, template).await
    }
}

/// Picks old pods to delete (and, with maxSurge, nodes for new pods) for a RollingUpdate
/// (upstream's `rollingUpdate`).
#[allow(clippy::too_many_arguments)]
fn rolling_update(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    hash: &str,
    min_ready: i32,
    now: Timestamp,
    create_on: &mut Vec<String>,
    delete: &mut Vec<Arc<Pod>>,
) {
    let strategy = ds.spec.update_strategy.as_ref();
    if strategy
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "OnDelete")
    {
        return;
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let desired = i32::try_from(
        nodes
            .iter()
            .filter(|n| predicates::should_run(spec, n).0)
            .count(),
    )
    .unwrap_or(0);
    let surge = ru
        .and_then(|r| r.max_surge.as_ref())
        .map_or(0, |v| scaled_value(v, desired, true));
    let mut max_unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .map_or(1, |v| scaled_value(v, desired, true));
    if surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let surge = if surge > 0 { surge } else { 0 };
    let max_unavailable =
        if surge > 0 && ru.and_then(|r| r.max_unavailable.as_ref()) == Some(&IntOrString::Int(0)) {
            0
        } else {
            max_unavailable
        };
    let mut unavailable = 0;
    let mut candidates: Vec<Arc<Pod>> = Vec::new();
    let mut surge_nodes: Vec<String> = Vec::new();
    let mut surging = 0;
    for node in nodes {
        if !predicates::should_run(spec, node).0 {
            continue;
        }
        let here: Vec<&Arc<Pod>> = by_node
            .get(&node.name_any())
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let new = here.iter().find(|p| hash_of(p) == Some(hash));
        let old = here.iter().find(|p| hash_of(p) != Some(hash));
        match (old, new) {
            (None, Some(n)) => {
                if !is_pod_available(n, min_ready, now) {
                    unavailable += 1;
                }
            }
            (None, None) => unavailable += 1,
            (Some(o), None) => {
                if !is_pod_available(o, min_ready, now) {
                    // Already unavailable: replace it at once.
                    delete.push((*o).clone());
                    unavailable += 1;
                } else if surge > 0 {
                    surge_nodes.push(node.name_any());
                } else {
                    candidates.push((*o).clone());
                }
            }
            (Some(o), Some(n)) => {
                surging += 1;
                if is_pod_available(n, min_ready, now) {
                    delete.push((*o).clone());
                } else if !is_pod_available(o, min_ready, now) {
                    unavailable += 1;
                }
            }
        }
    }
    for p in candidates {
        if unavailable >= max_unavailable {
            break;
        }
        delete.push(p);
        unavailable += 1;
    }
    for n in surge_nodes {
        if surging >= surge {
            break;
        }
        create_on.push(n);
        surging += 1;
    }
}

impl Controller {
    /// Creates pods on `create_on` in slow-start batches and deletes `delete`, under
    /// expectations (upstream's `syncNodes`).
    async fn sync_nodes(
        &self,
        ds: &Arc<DaemonSet>,
        key: &ObjectKey,
        create_on: Vec<String>,
        delete: Vec<Arc<Pod>>,
        template: &PodTemplateSpec,
    ) -> Result<(), Error> {
        if create_on.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let create_on: Vec<String> = create_on
            .into_iter()
            .take(crate::replicaset::BURST_REPLICAS)
            .collect();
        self.expectations.expect(
            key,
            create_on.len(),
            delete.iter().map(|p| pods::pod_key(p)).collect(),
        );
        let base = pods::pod_from_template(
            template,
            &key.namespace,
            &ds.name_any(),
            controller_ref(ds.as_ref()),
        );
        let (created, err) = pods::slow_start(create_on.len(), |i| {
            let mut pod = base.clone();
            predicates::pin_to_node(pod.spec.get_or_insert_with(Default::default), &create_on[i]);
            let api = api.clone();
            async move {
                match api.create(&PostParams::default(), &pod).await {
                    Ok(p) => {
                        self.recorder.event(
                            ds.as_ref(),
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.name_any()),
                        );
                        Ok(())
                    }
                    Err(e) => {
                        self.recorder.event(
                            ds.as_ref(),
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
        for _ in created..create_on.len() {
            self.expectations.creation_observed(key);
        }
        let mut first_err = err;
        for p in &delete {
            let name = p.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => self.recorder.event(
                    ds.as_ref(),
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    self.expectations.deletion_observed(key, &pods::pod_key(p));
                    if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                        self.recorder.event(
                            ds.as_ref(),
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_status(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
        template: &PodTemplateSpec,
        hash: &str,
        collision_count: Option<i32>,
    ) -> Result<Option<Duration>, Error> {
        let spec = template.spec.clone().unwrap_or_default();
        let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
        let now = Timestamp::now();
        let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
            (0, 0, 0, 0, 0, 0);
        let scheduled: HashMap<&String, Vec<&Arc<Pod>>> = by_node
            .iter()
            .map(|(n, ps)| {
                (
                    n,
                    ps.iter()
                        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        for node in nodes {
            let name = node.name_any();
            let (run, _) = predicates::should_run(&spec, node);
            let here = scheduled.get(&name).cloned().unwrap_or_default();
            if run {
                desired += 1;
                if let Some(p) = here.first() {
                    current += 1;
                    if is_pod_ready(p) {
                        ready += 1;
                        if is_pod_available(p, min_ready, now) {
                            available += 1;
                        }
                    }
                    if here.iter().any(|p| hash_of(p) == Some(hash)) {
                        updated += 1;
                    }
                }
            } else if !here.is_empty() {
                misscheduled += 1;
            }
        }
        let old = ds.status.clone().unwrap_or_default();
        let status = DaemonSetStatus {
            observed_generation: ds.metadata.generation,
            desired_number_scheduled: desired,
            current_number_scheduled: current,
            number_misscheduled: misscheduled,
            number_ready: ready,
            number_available: Some(available),
            number_unavailable: Some((desired - available).max(0)),
            updated_number_scheduled: Some(updated),
            collision_count,
            conditions: old.conditions.clone(),
        };
        if status != old {
            let api: Api<DaemonSet> =
                Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
            api.patch_status(
                &ds.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await?;
        }
        if min_ready > 0 && ready != available {
            return Ok(Some(Duration::from_secs(
                u64::try_from(min_ready).unwrap_or(1),
            )));
        }
        Ok(None)
    }
}
