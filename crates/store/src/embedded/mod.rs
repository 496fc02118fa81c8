//! The embedded store, Tugboat's default: durable on disk in one fjall database (an LSM
//! tree with a journal; layout in [`schema`], the choice in docs/store.md), no separate
//! process to run.
//!
//! - Writes go to a single writer thread that commits them in groups (see [`writer`]): many
//!   concurrent writers share one journal fsync, and each is acknowledged only once durable.
//!   Opening the store recovers from the journal.
//! - Reads run on the blocking pool against fjall snapshots (readers never block the
//!   writer). Lists at the latest revision read the `kv` keyspace, lists at a past revision
//!   the `hist` keyspace, and watch catch-up the `revs` log.
//! - Watches share one copy of each event between all watchers (see [`watch`]).
//! - Compaction forgets old revisions in chunks between write batches; with
//!   [`EmbeddedOptions::compaction_interval`] it runs periodically, compacting to the revision
//!   that was current one interval earlier, as kube-apiserver does with etcd.
//!
//! [`EmbeddedStore::in_memory`] runs the same engine in a temporary directory without
//! fsync, for tests.

mod reads;
mod schema;
mod watch;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fjall::{Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::key::{validate_key, validate_prefix, validate_revision, validate_value};
use crate::{
    Error, Event, KeyValue, ListOptions, ListResult, Result, Revision, Store, WatchStream,
};
use writer::{Command, Op, Writer};

/// How many events the live fan-out buffers before a slow watcher reads from the log instead.
const FANOUT_BUFFER: usize = 4096;

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Compact periodically: each tick compacts to the revision of the previous tick.
    /// `None` never compacts on its own.
    pub compaction_interval: Option<Duration>,
    /// Bytes of block cache fjall may keep in memory.
    pub cache_bytes: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            compaction_interval: Some(Duration::from_secs(300)),
            cache_bytes: 16 * 1024 * 1024,
        }
    }
}

impl EmbeddedOptions {
    /// The defaults, but compacting only when asked ([`Store::compact`]): for tests and
    /// benchmarks that must not see history vanish under them.
    pub fn manual_compaction() -> Self {
        EmbeddedOptions {
            compaction_interval: None,
            ..Default::default()
        }
    }
}

/// The fjall database and its keyspaces.
struct Engine {
    db: fjall::Database,
    kv: Keyspace,
    hist: Keyspace,
    revs: Keyspace,
    meta: Keyspace,
    /// Whether commits wait for the journal to reach the disk (off only for tests).
    durable: bool,
}

impl Engine {
    fn open(path: &Path, cache_bytes: u64, durable: bool) -> Result<Self> {
        let db = fjall::Database::builder(path)
            .cache_size(cache_bytes)
            .temporary(!durable)
            .open()
            .map_err(|e| Error::backend(format!("opening {}", path.display()), e))?;
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| Error::backend(format!("opening keyspace {name}"), e))
        };
        Ok(Engine {
            kv: open("kv")?,
            hist: open("hist")?,
            revs: open("revs")?,
            meta: open("meta")?,
            db,
            durable,
        })
    }

    fn persist_mode(&self) -> PersistMode {
        if self.durable {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        }
    }

    /// The latest version of `key`.
    fn latest(&self, key: &str) -> Result<Option<KeyValue>> {
        let raw = self
            .kv
            .get(key)
            .map_err(|e| Error::backend("reading the embedded store", e))?;
        match raw {
            Some(raw) => schema::decode_kv(key, &raw)
                .map(Some)
                .ok_or_else(|| Error::Backend {
                    message: format!("stored value for key {key:?} is corrupt"),
                    source: None,
                }),
            None => Ok(None),
        }
    }

    fn meta(&self, name: &str) -> Result<Revision> {
        Ok(self
            .meta
            .get(name)
            .map_err(|e| Error::backend("reading store metadata", e))?
            .and_then(|raw| schema::decode_meta(&raw))
            .unwrap_or(0))
    }
}

/// State shared by the store handle, the writer thread and the watchers.
struct Shared {
    /// Committed events, in revision order.
    events: broadcast::Sender<Arc<Event>>,
    /// The latest committed (durable) revision.
    current: AtomicI64,
    /// The oldest revision still readable.
    compacted: AtomicI64,
}

struct Inner {
    engine: Arc<Engine>,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The directory of an in-memory (temporary) store, removed on drop.
    _temp: Option<tempfile::TempDir>,
}

impl Drop for Inner {
    /// Stops the writer and waits for it, so the directory can be reopened at once.
    fn drop(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.commands, closed));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The embedded store. Cheap to clone; all clones share one database and writer.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field(
                "revision",
                &self.inner.shared.current.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in the directory `dir`, continuing from its last
    /// revision, and starts periodic compaction if configured. Needs a Tokio runtime.
    pub async fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let cache = options.cache_bytes;
        let store = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::backend(format!("creating directory {}", dir.display()), e))?;
            Self::start(Engine::open(&dir, cache, true)?, None)
        })
        .await
        .map_err(|e| Error::backend("open task", e))??;
        if let Some(every) = options.compaction_interval {
            tokio::spawn(compact_periodically(Arc::downgrade(&store.inner), every));
        }
        Ok(store)
    }

    /// The same engine in a temporary directory, without fsync: nothing survives the
    /// process. For tests.
    pub fn in_memory() -> Result<Self> {
        let temp = tempfile::tempdir().map_err(|e| Error::backend("creating a temp dir", e))?;
        let engine = Engine::open(temp.path(), 4 * 1024 * 1024, false)?;
        Self::start(engine, Some(temp))
    }

    fn start(engine: Engine, temp: Option<tempfile::TempDir>) -> Result<Self> {
        let compacted = engine.meta(schema::META_COMPACTED)?;
        // Like etcd, a fresh store is at revision 1, so every write has a revision after some
        // earlier one and "watch after 0" can keep meaning "from now".
        let revision = engine.meta(schema::META_REVISION)?.max(1);
        let pending = engine
            .db
            .snapshot()
            .first_key_value(&engine.revs)
            .map(|g| g.key())
            .transpose()
            .map_err(|e| Error::backend("reading the log", e))?
            .and_then(|k| schema::parse_rev_key(&k))
            .is_some_and(|first| first <= compacted);
        let engine = Arc::new(engine);
        let (events, _) = broadcast::channel(FANOUT_BUFFER);
        let shared = Arc::new(Shared {
            events,
            current: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            engine: engine.clone(),
            rx,
            shared: shared.clone(),
            revision,
            // Finish a compaction a crash interrupted.
            compacting: pending.then(|| (compacted, Vec::new())),
            last_batch: 0,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::backend("starting the writer thread", e))?;
        tracing::debug!(revision, compacted, "embedded store open");
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                engine,
                commands,
                shared,
                writer: Some(writer),
                _temp: temp,
            }),
        })
    }

    /// The oldest revision still readable.
    pub fn compacted_revision(&self) -> Revision {
        self.inner.shared.compacted.load(Ordering::SeqCst)
    }

    /// How many versions the history holds (for tests and diagnostics; scans it).
    pub async fn history_len(&self) -> Result<u64> {
        self.read(|e, _| {
            let n = e
                .hist
                .len()
                .map_err(|err| Error::backend("counting history", err))?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn write(&self, op: Op) -> Result<KeyValue> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Write { op, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.engine, &inner.shared))
            .await
            .map_err(|e| Error::backend("read task", e))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let key = key.to_owned();
        self.read(move |e, _| e.latest(&key)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let start = crate::key::list_start(prefix, &options)?;
        let prefix = prefix.to_owned();
        self.read(move |e, shared| {
            let compacted = shared.compacted.load(Ordering::SeqCst);
            reads::list(e, &prefix, &start, options.limit, compacted)
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        validate_key(key)?;
        validate_value(key, &value)?;
        self.write(Op::Create {
            key: key.to_owned(),
            value,
        })
        .await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        validate_key(key)?;
        validate_value(key, &value)?;
        validate_revision(expected)?;
        self.write(Op::Update {
            key: key.to_owned(),
            value,
            expected,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        validate_key(key)?;
        if let Some(e) = expected {
            validate_revision(e)?;
        }
        self.write(Op::Delete {
            key: key.to_owned(),
            expected,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        validate_revision(after)?;
        watch::start(
            self.inner.engine.clone(),
            self.inner.shared.clone(),
            prefix.to_owned(),
            after,
        )
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        validate_revision(revision)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Compact { revision, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.shared.current.load(Ordering::SeqCst))
    }
}

/// Every `every`, compacts to the revision that was current at the previous tick, so history
/// is kept for at least one interval. Stops when the store is dropped.
async fn compact_periodically(inner: Weak<Inner>, every: Duration) {
    let mut previous: Option<Revision> = None;
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let store = EmbeddedStore { inner };
        if let Some(rev) = previous.filter(|r| *r > 0) {
            if let Err(e) = store.compact(rev).await {
                tracing::warn!(error = %e, revision = rev, "periodic compaction failed");
            }
        }
        previous = store.current_revision().await.ok();
    }
}
