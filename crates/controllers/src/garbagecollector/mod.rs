//! The garbage collector, as upstream's `pkg/controller/garbagecollector`: a metadata-only
//! watch on every resource that can be listed, watched and deleted (found by discovery,
//! again every 30 s and whenever a CustomResourceDefinition changes) feeds the ownership
//! [`graph`]; workers then act on the uids a change concerns:
//! - an object whose owners are all gone (absent from the graph and, to rule out races,
//!   answering 404 or another uid to a live GET) is deleted, in the background unless its
//!   own finalizers ask otherwise; one that still has a live owner loses its references to
//!   the dead ones;
//! - an owner marked for deletion with the `foregroundDeletion` finalizer has its dependents
//!   deleted (those whose dependents would block in turn foreground too), and loses the
//!   finalizer once no dependent with `blockOwnerDeletion` is left;
//! - an owner marked for deletion with the `orphan` finalizer has its references removed
//!   from every dependent, then loses the finalizer.

pub mod graph;
pub mod resources;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::runtime::watcher::{self, Event};
use kube::Api;
use tokio::sync::Notify;
use tug_runtime::Queue;

use self::graph::{Graph, Node, FOREGROUND, ORPHAN};
use self::resources::{Deletable, Resources};
use crate::Context;

/// How often resources are re-discovered, as upstream's 30 s.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(30);
/// Resources the collector never watches (group, plural), as upstream's defaults.
pub const IGNORED_RESOURCES: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: kube::Error,
    },
    /// An owner reference names a kind discovery does not know.
    #[error("unknown owner kind {kind} in {api_version}")]
    UnknownKind {
        /// The reference's apiVersion.
        api_version: String,
        /// The reference's kind.
        kind: String,
    },
}

struct Gc {
    client: kube::Client,
    graph: Mutex<Graph>,
    queue: Queue<String>,
    resources: RwLock<Resources>,
    /// Monitors that have not delivered their first list yet.
    unsynced: AtomicUsize,
    /// Running monitors by `apiVersion/kind`.
    monitors: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    rediscover: Notify,
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let gc = Arc::new(Gc {
        client: ctx.client.clone(),
        graph: Mutex::default(),
        queue: Queue::new(),
        resources: RwLock::default(),
        unsynced: AtomicUsize::new(0),
        monitors: Mutex::default(),
        rediscover: Notify::new(),
    });
    {
        let gc = gc.clone();
        ctx.informers
            .get::<CustomResourceDefinition>()
            .on_change(move |_| gc.rediscover.notify_one());
    }
    let ctx = ctx.clone();
    Box::pin(async move {
        ctx.informers.synced().await;
        let discovering = tokio::spawn(discover_loop(gc.clone()));
        let g = gc.clone();
        tug_runtime::queue::run(
            "garbagecollector",
            gc.queue.clone(),
            ctx.options.workers.max(1) * 4,
            move |uid: String| {
                let g = g.clone();
                async move { g.sync(&uid).await }
            },
        )
        .await;
        discovering.abort();
    })
}

async fn discover_loop(gc: Arc<Gc>) {
    loop {
        match resources::discover(&gc.client).await {
            Ok(found) => gc.sync_monitors(found),
            Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(RESYNC_PERIOD) => {}
            () = gc.rediscover.notified() => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gc {
    /// Starts a monitor for every new resource and stops those no longer served.
    fn sync_monitors(self: &Arc<Self>, found: Resources) {
        let watched: Vec<&Deletable> = found
            .all
            .iter()
            .filter(|d| {
                !IGNORED_RESOURCES
                    .iter()
                    .any(|(g, r)| d.resource.group == *g && d.resource.plural == *r)
            })
            .collect();
        let mut monitors = lock(&self.monitors);
        let wanted: HashSet<String> = watched
            .iter()
            .map(|d| format!("{}/{}", d.resource.api_version, d.resource.kind))
            .collect();
        monitors.retain(|key, task| {
            let keep = wanted.contains(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for d in watched {
            let key = format!("{}/{}", d.resource.api_version, d.resource.kind);
            if monitors.contains_key(&key) {
                continue;
            }
            self.unsynced.fetch_add(1, Ordering::SeqCst);
            let task = tokio::spawn(self.clone().monitor(Arc::new(d.clone())));
            monitors.insert(key, task);
        }
        *self.resources.write().unwrap_or_else(|e| e.into_inner()) = found;
    }

    /// Watches one resource's metadata into the graph.
    async fn monitor(self: Arc<Self>, resource: Arc<Deletable>) {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &resource.resource);
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        let mut listed: Option<HashSet<String>> = None;
        let mut synced = false;
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!(resource = %resource.display(), error = %e, "gc watch failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let queued = match ev {
                Event::Apply(obj) | Event::InitApply(obj) => {
                    if let Some(set) = listed.as_mut() {
                        if let Some(uid) = &obj.metadata.uid {
                            set.insert(uid.clone());
                        }
                    }
                    match Node::from_meta(resource.clone(), &obj) {
                        Some(node) => lock(&self.graph).apply(node),
                        None => Vec::new(),
                    }
                }
                Event::Delete(obj) => match &obj.metadata.uid {
                    Some(uid) => lock(&self.graph).delete(uid),
                    None => Vec::new(),
                },
                Event::Init => {
                    listed = Some(HashSet::new());
                    Vec::new()
                }
                Event::InitDone => {
                    let seen = listed.take().unwrap_or_default();
                    let mut g = lock(&self.graph);
                    let gone: Vec<String> = g
                        .uids_of(&resource.resource.api_version, &resource.resource.kind)
                        .into_iter()
                        .filter(|u| !seen.contains(u))
                        .collect();
                    let mut out = Vec::new();
                    for uid in gone {
                        out.extend(g.delete(&uid));
                    }
                    drop(g);
                    if !synced {
                        synced = true;
                        self.unsynced.fetch_sub(1, Ordering::SeqCst);
                    }
                    out
                }
            };
            for uid in queued {
                self.queue.add(uid);
            }
        }
    }

    /// Looks at one object.
    async fn sync(&self, uid: &str) -> Result<Option<Duration>, Error> {
        if self.unsynced.load(Ordering::SeqCst) > 0 {
            // Act only on a complete graph.
            return Ok(Some(Duration::from_millis(200)));
        }
        let Some(node) = lock(&self.graph).get(uid).cloned() else {
            return Ok(None);
        };
        if node.orphaning() {
            return self.orphan_dependents(&node).await.map(|()| None);
        }
        if node.deleting_dependents() {
            return self.process_deleting_dependents(&node).await.map(|()| None);
        }
        if node.deleting {
            return Ok(None);
        }
        self.attempt_to_delete(&node).await.map(|()| None)
    }

    fn dynamic(&self, d: &Deletable, namespace: Option<&str>) -> Api<DynamicObject> {
        match (d.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &d.resource),
            _ => Api::all_with(self.client.clone(), &d.resource),
        }
    }

    /// Whether the owner `r` of `node` exists: `Some(deleting_dependents)` if it does.
    async fn owner_state(&self, node: &Node, r: &OwnerReference) -> Result<Option<bool>, Error> {
        if let Some(owner) = lock(&self.graph).get(&r.uid) {
            return Ok(Some(owner.deleting_dependents()));
        }
        let d = self
            .resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .for_kind(&r.api_version, &r.kind)
            .cloned()
            .ok_or_else(|| Error::UnknownKind {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
            })?;
        if d.namespaced && node.namespace.is_none() {
            // A cluster-scoped object cannot have a namespaced owner.
            return Ok(None);
        }
        let api: Api<PartialObjectMeta<DynamicObject>> = match (d.namespaced, &node.namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &d.resource),
            _ => Api::all_with(self.client.clone(), &d.resource),
        };
        match api.get(&r.name).await {
            Ok(live) if live.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let deleting = live.metadata.deletion_timestamp.is_some()
                    && live
                        .metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == FOREGROUND);
                Ok(Some(deleting))
            }
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(source) => Err(Error::Api {
                what: format!("get owner {} {}", r.kind, r.name),
                source,
            }),
        }
    }

    /// Deletes `node` if its owners are gone (or waiting on it in foreground), or drops
    /// its references to dead owners if a live one remains.
    async fn attempt_to_delete(&self, node: &Node) -> Result<(), Error> {
        if node.owners.is_empty() {
            return Ok(());
        }
        let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for r in &node.owners {
            match self.owner_state(node, r).await? {
                None => dangling.push(r.uid.clone()),
                Some(true) => waiting.push(r.uid.clone()),
                Some(false) => solid.push(r.uid.clone()),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            let gone: HashSet<&String> = dangling.iter().chain(&waiting).collect();
            let kept: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|r| !gone.contains(&r.uid))
                .collect();
            tracing::debug!(name = %node.name, "removing references to deleted owners");
            return self.patch_owners(node, serde_json::json!(kept)).await;
        }
        let has_dependents = !lock(&self.graph).dependents(&node.uid).is_empty();
        let policy = if !waiting.is_empty() && has_dependents {
            // Foreground all the way down, but let our owner go without waiting on us
            // blocking on our own dependents, as upstream.
            if node
                .owners
                .iter()
                .any(|r| r.block_owner_deletion == Some(true))
            {
                let unblocked: Vec<OwnerReference> = node
                    .owners
                    .iter()
                    .map(|r| OwnerReference {
                        block_owner_deletion: if waiting.contains(&r.uid) {
                            Some(false)
                        } else {
                            r.block_owner_deletion
                        },
                        ..r.clone()
                    })
                    .collect();
                self.patch_owners(node, serde_json::json!(unblocked))
                    .await?;
            }
            PropagationPolicy::Foreground
        } else if node.finalizers.iter().any(|f| f == ORPHAN) {
            PropagationPolicy::Orphan
        } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(name = %node.name, kind = %node.resource.resource.kind, ?policy, "deleting dependent whose owners are gone");
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .dynamic(&node.resource, node.namespace.as_deref())
            .delete(&node.name, &dp)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(source) => Err(Error::Api {
                what: format!("delete {} {}", node.resource.resource.kind, node.name),
                source,
            }),
        }
    }

    /// An owner in foreground deletion: deletes what depends on it, and lets it go once
    /// nothing blocks it.
    async fn process_deleting_dependents(&self, owner: &Node) -> Result<(), Error> {
        let blocking: Vec<Node> = lock(&self.graph)
            .dependents(&owner.uid)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true))
            })
            .cloned()
            .collect();
        if blocking.is_empty() {
            return self.remove_finalizer(owner, FOREGROUND).await;
        }
        for d in blocking.iter().filter(|d| !d.deleting) {
            self.queue.add(d.uid.clone());
        }
        Ok(())
    }

    /// An owner deleted with orphan propagation: its dependents lose their reference to it,
    /// then it loses the finalizer.
    async fn orphan_dependents(&self, owner: &Node) -> Result<(), Error> {
        let dependents: Vec<Node> = lock(&self.graph)
            .dependents(&owner.uid)
            .into_iter()
            .cloned()
            .collect();
        for d in &dependents {
            let kept: Vec<&OwnerReference> =
                d.owners.iter().filter(|r| r.uid != owner.uid).collect();
            match self.patch_owners(d, serde_json::json!(kept)).await {
                Ok(()) => {}
                Err(Error::Api {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        self.remove_finalizer(owner, ORPHAN).await
    }

    async fn patch_owners(&self, node: &Node, owners: serde_json::Value) -> Result<(), Error> {
        let patch = serde_json::json!({
            "metadata": {"uid": node.uid, "ownerReferences": owners}
        });
        self.dynamic(&node.resource, node.namespace.as_deref())
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|source| Error::Api {
                what: format!(
                    "patch owners of {} {}",
                    node.resource.resource.kind, node.name
                ),
                source,
            })
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<(), Error> {
        let kept: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
        let mut meta = serde_json::json!({"uid": node.uid, "finalizers": kept});
        if let Some(rv) = &node.resource_version {
            meta["resourceVersion"] = serde_json::json!(rv);
        }
        let patch = serde_json::json!({ "metadata": meta });
        match self
            .dynamic(&node.resource, node.namespace.as_deref())
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::Api {
                what: format!(
                    "remove finalizer {finalizer} from {} {}",
                    node.resource.resource.kind, node.name
                ),
                source,
            }),
        }
    }
}
