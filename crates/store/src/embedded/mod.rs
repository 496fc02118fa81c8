//! The embedded store, Tugboat's default: durable on disk in a directory of two redb files
//! (a write-ahead log and an index, layout in [`schema`]), no separate process to run.
//!
//! - Writes go to a single writer thread that commits them in groups (see [`writer`]): many
//!   concurrent writers share one fsync of the log, and each is acknowledged only once
//!   durable. Opening the store replays any log the index had not made durable.
//! - Reads run on the blocking pool against redb snapshots (MVCC: readers never block the
//!   writer). Lists at the latest revision read the `kv` table, lists at a past revision the
//!   `hist` table, and watch catch-up reads the log.
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
use schema::{from_disk, HIST, KV, LOG, META};
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

/// The two databases: the write-ahead log and the index.
struct Databases {
    log: Database,
    index: Database,
}

struct Inner {
    dbs: Arc<Databases>,
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
    /// Opens (or creates) the store in the directory `dir`, continuing from its last
    /// revision, and starts periodic compaction if configured. Needs a Tokio runtime.
    pub async fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let cache = options.cache_bytes;
        let store = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::backend(format!("creating directory {}", dir.display()), e))?;
            let open = |name: &str, cache: usize| {
                let path = dir.join(name);
                redb::Builder::new()
                    .set_cache_size(cache)
                    .create(&path)
                    .map_err(|e| Error::backend(format!("opening {}", path.display()), e))
            };
            Self::start(Databases {
                log: open("log.redb", cache / 4)?,
                index: open("index.redb", cache)?,
            })
        })
        .await
        .map_err(|e| Error::backend("open task", e))??;
        if let Some(every) = options.compaction_interval {
            tokio::spawn(compact_periodically(Arc::downgrade(&store.inner), every));
        }
        Ok(store)
    }

    /// The same engine on memory: nothing survives the process. For tests.
    pub fn in_memory() -> Result<Self> {
        let memory = || {
            redb::Builder::new()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(|e| Error::backend("creating the in-memory database", e))
        };
        Self::start(Databases {
            log: memory()?,
            index: memory()?,
        })
    }

    fn start(dbs: Databases) -> Result<Self> {
        let (revision, compacted, pending) = recover(&dbs)?;
        let dbs = Arc::new(dbs);
        let (events, _) = broadcast::channel(FANOUT_BUFFER);
        let shared = Arc::new(Shared {
            events,
            current: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            dbs: dbs.clone(),
            rx,
            shared: shared.clone(),
            revision,
            // Finish a compaction a crash interrupted.
            compacting: pending.then(|| (compacted, Vec::new())),
            checkpointed: std::time::Instant::now(),
            last_batch: 0,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::backend("starting the writer thread", e))?;
        tracing::debug!(revision, compacted, "embedded store open");
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                dbs,
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
        self.read(|dbs, _| {
            let fail = |e: redb::Error| Error::backend("counting history", e);
            let txn = dbs.index.begin_read().map_err(|e| fail(e.into()))?;
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
        f: impl FnOnce(&Databases, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.dbs, &inner.shared))
            .await
            .map_err(|e| Error::backend("read task", e))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let key = key.to_owned();
        self.read(move |dbs, _| reads::get(&dbs.index, &key)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let start = crate::key::list_start(prefix, &options)?;
        let prefix = prefix.to_owned();
        self.read(move |dbs, shared| {
            reads::list(
                &dbs.index,
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
            self.inner.dbs.clone(),
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

/// Creates the tables, replays the log into the index where the index is behind, and returns
/// the current revision, the compacted revision, and whether a compaction was interrupted.
fn recover(dbs: &Databases) -> Result<(Revision, Revision, bool)> {
    let fail = |e: redb::Error| Error::backend("recovering the embedded store", e);
    let ltxn = dbs.log.begin_write().map_err(|e| fail(e.into()))?;
    let (first, last) = {
        let log = ltxn.open_table(LOG).map_err(|e| fail(e.into()))?;
        let first = log
            .first()
            .map_err(|e| fail(e.into()))?
            .map(|(r, _)| r.value());
        let last = log
            .last()
            .map_err(|e| fail(e.into()))?
            .map(|(r, _)| r.value());
        (first, last)
    };
    ltxn.commit().map_err(|e| fail(e.into()))?;

    let itxn = dbs.index.begin_write().map_err(|e| fail(e.into()))?;
    let (applied, compacted) = {
        let meta = itxn.open_table(META).map_err(|e| fail(e.into()))?;
        let read = |name| -> Result<Revision> {
            Ok(meta
                .get(name)
                .map_err(|e| fail(e.into()))?
                .map(|v| from_disk(v.value()))
                .unwrap_or(0))
        };
        (read(schema::META_REVISION)?, read(schema::META_COMPACTED)?)
    };
    let mut revision = applied;
    {
        let mut t = writer::IndexTables {
            kv: itxn.open_table(KV).map_err(|e| fail(e.into()))?,
            hist: itxn.open_table(HIST).map_err(|e| fail(e.into()))?,
        };
        if let Some(last) = last.filter(|l| from_disk(*l) > applied) {
            let rtxn = dbs.log.begin_read().map_err(|e| fail(e.into()))?;
            let log = rtxn.open_table(LOG).map_err(|e| fail(e.into()))?;
            let mut replayed = 0u64;
            let range = log
                .range(schema::to_disk(applied) + 1..=last)
                .map_err(|e| fail(e.into()))?;
            for entry in range {
                let (rev, raw) = entry.map_err(|e| fail(e.into()))?;
                let rev = from_disk(rev.value());
                let (kind, kv) =
                    schema::decode_log(rev, raw.value()).ok_or_else(|| Error::Backend {
                        message: format!("log record at revision {rev} is corrupt"),
                        source: None,
                    })?;
                writer::apply_to_index(&mut t, kind, &kv).map_err(fail)?;
                revision = rev;
                replayed += 1;
            }
            tracing::info!(replayed, revision, "replayed the store log into the index");
        }
        let mut meta = itxn.open_table(META).map_err(|e| fail(e.into()))?;
        meta.insert(schema::META_REVISION, schema::to_disk(revision))
            .map_err(|e| fail(e.into()))?;
    }
    itxn.commit().map_err(|e| fail(e.into()))?;
    let pending = first.is_some_and(|f| from_disk(f) <= compacted);
    // Like etcd, a fresh store is at revision 1, so every write has a revision after some
    // earlier one and "watch after 0" can keep meaning "from now".
    Ok((revision.max(1), compacted, pending))
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
