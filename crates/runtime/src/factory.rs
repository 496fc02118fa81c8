//! A shared informer factory, as upstream's SharedInformerFactory: every part of a process
//! asks it for the informer of a type and gets the same one, so each resource is watched and
//! held in memory once however many control loops read it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::informer::{Informer, Object};

struct Entry {
    informer: Box<dyn Any + Send + Sync>,
    synced: Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
    spawn: Box<dyn Fn() + Send + Sync>,
    started: bool,
}

/// Hands out one [`Informer`] per type. Cheap to clone; clones share the informers.
#[derive(Clone)]
pub struct Factory {
    client: kube::Client,
    entries: Arc<Mutex<HashMap<TypeId, Entry>>>,
    started: Arc<Mutex<bool>>,
    /// Informers decode objects without managedFields.
    trim: bool,
}

impl Factory {
    /// A factory whose informers watch every namespace through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            entries: Arc::default(),
            started: Arc::default(),
            trim: false,
        }
    }

    /// A factory whose informers decode objects without `metadata.managedFields`
    /// ([`Informer::without_managed_fields`]), for components that never read them (upstream's
    /// kube-scheduler drops them from its informers' objects).
    pub fn without_managed_fields(client: kube::Client) -> Self {
        Self {
            trim: true,
            ..Self::new(client)
        }
    }

    fn informer<K: Object>(&self) -> Informer<K> {
        let informer = Informer::<K>::all(self.client.clone());
        if self.trim {
            informer.without_managed_fields()
        } else {
            informer
        }
    }

    /// The client the informers use.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The informer of `K` (created on first use; started at once if the factory already
    /// was).
    pub fn get<K: Object>(&self) -> Informer<K> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let started = *self.started.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.entry(TypeId::of::<K>()).or_insert_with(|| {
            let informer = self.informer::<K>();
            let (a, b) = (informer.clone(), informer.clone());
            Entry {
                informer: Box::new(informer),
                synced: Box::new(move || {
                    let a = a.clone();
                    Box::pin(async move { a.synced().await })
                }),
                spawn: Box::new(move || {
                    b.spawn();
                }),
                started: false,
            }
        });
        if started && !entry.started {
            (entry.spawn)();
            entry.started = true;
        }
        match entry.informer.downcast_ref::<Informer<K>>() {
            Some(i) => i.clone(),
            // TypeId keys make this unreachable; a fresh informer keeps it total.
            None => self.informer(),
        }
    }

    /// Starts every informer asked for so far (and any asked for later).
    pub fn start(&self) {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = true;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for entry in entries.values_mut().filter(|e| !e.started) {
            (entry.spawn)();
            entry.started = true;
        }
    }

    /// Resolves once every informer asked for so far holds its first list.
    pub async fn synced(&self) {
        let waits: Vec<_> = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| (e.synced)())
            .collect();
        futures::future::join_all(waits).await;
    }
}
