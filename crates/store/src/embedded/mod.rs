//! The embedded store, Tugboat's default: durable on disk in one redb file, no separate
//! process to run.
//!
//! - Writes go to a single writer thread that commits them in groups (see [`writer`]): many
//!   concurrent writers share one fsync, and each is acknowledged only once durable.
//! - Reads run on the blocking pool against redb snapshots (MVCC: readers never block the
//!   writer). Lists at the latest revision read the `kv` table; lists at a past revision and
//!   watch catch-up read the history tables (layout in [`schema`]).
//! - Watches share one copy of each event between all watchers (see [`watch`]).
//! - Compaction forgets old revisions in chunks between write batches; with
//!   [`EmbeddedOptions::compaction_interval`] it runs periodically, compacting to the revision
//!   that was current one interval earlier, as kube-apiserver does with etcd.
//!
//! [`EmbeddedStore::in_memory`] runs the same engine on memory, for tests.

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
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::key::{validate_key, validate_prefix, validate_revision, validate_value};
use crate::{
    Error, Event, KeyValue, ListOptions, ListResult, Result, Revision, Store, WatchStream,
};
use schema::{from_disk, HIST, KV, META, REVS};
use writer::{Command, Op, Writer};

/// How many events the live fan-out buffers before a slow watcher reads from the log instead.
const FANOUT_BUFFER: usize = 4096;

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Compact periodically: each tick compacts to the revision of the previous tick.
    /// `None` never compacts on its own.
    pub compaction_interval: Option<Duration>,
    /// Bytes of page cache redb may keep in memory.
    pub cache_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            compaction_interval: Some(Duration::from_secs(300)),
            cache_bytes: 64 * 1024 * 1024,
        }
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
    db: Arc<Database>,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    /// Stops the writer and waits for it, so the file can be reopened at once.
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
    /// Opens (or creates) the store in the file `path`, continuing from its last revision,
    /// and starts periodic compaction if configured. Needs a Tokio runtime.
    pub async fn open(path: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let cache = options.cache_bytes;
        let db = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::backend(format!("creating directory {}", dir.display()), e)
                })?;
            }
            redb::Builder::new()
                .set_cache_size(cache)
                .create(&path)
                .map_err(|e| Error::backend(format!("opening {}", path.display()), e))
        })
        .await
        .map_err(|e| Error::backend("open task", e))??;
        let store = Self::start(db)?;
        if let Some(every) = options.compaction_interval {
            tokio::spawn(compact_periodically(Arc::downgrade(&store.inner), every));
        }
        Ok(store)
    }

    /// The same engine on memory: nothing survives the process. For tests.
    pub fn in_memory() -> Result<Self> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| Error::backend("creating the in-memory database", e))?;
        Self::start(db)
    }

    fn start(db: Database) -> Result<Self> {
        let fail = |e: redb::Error| Error::backend("initialising the database", e);
        // Create the tables and read where we left off.
        let txn = db.begin_write().map_err(|e| fail(e.into()))?;
        let (revision, compacted, pending) = {
            let meta = txn.open_table(META).map_err(|e| fail(e.into()))?;
            txn.open_table(KV).map_err(|e| fail(e.into()))?;
            txn.open_table(HIST).map_err(|e| fail(e.into()))?;
            let revs = txn.open_table(REVS).map_err(|e| fail(e.into()))?;
            let read = |name| -> Result<Revision> {
                Ok(meta
                    .get(name)
                    .map_err(|e| fail(e.into()))?
                    .map(|v| from_disk(v.value()))
                    .unwrap_or(0))
            };
            let compacted = read(schema::META_COMPACTED)?;
            let first = revs.first().map_err(|e| fail(e.into()))?;
            let pending = first.is_some_and(|(rev, _)| from_disk(rev.value()) <= compacted);
            // Like etcd, a fresh store is at revision 1, so every write has a revision after
            // some earlier one and "watch after 0" can keep meaning "from now".
            (read(schema::META_REVISION)?.max(1), compacted, pending)
        };
        txn.commit().map_err(|e| fail(e.into()))?;

        let db = Arc::new(db);
        let (events, _) = broadcast::channel(FANOUT_BUFFER);
        let shared = Arc::new(Shared {
            events,
            current: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            db: db.clone(),
            rx,
            shared: shared.clone(),
            revision,
            // Finish a compaction a crash interrupted.
            compacting: pending.then(|| (compacted, Vec::new())),
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::backend("starting the writer thread", e))?;
        tracing::debug!(revision, compacted, "embedded store open");
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                commands,
                shared,
                writer: Some(writer),
            }),
        })
    }

    /// The oldest revision still readable.
    pub fn compacted_revision(&self) -> Revision {
        self.inner.shared.compacted.load(Ordering::SeqCst)
    }

    /// How many versions the history holds (for tests and diagnostics).
    pub async fn history_len(&self) -> Result<u64> {
        self.read(|db, _| {
            let fail = |e: redb::Error| Error::backend("counting history", e);
            let txn = db.begin_read().map_err(|e| fail(e.into()))?;
            let hist = txn.open_table(HIST).map_err(|e| fail(e.into()))?;
            hist.len().map_err(|e| fail(e.into()))
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
        f: impl FnOnce(&Database, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.db, &inner.shared))
            .await
            .map_err(|e| Error::backend("read task", e))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let key = key.to_owned();
        self.read(move |db, _| reads::get(db, &key)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let start = crate::key::list_start(prefix, &options)?;
        let prefix = prefix.to_owned();
        self.read(move |db, shared| {
            reads::list(
                db,
                &prefix,
                &start,
                options.limit,
                shared.compacted.load(Ordering::SeqCst),
            )
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
            self.inner.db.clone(),
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
