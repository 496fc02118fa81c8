//! Shared informers: one watch per resource type feeding an in-memory [`Store`] that every
//! control loop reads, and change handlers (usually "put this key on my queue") called for
//! each add, update and delete. As upstream's SharedInformer: a relist after a broken watch is
//! turned into the adds, updates and deletes that bring the store to the new list, so a
//! handler sees every change exactly as a change.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::trim::Trimmed;

/// A watcher event of a trimmed object as the event of the object.
fn untrim<K>(e: Event<Trimmed<K>>) -> Event<K> {
    match e {
        Event::Apply(o) => Event::Apply(o.0),
        Event::Delete(o) => Event::Delete(o.0),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(o.0),
        Event::InitDone => Event::InitDone,
    }
}

/// What every informed type is.
pub trait Object:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Object for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// Where an object lives: namespace (empty for cluster-scoped objects) then name, the order
/// the store keeps them in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace, or "" for a cluster-scoped object.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a namespaced object.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        Self::new("", name)
    }

    /// The key of an object.
    pub fn of<K: Resource>(obj: &K) -> Self {
        Self::new(obj.namespace().unwrap_or_default(), obj.name_any())
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A change the informer saw.
#[derive(Debug)]
pub enum Change<'a, K> {
    /// A new object.
    Added(&'a Arc<K>),
    /// An object changed (its resourceVersion moved).
    Updated {
        /// What the store held before.
        old: &'a Arc<K>,
        /// What it holds now.
        new: &'a Arc<K>,
    },
    /// An object is gone (what the store last held).
    Deleted(&'a Arc<K>),
}

impl<'a, K> Change<'a, K> {
    /// The object as it is now (or as it was last, when deleted).
    pub fn object(&self) -> &'a Arc<K> {
        match self {
            Change::Added(o) | Change::Deleted(o) => o,
            Change::Updated { new, .. } => new,
        }
    }

    /// The object before the change, for updates and deletes.
    pub fn old(&self) -> Option<&'a Arc<K>> {
        match self {
            Change::Added(_) => None,
            Change::Updated { old, .. } => Some(old),
            Change::Deleted(o) => Some(o),
        }
    }
}

/// The objects of one type, as last seen by its informer. Cheap to clone; every clone reads
/// the same map.
pub struct Store<K> {
    map: Arc<RwLock<BTreeMap<ObjectKey, Arc<K>>>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
        }
    }
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            map: Arc::default(),
        }
    }
}

impl<K> Store<K> {
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<ObjectKey, Arc<K>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ObjectKey, Arc<K>>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// One namespaced object by namespace and name.
    pub fn get_in(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.get(&ObjectKey::new(namespace, name))
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// The objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.filter_namespace(namespace, |_| true)
    }

    /// The objects of one namespace that `keep` accepts.
    pub fn filter_namespace(
        &self,
        namespace: &str,
        mut keep: impl FnMut(&K) -> bool,
    ) -> Vec<Arc<K>> {
        let from = ObjectKey::new(namespace, "");
        self.read()
            .range(from..)
            .take_while(|(k, _)| k.namespace == namespace)
            .filter(|(_, v)| keep(v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The objects `keep` accepts.
    pub fn filter(&self, mut keep: impl FnMut(&K) -> bool) -> Vec<Arc<K>> {
        self.read().values().filter(|v| keep(v)).cloned().collect()
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

type Handler<K> = Box<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// One watch on a resource type, its [`Store`] and its change handlers. Register handlers,
/// then [`run`](Informer::run) it (usually spawned); [`synced`](Informer::synced) resolves
/// once the first list is in the store.
pub struct Informer<K> {
    api: Api<K>,
    config: watcher::Config,
    /// Decode objects without `metadata.managedFields` ([`Trimmed`]).
    trim: bool,
    store: Store<K>,
    handlers: Arc<RwLock<Vec<Handler<K>>>>,
    synced: watch::Sender<bool>,
}

impl<K: Object> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            config: self.config.clone(),
            trim: self.trim,
            store: self.store.clone(),
            handlers: self.handlers.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K: Object> Informer<K> {
    /// An informer over every object `api` reaches that `config` selects.
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        Self {
            api,
            config,
            trim: false,
            store: Store::default(),
            handlers: Arc::default(),
            synced: watch::Sender::new(false),
        }
    }

    /// An informer over every object of the type in every namespace.
    pub fn all(client: kube::Client) -> Self {
        Self::new(Api::all(client), watcher::Config::default())
    }

    /// The same informer, its objects decoded without `metadata.managedFields` (as upstream's
    /// kube-scheduler trims its pod informer's objects): for readers that never look at them.
    /// Applies to informers over every namespace (those [`all`](Self::all) makes).
    #[must_use]
    pub fn without_managed_fields(mut self) -> Self {
        self.trim = self.api.namespace().is_none();
        self
    }

    /// The store this informer fills.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Calls `f` for every change from now on (and for every object of the first list as an
    /// add). `f` runs on the informer's task: keep it short (enqueue a key).
    pub fn on_change(&self, f: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    /// Resolves once the store holds a complete list.
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Whether the store holds a complete list.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    fn notify(&self, change: &Change<'_, K>) {
        for h in self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h(change);
        }
    }

    fn apply(&self, obj: K) {
        let key = ObjectKey::of(&obj);
        let new = Arc::new(obj);
        let old = self.store.write().insert(key, new.clone());
        match old {
            None => self.notify(&Change::Added(&new)),
            Some(old) if old.resource_version() == new.resource_version() => {}
            Some(old) => self.notify(&Change::Updated {
                old: &old,
                new: &new,
            }),
        }
    }

    fn delete(&self, obj: K) {
        let key = ObjectKey::of(&obj);
        let old = self.store.write().remove(&key);
        let gone = old.unwrap_or_else(|| Arc::new(obj));
        self.notify(&Change::Deleted(&gone));
    }

    /// Replaces the store with a fresh list, telling the handlers what changed.
    fn replace(&self, listed: BTreeMap<ObjectKey, Arc<K>>) {
        let old = std::mem::replace(&mut *self.store.write(), listed.clone());
        for (key, new) in &listed {
            match old.get(key) {
                None => self.notify(&Change::Added(new)),
                Some(o) if o.resource_version() == new.resource_version() => {}
                Some(o) => self.notify(&Change::Updated { old: o, new }),
            }
        }
        for (key, gone) in &old {
            if !listed.contains_key(key) {
                self.notify(&Change::Deleted(gone));
            }
        }
        self.synced.send_replace(true);
    }

    /// Lists and watches until the process ends, re-listing (with back-off) whenever the
    /// watch breaks.
    pub async fn run(self) {
        if self.trim {
            let api = Api::<Trimmed<K>>::all_with(self.api.clone().into_client(), &());
            let stream = watcher::watcher(api, self.config.clone())
                .default_backoff()
                .map(|e| e.map(untrim));
            self.consume(stream).await;
        } else {
            let stream = watcher::watcher(self.api.clone(), self.config.clone()).default_backoff();
            self.consume(stream).await;
        }
    }

    async fn consume<E: std::fmt::Display>(
        &self,
        stream: impl futures::Stream<Item = Result<Event<K>, E>>,
    ) {
        futures::pin_mut!(stream);
        let mut pending: Option<BTreeMap<ObjectKey, Arc<K>>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => pending = Some(BTreeMap::new()),
                Ok(Event::InitApply(obj)) => {
                    if let Some(p) = pending.as_mut() {
                        p.insert(ObjectKey::of(&obj), Arc::new(obj));
                    }
                }
                Ok(Event::InitDone) => self.replace(pending.take().unwrap_or_default()),
                Ok(Event::Apply(obj)) => self.apply(obj),
                Ok(Event::Delete(obj)) => self.delete(obj),
                Err(e) => {
                    tracing::debug!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                }
            }
        }
    }

    /// Spawns [`run`](Informer::run) on the runtime.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use std::sync::Mutex;

    fn pod(ns: &str, name: &str, rv: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.metadata.resource_version = Some(rv.into());
        p
    }

    fn informer() -> (Informer<Pod>, Arc<Mutex<Vec<String>>>) {
        // An Api over a client that is never called: these tests drive apply/replace directly.
        let svc = tower::service_fn(|_req: http::Request<kube::client::Body>| {
            std::future::pending::<
                Result<http::Response<kube::client::Body>, std::convert::Infallible>,
            >()
        });
        let client = kube::Client::new(svc, "default");
        let inf = Informer::<Pod>::new(Api::all(client), watcher::Config::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        inf.on_change(move |c| {
            let what = match c {
                Change::Added(o) => format!("add {}", o.name_any()),
                Change::Updated { new, .. } => format!("update {}", new.name_any()),
                Change::Deleted(o) => format!("delete {}", o.name_any()),
            };
            s.lock().unwrap_or_else(|e| e.into_inner()).push(what);
        });
        (inf, seen)
    }

    #[tokio::test]
    async fn a_relist_becomes_adds_updates_and_deletes() {
        let (inf, seen) = informer();
        inf.apply(pod("a", "one", "1"));
        inf.apply(pod("a", "two", "2"));
        inf.apply(pod("a", "two", "2"));
        inf.apply(pod("b", "three", "3"));
        let mut listed = BTreeMap::new();
        for p in [
            pod("a", "one", "1"),
            pod("a", "two", "5"),
            pod("c", "four", "6"),
        ] {
            listed.insert(ObjectKey::of(&p), Arc::new(p));
        }
        inf.replace(listed);
        inf.delete(pod("a", "one", "7"));
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            seen,
            [
                "add one",
                "add two",
                "add three",
                "update two",
                "add four",
                "delete three",
                "delete one"
            ]
        );
        assert!(inf.has_synced());
        let names: Vec<_> = inf.store().list().iter().map(|p| p.name_any()).collect();
        assert_eq!(names, ["two", "four"]);
        assert_eq!(inf.store().list_namespace("a").len(), 1);
        assert!(inf.store().list_namespace("b").is_empty());
    }
}
