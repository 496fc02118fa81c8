//! The embedded store's single writer: group commit and compaction.
//!
//! All mutations go through one thread. It takes every request waiting in its queue (up to
//! [`MAX_BATCH`]) and applies them in arrival order to one fjall write batch: compare-and-swap
//! checks see earlier writes of the same batch (through a small overlay), so exactly one of
//! several racing updates wins. The batch is committed atomically across keyspaces with one
//! journal `fdatasync`, and only then is each caller answered and each event published to
//! watchers: a write is acknowledged only once durable, and concurrent writers share the
//! sync. Under load the writer waits [`LINGER`] for stragglers, so the writers answered by
//! one batch join the next instead of splitting it in two.
//!
//! Compaction runs on the same thread in chunks of [`COMPACT_CHUNK`] revisions between
//! batches, so a large compaction never stalls writers for long.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjall::Readable;
use tokio::sync::{mpsc, oneshot};

use super::schema::{self, hist_key, rev_key};
use super::{Engine, Shared};
use crate::{Error, Event, EventKind, KeyValue, Result, Revision};

/// The most writes committed in one batch.
pub(super) const MAX_BATCH: usize = 1024;
/// The most revisions forgotten in one compaction batch.
pub(super) const COMPACT_CHUNK: usize = 4096;
/// A batch at least this big means load: the next batch waits [`LINGER`] for stragglers.
const LINGER_ABOVE: usize = 8;
/// How long a batch under load waits for more writes to join it.
const LINGER: Duration = Duration::from_micros(100);

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
    pub(super) engine: Arc<Engine>,
    pub(super) rx: mpsc::UnboundedReceiver<Command>,
    pub(super) shared: Arc<Shared>,
    /// The latest committed revision.
    pub(super) revision: Revision,
    /// Compaction still to be done physically, and who waits for it.
    pub(super) compacting: Option<(Revision, Vec<oneshot::Sender<Result<()>>>)>,
    /// How many writes the last batch had.
    pub(super) last_batch: usize,
}

fn fail(what: &'static str) -> impl Fn(fjall::Error) -> Error {
    move |e| Error::backend(what, e)
}

impl Writer {
    /// Runs until every sender is gone.
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
            let writes = self.collect(first);
            if !writes.is_empty() {
                self.commit_batch(writes);
            }
            if self.compacting.is_some() {
                self.compact_chunk();
            }
        }
        tracing::debug!("embedded store writer stopped");
    }

    /// Takes `first` and whatever else is queued (compactions are started on the way).
    fn collect(&mut self, first: Command) -> Vec<(Op, oneshot::Sender<Result<KeyValue>>)> {
        let mut writes = Vec::new();
        let mut next = Some(first);
        let mut lingered = false;
        loop {
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Write { op, reply } => writes.push((op, reply)),
                    Command::Compact { revision, reply } => self.start_compaction(revision, reply),
                }
                if writes.len() < MAX_BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            if lingered || self.last_batch < LINGER_ABOVE || writes.len() >= self.last_batch {
                break;
            }
            lingered = true;
            std::thread::sleep(LINGER);
            next = self.rx.try_recv().ok();
        }
        self.last_batch = writes.len();
        writes
    }

    fn commit_batch(&mut self, writes: Vec<(Op, oneshot::Sender<Result<KeyValue>>)>) {
        let e = &self.engine;
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events = Vec::with_capacity(writes.len());
        // What this batch has written so far, for the checks of later writes in it.
        let mut overlay: HashMap<String, Option<KeyValue>> = HashMap::new();
        let mut batch = e.db.batch().durability(Some(e.persist_mode()));
        let mut rev = self.revision;
        let mut pending = writes.into_iter();
        let built = (|| -> Result<()> {
            for (op, reply) in pending.by_ref() {
                let key = op_key(&op).to_owned();
                let current = match overlay.get(&key) {
                    Some(v) => v.clone(),
                    None => match e.latest(&key) {
                        Ok(v) => v,
                        Err(err) => {
                            // Keep the caller: the batch failure below answers it.
                            outcomes.push((reply, Err(Error::Closed)));
                            return Err(err);
                        }
                    },
                };
                match check(current, rev + 1, op) {
                    Ok((kind, kv)) => {
                        rev += 1;
                        if kind == EventKind::Delete {
                            batch.remove(&e.kv, kv.key.as_str());
                            overlay.insert(key, None);
                        } else {
                            let encoded =
                                schema::encode_kv(kv.create_revision, kv.mod_revision, &kv.value);
                            batch.insert(&e.kv, kv.key.as_str(), encoded);
                            overlay.insert(key, Some(kv.clone()));
                        }
                        let hist = schema::encode_hist(kind, kv.create_revision, &kv.value);
                        batch.insert(&e.hist, hist_key(&kv.key, rev), hist);
                        batch.insert(&e.revs, rev_key(rev), kv.key.as_str());
                        events.push(Arc::new(Event {
                            kind,
                            kv: kv.clone(),
                        }));
                        outcomes.push((reply, Ok(kv)));
                    }
                    Err(err) => outcomes.push((reply, Err(err))),
                }
            }
            Ok(())
        })();
        // Writes not reached because the batch failed part-way share its fate.
        outcomes.extend(pending.map(|(_, reply)| (reply, Err(Error::Closed))));
        let committed = built.and_then(|()| {
            if events.is_empty() {
                // Only failed writes: nothing changed.
                return Ok(());
            }
            batch.insert(&e.meta, schema::META_REVISION, schema::encode_meta(rev));
            batch.commit().map_err(fail("committing a write batch"))
        });
        match committed {
            Ok(()) => {
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
            Err(err) => {
                tracing::error!(error = %err, "embedded store commit failed");
                let message = err.to_string();
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
        let target = revision.max(self.shared.compacted.load(Ordering::SeqCst));
        let e = &self.engine;
        let mut batch = e.db.batch().durability(Some(e.persist_mode()));
        batch.insert(&e.meta, schema::META_COMPACTED, schema::encode_meta(target));
        if let Err(err) = batch.commit() {
            let _ = reply.send(Err(Error::backend("recording compaction", err)));
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

    /// Forgets up to [`COMPACT_CHUNK`] revisions at or below the compaction target.
    pub(super) fn compact_chunk(&mut self) {
        let Some((target, _)) = &self.compacting else {
            return;
        };
        let target = *target;
        let result = compact_chunk(&self.engine, target);
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
            Err(err) => {
                tracing::error!(error = %err, "compaction failed");
                if let Some((_, waiters)) = self.compacting.take() {
                    for w in waiters {
                        let _ = w.send(Err(Error::Backend {
                            message: format!("compaction failed: {err}"),
                            source: None,
                        }));
                    }
                }
            }
        }
    }
}

/// One chunk of compaction to `target`; true when nothing at or below it is left.
fn compact_chunk(e: &Engine, target: Revision) -> Result<bool> {
    let snapshot = e.db.snapshot();
    let mut chunk = Vec::new();
    for guard in snapshot
        .range(&e.revs, ..=rev_key(target))
        .take(COMPACT_CHUNK)
    {
        let (rev, key) = guard.into_inner().map_err(fail("reading the log"))?;
        let rev = schema::parse_rev_key(&rev).ok_or_else(|| corrupt("log revision"))?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| corrupt("log key"))?;
        chunk.push((rev, key));
    }
    let done = chunk.len() < COMPACT_CHUNK;
    // Per key, only its newest revision in this chunk matters: every older version of the key
    // goes (one range removal per key, not one per revision).
    let mut newest: HashMap<&str, Revision> = HashMap::new();
    for (rev, key) in &chunk {
        let entry = newest.entry(key.as_str()).or_insert(*rev);
        *entry = (*entry).max(*rev);
    }
    let mut batch = e.db.batch().durability(Some(e.persist_mode()));
    for (key, rev) in newest {
        // Versions older than this one can no longer be read at any revision.
        for guard in snapshot.range(&e.hist, hist_key(key, 0)..hist_key(key, rev)) {
            let old = guard.key().map_err(fail("reading history"))?;
            batch.remove(&e.hist, old);
        }
        let this = hist_key(key, rev);
        let tombstone = snapshot
            .get(&e.hist, &this)
            .map_err(fail("reading history"))?
            .is_some_and(|raw| schema::hist_is_delete(&raw));
        if tombstone {
            let later = snapshot
                .range(&e.hist, hist_key(key, rev + 1)..=hist_key(key, target))
                .next()
                .is_some();
            if !later {
                batch.remove(&e.hist, this);
            }
        }
    }
    for (rev, _) in &chunk {
        batch.remove(&e.revs, rev_key(*rev));
    }
    batch.commit().map_err(fail("committing compaction"))?;
    Ok(done)
}

fn corrupt(what: &str) -> Error {
    Error::Backend {
        message: format!("corrupt {what} in the embedded store"),
        source: None,
    }
}

fn op_key(op: &Op) -> &str {
    match op {
        Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
    }
}

/// Checks one mutation against the key's current version and builds the change it makes
/// at revision `rev`, or the caller's error (conflict, missing key…).
fn check(current: Option<KeyValue>, rev: Revision, op: Op) -> Result<(EventKind, KeyValue)> {
    let (key, kind, value, create) = match op {
        Op::Create { key, value } => {
            if current.is_some() {
                return Err(Error::AlreadyExists { key });
            }
            (key, EventKind::Create, value, rev)
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let Some(current) = current else {
                return Err(Error::NotFound { key });
            };
            if current.mod_revision != expected {
                return Err(Error::Conflict {
                    key,
                    expected,
                    actual: current.mod_revision,
                });
            }
            (key, EventKind::Update, value, current.create_revision)
        }
        Op::Delete { key, expected } => {
            let Some(current) = current else {
                return Err(Error::NotFound { key });
            };
            if let Some(expected) = expected.filter(|e| *e != current.mod_revision) {
                return Err(Error::Conflict {
                    key,
                    expected,
                    actual: current.mod_revision,
                });
            }
            (
                key,
                EventKind::Delete,
                current.value,
                current.create_revision,
            )
        }
    };
    Ok((
        kind,
        KeyValue {
            key,
            value,
            create_revision: create,
            mod_revision: rev,
        },
    ))
}
