//! The embedded store's single writer: group commit, checkpoints and compaction.
//!
//! All mutations go through one thread. It takes every request waiting in its queue (up to
//! [`MAX_BATCH`]) and applies them in arrival order: compare-and-swap checks run against the
//! index (seeing earlier writes of the same batch, so exactly one of several racing updates
//! wins), the resulting changes are appended to the log and the log is committed durably —
//! one fsync for the whole batch — and only then is each caller answered and each event
//! published to watchers. The index commit that follows skips the fsync; every
//! [`CHECKPOINT_INTERVAL`] one index commit is made durable, so a restart replays at most
//! that much log.
//!
//! Compaction runs on the same thread in chunks of [`COMPACT_CHUNK`] revisions between
//! batches, so a large compaction never stalls writers for long.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Durability, ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::schema::{self, to_disk, HIST, KV, LOG, META};
use super::{Databases, Shared};
use crate::{Error, Event, EventKind, KeyValue, Result, Revision};

/// The most writes committed in one transaction.
pub(super) const MAX_BATCH: usize = 1024;
/// The most revisions forgotten in one compaction transaction.
pub(super) const COMPACT_CHUNK: usize = 4096;
/// A batch at least this big means load: the next batch waits [`LINGER`] for stragglers.
pub(super) const LINGER_ABOVE: usize = 8;
/// How long a batch under load waits for more writes to join it.
pub(super) const LINGER: Duration = Duration::from_micros(LINGER_MICROS);
const LINGER_MICROS: u64 = 300;
/// How often the index is made durable.
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// One mutation.
pub(super) enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

/// What the writer thread is asked to do.
pub(super) enum Command {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<KeyValue>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) dbs: Arc<Databases>,
    pub(super) rx: mpsc::UnboundedReceiver<Command>,
    pub(super) shared: Arc<Shared>,
    /// The latest committed revision.
    pub(super) revision: Revision,
    /// Compaction still to be done physically, and who waits for it.
    pub(super) compacting: Option<(Revision, Vec<oneshot::Sender<Result<()>>>)>,
    /// When the index was last made durable.
    pub(super) checkpointed: Instant,
    /// How many writes the last batch had.
    pub(super) last_batch: usize,
}

/// The index tables a change is applied to.
pub(super) struct IndexTables<'t> {
    pub(super) kv: Table<'t, &'static str, &'static [u8]>,
    pub(super) hist: Table<'t, (&'static str, u64), &'static [u8]>,
}

/// Applies one change (from a fresh write or from log replay) to the index.
pub(super) fn apply_to_index(
    t: &mut IndexTables<'_>,
    kind: EventKind,
    kv: &KeyValue,
) -> Result<(), redb::Error> {
    let key = kv.key.as_str();
    match kind {
        EventKind::Delete => {
            t.kv.remove(key)?;
        }
        _ => {
            let encoded = schema::encode_kv(kv.create_revision, kv.mod_revision);
            t.kv.insert(key, encoded.as_slice())?;
        }
    }
    let hist = schema::encode_hist(kind, kv.create_revision, &kv.value);
    t.hist
        .insert((key, to_disk(kv.mod_revision)), hist.as_slice())?;
    Ok(())
}

impl Writer {
    /// Runs until every sender is gone, then makes the index durable.
    pub(super) fn run(mut self) {
        loop {
            let first = if self.compacting.is_some() {
                match self.rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.compact_chunk();
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.blocking_recv() {
                    Some(cmd) => cmd,
                    None => break,
                }
            };
            let mut writes = Vec::new();
            let mut next = Some(first);
            let mut lingered = false;
            loop {
                while let Some(cmd) = next.take() {
                    match cmd {
                        Command::Write { op, reply } => writes.push((op, reply)),
                        Command::Compact { revision, reply } => {
                            self.start_compaction(revision, reply)
                        }
                    }
                    if writes.len() < MAX_BATCH {
                        next = self.rx.try_recv().ok();
                    }
                }
                // Under load, the writers answered by the last batch are still on their way
                // back; waiting for them briefly makes one batch (one fsync) of two.
                if lingered || self.last_batch < LINGER_ABOVE || writes.len() >= self.last_batch {
                    break;
                }
                lingered = true;
                std::thread::sleep(LINGER);
                next = self.rx.try_recv().ok();
            }
            self.last_batch = writes.len();
            if !writes.is_empty() {
                self.commit_batch(writes);
            }
            if self.compacting.is_some() {
                self.compact_chunk();
            }
        }
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "final index checkpoint failed; the log will be replayed");
        }
        tracing::debug!("embedded store writer stopped");
    }

    /// Commits an empty durable index transaction, persisting all earlier index commits.
    fn checkpoint(&mut self) -> Result<(), redb::Error> {
        let mut txn = self.dbs.index.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        self.checkpointed = Instant::now();
        Ok(())
    }

    fn commit_batch(&mut self, writes: Vec<(Op, oneshot::Sender<Result<KeyValue>>)>) {
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events = Vec::with_capacity(writes.len());
        let durable_index = self.checkpointed.elapsed() >= CHECKPOINT_INTERVAL;
        let committed = (|| -> Result<Revision, redb::Error> {
            let mut itxn = self.dbs.index.begin_write()?;
            if !durable_index {
                itxn.set_durability(Durability::None)?;
            }
            let mut rev = self.revision;
            {
                let mut t = IndexTables {
                    kv: itxn.open_table(KV)?,
                    hist: itxn.open_table(HIST)?,
                };
                for (op, reply) in writes {
                    match check(&t, rev + 1, op)? {
                        Ok((kind, kv)) => {
                            apply_to_index(&mut t, kind, &kv)?;
                            rev += 1;
                            events.push(Arc::new(Event {
                                kind,
                                kv: kv.clone(),
                            }));
                            outcomes.push((reply, Ok(kv)));
                        }
                        Err(e) => outcomes.push((reply, Err(e))),
                    }
                }
                itxn.open_table(META)?
                    .insert(schema::META_REVISION, to_disk(rev))?;
            }
            if events.is_empty() {
                // Only failed writes: nothing to log, nothing changed.
                itxn.abort()?;
                return Ok(rev);
            }
            // The log commit is the durability point.
            let ltxn = self.dbs.log.begin_write()?;
            {
                let mut log = ltxn.open_table(LOG)?;
                for e in &events {
                    let record =
                        schema::encode_log(e.kind, e.kv.create_revision, &e.kv.key, &e.kv.value);
                    log.insert(to_disk(e.revision()), record.as_slice())?;
                }
            }
            ltxn.commit()?;
            itxn.commit()?;
            Ok(rev)
        })();
        match committed {
            Ok(rev) => {
                if durable_index && !events.is_empty() {
                    self.checkpointed = Instant::now();
                }
                self.revision = rev;
                // Publish the revision before the events: a watcher reads the revision after
                // subscribing, so it either gets an event live or reads it from the log.
                self.shared.current.store(rev, Ordering::SeqCst);
                for event in events {
                    // No receivers is fine: nobody is watching.
                    let _ = self.shared.events.send(event);
                }
                for (reply, outcome) in outcomes {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded store commit failed");
                let message = e.to_string();
                for (reply, _) in outcomes {
                    let _ = reply.send(Err(Error::Backend {
                        message: format!("commit failed: {message}"),
                        source: None,
                    }));
                }
            }
        }
    }

    fn start_compaction(&mut self, revision: Revision, reply: oneshot::Sender<Result<()>>) {
        if revision > self.revision {
            let _ = reply.send(Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            }));
            return;
        }
        let logical = self.shared.compacted.load(Ordering::SeqCst);
        let target = revision.max(logical);
        let persisted = (|| -> Result<(), redb::Error> {
            let txn = self.dbs.index.begin_write()?;
            txn.open_table(META)?
                .insert(schema::META_COMPACTED, to_disk(target))?;
            txn.commit()?;
            self.checkpointed = Instant::now();
            Ok(())
        })();
        if let Err(e) = persisted {
            let _ = reply.send(Err(Error::backend("compaction", e)));
            return;
        }
        // Reads and watches below the target fail from now on; the space is reclaimed in
        // chunks by compact_chunk.
        self.shared.compacted.store(target, Ordering::SeqCst);
        match &mut self.compacting {
            Some((t, waiters)) => {
                *t = (*t).max(target);
                waiters.push(reply);
            }
            None => self.compacting = Some((target, vec![reply])),
        }
    }

    /// Forgets up to [`COMPACT_CHUNK`] revisions at or below the compaction target: first
    /// the superseded versions in the index (durably), then the log entries.
    pub(super) fn compact_chunk(&mut self) {
        let Some((target, _)) = &self.compacting else {
            return;
        };
        let target = to_disk(*target);
        let result = (|| -> Result<bool, redb::Error> {
            let mut batch = Vec::new();
            {
                let ltxn = redb::ReadableDatabase::begin_read(&self.dbs.log)?;
                let log = ltxn.open_table(LOG)?;
                for entry in log.range(..=target)?.take(COMPACT_CHUNK) {
                    let (rev, raw) = entry?;
                    let key = schema::log_key(raw.value()).ok_or_else(|| {
                        redb::Error::Corrupted(format!("log record {} is corrupt", rev.value()))
                    })?;
                    batch.push((rev.value(), key.to_owned()));
                }
            }
            let done = batch.len() < COMPACT_CHUNK;
            let itxn = self.dbs.index.begin_write()?;
            {
                let mut hist = itxn.open_table(HIST)?;
                for (rev, key) in &batch {
                    let (key, rev) = (key.as_str(), *rev);
                    // Versions older than this one can no longer be read at any revision.
                    hist.retain_in((key, 0)..(key, rev), |_, _| false)?;
                    let tombstone = hist
                        .get((key, rev))?
                        .is_some_and(|raw| schema::hist_is_delete(raw.value()));
                    if tombstone {
                        let later = hist.range((key, rev + 1)..=(key, target))?.next().is_some();
                        if !later {
                            hist.remove((key, rev))?;
                        }
                    }
                }
            }
            // Durable before the log entries go, so they are never needed for replay again.
            itxn.commit()?;
            self.checkpointed = Instant::now();
            if let (Some((first, _)), Some((last, _))) = (batch.first(), batch.last()) {
                let ltxn = self.dbs.log.begin_write()?;
                ltxn.open_table(LOG)?
                    .retain_in(*first..=*last, |_, _| false)?;
                ltxn.commit()?;
            }
            Ok(done)
        })();
        match result {
            Ok(false) => {}
            Ok(true) => {
                if let Some((target, waiters)) = self.compacting.take() {
                    tracing::debug!(revision = target, "compaction done");
                    for w in waiters {
                        let _ = w.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "compaction failed");
                if let Some((_, waiters)) = self.compacting.take() {
                    for w in waiters {
                        let _ = w.send(Err(Error::Backend {
                            message: format!("compaction failed: {e}"),
                            source: None,
                        }));
                    }
                }
            }
        }
    }
}

/// Checks one mutation against the index and builds the change it makes at revision `rev`.
/// The outer error aborts the batch (storage failed); the inner one is the caller's
/// (conflict, missing key…).
fn check(
    t: &IndexTables<'_>,
    rev: Revision,
    op: Op,
) -> Result<Result<(EventKind, KeyValue)>, redb::Error> {
    let (key, kind, value, create) = match op {
        Op::Create { key, value } => {
            if t.kv.get(key.as_str())?.is_some() {
                return Ok(Err(Error::AlreadyExists { key }));
            }
            (key, EventKind::Create, value, rev)
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let Some(current) = current(t, &key)? else {
                return Ok(Err(Error::NotFound { key }));
            };
            if current.mod_revision != expected {
                return Ok(Err(Error::Conflict {
                    key,
                    expected,
                    actual: current.mod_revision,
                }));
            }
            (key, EventKind::Update, value, current.create_revision)
        }
        Op::Delete { key, expected } => {
            let Some(current) = current(t, &key)? else {
                return Ok(Err(Error::NotFound { key }));
            };
            if let Some(expected) = expected.filter(|e| *e != current.mod_revision) {
                return Ok(Err(Error::Conflict {
                    key,
                    expected,
                    actual: current.mod_revision,
                }));
            }
            (
                key,
                EventKind::Delete,
                current.value,
                current.create_revision,
            )
        }
    };
    Ok(Ok((
        kind,
        KeyValue {
            key,
            value,
            create_revision: create,
            mod_revision: rev,
        },
    )))
}

fn current(t: &IndexTables<'_>, key: &str) -> Result<Option<KeyValue>, redb::Error> {
    schema::latest(&t.kv, &t.hist, key)
}
