//! The watch cache: every resource's objects in memory, each with its serialized bytes, kept
//! current by one store watch over `/registry/`. LISTs and watches are served from here
//! without touching the store or re-encoding objects; the store is read only to fill it.
//!
//! Consistency: events are applied in revision order. Each resource keeps the revision of
//! its last applied event and a window of recent events; a watch starting at a revision
//! inside the window replays from it, an older one gets 410 Expired (the client relists).
//! As upstream's watch cache sizes its window, events younger than 75 s stay in it (up to
//! 102,400 per resource) besides the last 1,024: a watcher that falls behind its live
//! queue in a burst catches up from the window instead of relisting.
//! A snapshot of one resource is valid at `max(global revision, its own revision)`, both
//! read under its lock, so a list's resourceVersion never misses or repeats an event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tug_api::ResourceInfo;
use tug_store::{EventKind, ListOptions, Store};

use super::{object, stamp};
use crate::status::ApiError;

/// Events always kept per resource for watches that resume from a recent revision
/// (upstream's `defaultLowerBoundCapacity` is 100; this window was 1,024 events).
const HISTORY_MIN: usize = 1024;
/// Events kept at most per resource (upstream's `defaultUpperBoundCapacity`, 100 × 1024).
const HISTORY_MAX: usize = 100 * 1024;
/// Events younger than this stay in the window (upstream's `eventFreshDuration`: the
/// bookmark frequency plus 15 s), up to [`HISTORY_MAX`].
const EVENT_FRESH: Duration = Duration::from_secs(75);
/// Events queued per resource for a watcher before it counts as lagging.
const FANOUT_QUEUE: usize = 4096;
/// How long a request waits for the cache to reach a revision before giving up.
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// One object as the cache holds it: its bytes as served, and its decoded value, made on
/// first use (plain watches and lists serve the bytes alone, so most objects are never
/// decoded).
#[derive(Debug)]
pub struct Cached {
    /// Its key below the resource prefix: `ns/name` or `name`.
    pub key: String,
    /// Its resource version.
    pub rv: i64,
    /// The object serialized (with `metadata.resourceVersion`), shared by every response
    /// that carries it.
    pub bytes: Bytes,
    value: OnceLock<Value>,
}

impl Cached {
    /// The cached form of a stored object: `stored` with its resourceVersion spliced in
    /// ([`stamp`]); decoded and encoded again only when splicing cannot be done. Bytes that
    /// are not JSON are refused here, so [`value`](Self::value) always decodes.
    pub(crate) fn new(key: String, rv: i64, stored: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<serde::de::IgnoredAny>(stored)?;
        if let Some(bytes) = stamp::stamp(stored, rv) {
            return Ok(Cached {
                key,
                rv,
                bytes,
                value: OnceLock::new(),
            });
        }
        let value = object::decode_stored(stored, rv)?;
        let bytes = Bytes::from(serde_json::to_vec(&value)?);
        Ok(Cached {
            key,
            rv,
            bytes,
            value: OnceLock::from(value),
        })
    }

    /// A copy of the object to change, decoded from the bytes (without keeping a decoded
    /// value in the cache).
    pub fn decode(&self) -> Result<Value, serde_json::Error> {
        match self.value.get() {
            Some(v) => Ok(v.clone()),
            None => serde_json::from_slice(&self.bytes),
        }
    }

    /// The object (with `metadata.resourceVersion`).
    pub fn value(&self) -> &Value {
        // The bytes were checked when the object was cached; `Null` cannot happen.
        self.value
            .get_or_init(|| serde_json::from_slice(&self.bytes).unwrap_or(Value::Null))
    }

    /// The namespace part of the key (namespaced resources).
    pub fn namespace(&self) -> Option<&str> {
        self.key.split_once('/').map(|(ns, _)| ns)
    }
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Deleted (the object is its last state, at the deletion's revision).
    Deleted,
}

impl EventType {
    /// The watch event type name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one resource.
#[derive(Debug)]
pub struct CacheEvent {
    /// What happened.
    pub kind: EventType,
    /// The object after the change.
    pub object: Arc<Cached>,
    /// The object before it (modifications and deletions), for selector transitions.
    pub prev: Option<Arc<Cached>>,
}

struct Inner {
    objects: BTreeMap<String, Arc<Cached>>,
    /// Revision of the last event applied to this resource.
    rv: i64,
    /// Recent events in revision order, each with when it was applied.
    history: VecDeque<(Instant, Arc<CacheEvent>)>,
    /// Every event after this revision is in `history`.
    floor: i64,
    /// Live events to watchers; replaced (ending every watch) when the cache is refilled.
    tx: broadcast::Sender<Arc<CacheEvent>>,
}

impl Inner {
    /// The events of the window after revision `after` (the window is in revision order).
    fn events_after(&self, after: i64) -> Vec<Arc<CacheEvent>> {
        let from = self.history.partition_point(|(_, e)| e.object.rv <= after);
        self.history.range(from..).map(|(_, e)| e.clone()).collect()
    }

    /// Makes room for one more event at `now`: drops the oldest events beyond the last
    /// [`HISTORY_MIN`] that are older than [`EVENT_FRESH`], and any beyond [`HISTORY_MAX`].
    fn trim_history(&mut self, now: Instant) {
        while self.history.len() >= HISTORY_MIN {
            let Some((at, _)) = self.history.front() else {
                break;
            };
            let fresh = now.saturating_duration_since(*at) < EVENT_FRESH;
            if fresh && self.history.len() < HISTORY_MAX {
                break;
            }
            if let Some((_, old)) = self.history.pop_front() {
                self.floor = old.object.rv;
            }
        }
    }
}

/// The cached objects of one resource.
pub struct ResourceCache {
    /// Its store prefix.
    pub prefix: &'static str,
    inner: RwLock<Inner>,
}

/// A consistent view of one resource's objects.
pub struct Snapshot {
    /// The objects, in key order.
    pub items: Vec<Arc<Cached>>,
    /// The revision the view is valid at.
    pub rv: i64,
}

/// Why a watch cannot start at the revision asked for.
#[derive(Debug)]
pub struct TooOld {
    /// The oldest revision a watch can start from.
    pub oldest: i64,
}

/// A started watch: events to replay, then live ones.
pub struct Subscription {
    /// Objects to send as ADDED first (a watch without a revision).
    pub initial: Vec<Arc<Cached>>,
    /// Recent events after the requested revision.
    pub replay: Vec<Arc<CacheEvent>>,
    /// The revision everything before live events reflects.
    pub rv: i64,
    /// Live events.
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
}

fn range<'a>(
    objects: &'a BTreeMap<String, Arc<Cached>>,
    namespace: Option<&str>,
) -> Box<dyn Iterator<Item = &'a Arc<Cached>> + 'a> {
    match namespace {
        Some(ns) => {
            let start = format!("{ns}/");
            let end = format!("{ns}0"); // '0' follows '/'
            Box::new(objects.range(start..end).map(|(_, v)| v))
        }
        None => Box::new(objects.values()),
    }
}

impl ResourceCache {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The objects (of one namespace, or all) and the revision they are valid at.
    pub fn snapshot(&self, namespace: Option<&str>, global: &AtomicI64) -> Snapshot {
        let inner = self.read();
        let rv = global.load(Ordering::Acquire).max(inner.rv);
        Snapshot {
            items: range(&inner.objects, namespace).cloned().collect(),
            rv,
        }
    }

    /// One object.
    pub fn get(&self, key: &str) -> Option<Arc<Cached>> {
        self.read().objects.get(key).cloned()
    }

    /// The revision of the last change to this resource.
    pub fn last_change(&self) -> i64 {
        self.read().rv
    }

    /// Starts a watch: after `after` (> 0), or with the current objects first (`after` 0).
    pub fn subscribe(
        &self,
        after: i64,
        namespace: Option<&str>,
        global: &AtomicI64,
    ) -> Result<Subscription, TooOld> {
        let inner = self.read();
        let rv = global.load(Ordering::Acquire).max(inner.rv);
        let live = inner.tx.subscribe();
        if after == 0 {
            return Ok(Subscription {
                initial: range(&inner.objects, namespace).cloned().collect(),
                replay: Vec::new(),
                rv,
                live,
            });
        }
        if after < inner.floor {
            return Err(TooOld {
                oldest: inner.floor,
            });
        }
        let replay = inner.events_after(after);
        Ok(Subscription {
            initial: Vec::new(),
            replay,
            rv: rv.max(after),
            live,
        })
    }

    /// Recent events after `after`, for a watcher that fell behind the live queue.
    pub fn catch_up(&self, after: i64) -> Result<Vec<Arc<CacheEvent>>, TooOld> {
        let inner = self.read();
        if after < inner.floor {
            return Err(TooOld {
                oldest: inner.floor,
            });
        }
        Ok(inner.events_after(after))
    }

    fn apply(&self, kind: EventKind, key: String, rv: i64, stored: &[u8]) {
        let cached = match Cached::new(key, rv, stored) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(key = %self.prefix, error = %e, "undecodable object in the store");
                return;
            }
        };
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let prev = match kind {
            EventKind::Delete => inner.objects.remove(&cached.key),
            EventKind::Create | EventKind::Update => {
                inner.objects.insert(cached.key.clone(), cached.clone())
            }
        };
        let kind = match (kind, &prev) {
            (EventKind::Delete, _) => EventType::Deleted,
            (_, Some(_)) => EventType::Modified,
            (_, None) => EventType::Added,
        };
        let event = Arc::new(CacheEvent {
            kind,
            object: cached,
            prev,
        });
        inner.rv = rv;
        let now = Instant::now();
        inner.trim_history(now);
        inner.history.push_back((now, event.clone()));
        // No receivers is fine: nobody is watching this resource.
        let _ = inner.tx.send(event);
    }
}

/// The cache of every resource, by store prefix. A resource's cache is made when its first
/// object is seen or when it is first asked for (custom resources come and go with their CRDs).
pub struct Cache {
    resources: RwLock<HashMap<&'static str, Arc<ResourceCache>>>,
    /// Revision of the last store event applied.
    rv: AtomicI64,
    /// Revision of the last fill: a cache made later has every event since then (none).
    filled_at: AtomicI64,
    rv_tx: watch::Sender<i64>,
    store: Arc<dyn Store>,
}

/// The resource prefix of a key: `/registry/<group>/<plural>/`.
fn key_prefix(key: &str) -> Option<(&str, &str)> {
    let mut seen = 0;
    for (i, b) in key.bytes().enumerate() {
        if b == b'/' {
            seen += 1;
            if seen == 4 {
                return Some((&key[..=i], &key[i + 1..]));
            }
        }
    }
    None
}

impl ResourceCache {
    fn empty(prefix: &'static str, rv: i64) -> ResourceCache {
        ResourceCache {
            prefix,
            inner: RwLock::new(Inner {
                objects: BTreeMap::new(),
                rv,
                history: VecDeque::new(),
                floor: rv,
                tx: broadcast::channel(FANOUT_QUEUE).0,
            }),
        }
    }
}

impl Cache {
    /// Fills the cache from the store and keeps it current from then on.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Cache>, tug_store::Error> {
        let (rv_tx, _) = watch::channel(0);
        let cache = Arc::new(Cache {
            resources: RwLock::new(HashMap::new()),
            rv: AtomicI64::new(0),
            filled_at: AtomicI64::new(0),
            rv_tx,
            store,
        });
        let rv = cache.fill().await?;
        let watcher = cache.clone();
        tokio::spawn(async move { watcher.follow(rv).await });
        Ok(cache)
    }

    /// The cache of the resource stored under `prefix`, made if missing.
    fn by_prefix(&self, prefix: &str) -> Arc<ResourceCache> {
        if let Some(r) = self
            .resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(prefix)
        {
            return r.clone();
        }
        let mut all = self.resources.write().unwrap_or_else(|e| e.into_inner());
        let prefix = object::intern(prefix);
        let since = self.filled_at.load(Ordering::Acquire);
        all.entry(prefix)
            .or_insert_with(|| Arc::new(ResourceCache::empty(prefix, since)))
            .clone()
    }

    /// Lists everything and replaces the cached state; returns the revision read at.
    async fn fill(&self) -> Result<i64, tug_store::Error> {
        let list = self
            .store
            .list("/registry/", ListOptions::default())
            .await?;
        let mut maps: HashMap<String, BTreeMap<String, Arc<Cached>>> = HashMap::new();
        for kv in list.items {
            let Some((prefix, rest)) = key_prefix(&kv.key) else {
                continue;
            };
            match Cached::new(rest.to_owned(), kv.mod_revision, &kv.value) {
                Ok(c) => {
                    maps.entry(prefix.to_owned())
                        .or_default()
                        .insert(c.key.clone(), Arc::new(c));
                }
                Err(e) => tracing::error!(key = %kv.key, error = %e, "undecodable object"),
            }
        }
        for prefix in maps.keys() {
            self.by_prefix(prefix);
        }
        self.filled_at.store(list.revision, Ordering::Release);
        let all: Vec<Arc<ResourceCache>> = self
            .resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for r in all {
            let mut inner = r.inner.write().unwrap_or_else(|e| e.into_inner());
            inner.objects = maps.remove(r.prefix).unwrap_or_default();
            inner.history.clear();
            inner.floor = list.revision;
            // Watches in flight may have missed events: end them; their clients watch again
            // from their last revision and, being older than the floor, relist.
            inner.tx = broadcast::channel(FANOUT_QUEUE).0;
        }
        self.publish(list.revision);
        Ok(list.revision)
    }

    fn publish(&self, rv: i64) {
        self.rv.fetch_max(rv, Ordering::AcqRel);
        self.rv_tx.send_replace(self.rv.load(Ordering::Acquire));
    }

    /// Applies store events from `after` on, forever; refills after losing the stream.
    async fn follow(self: Arc<Self>, mut after: i64) {
        loop {
            match self.store.watch("/registry/", after).await {
                Ok(mut stream) => {
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(event) => {
                                let rv = event.revision();
                                if let Some((prefix, rest)) = key_prefix(&event.kv.key) {
                                    self.by_prefix(prefix).apply(
                                        event.kind,
                                        rest.to_owned(),
                                        rv,
                                        &event.kv.value,
                                    );
                                }
                                after = rv;
                                self.publish(rv);
                            }
                            Err(tug_store::Error::Closed) => return,
                            Err(e) => {
                                tracing::warn!(error = %e, "the cache lost its store watch");
                                break;
                            }
                        }
                    }
                }
                Err(tug_store::Error::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "the cache could not watch the store"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Whatever was missed: read the state again. Watchers see a gap as 410 and relist.
            match self.fill().await {
                Ok(rv) => after = rv,
                Err(e) => tracing::warn!(error = %e, "the cache could not relist the store"),
            }
        }
    }

    /// The cache of one resource.
    pub fn resource(&self, info: &ResourceInfo) -> Arc<ResourceCache> {
        self.by_prefix(object::storage_prefix(info))
    }

    /// One object of `info` by key (`ns/name` or `name`): as the cache has it, or — when it
    /// is missing there or `current` refuses the cached one — after the cache has caught up
    /// with the store. The lookups of admission and TokenRequest: objects named in a request
    /// exist by then, so the store round trip is paid only on a miss.
    pub async fn get_current(
        &self,
        info: &ResourceInfo,
        key: &str,
        current: impl Fn(&Value) -> bool,
    ) -> Result<Option<Arc<Cached>>, ApiError> {
        let cache = self.resource(info);
        if let Some(obj) = cache.get(key).filter(|o| current(o.value())) {
            return Ok(Some(obj));
        }
        self.wait_fresh().await?;
        Ok(cache.get(key))
    }

    /// The revision of the last applied event.
    pub fn revision(&self) -> &AtomicI64 {
        &self.rv
    }

    /// Waits until the cache has applied revision `rv`; a 504 after [`FRESHNESS_WAIT`].
    pub async fn wait_for(&self, rv: i64) -> Result<(), ApiError> {
        let mut rx = self.rv_tx.subscribe();
        let reached = tokio::time::timeout(FRESHNESS_WAIT, rx.wait_for(|&now| now >= rv)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::from_store(
                &tug_store::Error::FutureRevision {
                    requested: rv,
                    current: self.rv.load(Ordering::Acquire),
                },
                crate::status::Target::NONE,
            )),
        }
    }

    /// Waits until the cache reflects every write acknowledged so far (a consistent read).
    pub async fn wait_fresh(&self) -> Result<(), ApiError> {
        let rv = self
            .store
            .current_revision()
            .await
            .map_err(|e| ApiError::from_store(&e, crate::status::Target::NONE))?;
        self.wait_for(rv).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_prefix_and_object() {
        assert_eq!(
            key_prefix("/registry/core/pods/default/web"),
            Some(("/registry/core/pods/", "default/web"))
        );
        assert_eq!(key_prefix("/registry/core"), None);
    }

    fn event(c: &ResourceCache, rv: i64) {
        c.apply(EventKind::Update, format!("ns/p{}", rv % 3), rv, b"{}");
    }

    #[test]
    fn the_window_keeps_fresh_events_beyond_its_minimum() {
        let c = ResourceCache::empty("/registry/core/pods/", 1);
        let n = HISTORY_MIN as i64 * 3;
        for rv in 2..2 + n {
            event(&c, rv);
        }
        // All fresh: a watcher far behind the live queue catches up from the window.
        let events = c.catch_up(1).map_err(|e| e.oldest).unwrap();
        assert_eq!(events.len(), n as usize);
        assert_eq!(events[0].object.rv, 2);
        let tail = c.catch_up(n).map_err(|e| e.oldest).unwrap();
        assert_eq!(
            tail.iter().map(|e| e.object.rv).collect::<Vec<_>>(),
            vec![n + 1]
        );

        // Events older than the fresh duration go, but the last HISTORY_MIN stay.
        let later = Instant::now() + EVENT_FRESH + Duration::from_secs(1);
        let mut inner = c.inner.write().unwrap();
        inner.trim_history(later);
        assert_eq!(inner.history.len(), HISTORY_MIN - 1);
        let floor = inner.floor;
        drop(inner);
        assert_eq!(floor, n + 2 - HISTORY_MIN as i64);
        assert_eq!(
            c.catch_up(floor - 1).map(|_| ()).map_err(|e| e.oldest),
            Err(floor)
        );
        assert_eq!(
            c.catch_up(floor).map(|e| e.len()).unwrap_or(0),
            HISTORY_MIN - 1
        );
    }
}
