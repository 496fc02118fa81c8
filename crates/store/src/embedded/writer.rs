//! The embedded store's single writer: group commit and compaction.
//!
//! All mutations go through one thread. It takes every request waiting in its queue (up to
//! [`MAX_BATCH`]), applies them in arrival order inside one redb write transaction, commits
//! once — one fsync for the whole batch — and only then answers each caller and publishes the
//! events to watchers. A caller's write is therefore acknowledged only after it is durable,
//! and concurrent writers share the cost of the sync. Compare-and-swap checks see earlier
//! writes of the same batch, so exactly one of several racing updates wins.
//!
//! Compaction runs on the same thread in chunks of [`COMPACT_CHUNK`] revisions between
//! batches, so a large compaction never stalls writers for long.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::schema::{self, from_disk, to_disk, HIST, KV, META, REVS};
use super::Shared;
use crate::{Error, Event, EventKind, KeyValue, Result, Revision};

/// The most writes committed in one transaction.
pub(super) const MAX_BATCH: usize = 1024;
/// The most revisions forgotten in one compaction transaction.
pub(super) const COMPACT_CHUNK: usize = 4096;

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
    pub(super) db: Arc<Database>,
    pub(super) rx: mpsc::UnboundedReceiver<Command>,
    pub(super) shared: Arc<Shared>,
    /// The latest committed revision.
    pub(super) revision: Revision,
    /// Compaction still to be done physically, and who waits for it.
    pub(super) compacting: Option<(Revision, Vec<oneshot::Sender<Result<()>>>)>,
}

struct Tables<'t> {
    kv: Table<'t, &'static str, &'static [u8]>,
    hist: Table<'t, (&'static str, u64), &'static [u8]>,
    revs: Table<'t, u64, &'static str>,
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
            let mut writes = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Write { op, reply } => writes.push((op, reply)),
                    Command::Compact { revision, reply } => self.start_compaction(revision, reply),
                }
                if writes.len() < MAX_BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            if !writes.is_empty() {
                self.commit_batch(writes);
            }
            if self.compacting.is_some() {
                self.compact_chunk();
            }
        }
        tracing::debug!("embedded store writer stopped");
    }

    fn commit_batch(&mut self, writes: Vec<(Op, oneshot::Sender<Result<KeyValue>>)>) {
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events = Vec::with_capacity(writes.len());
        let committed = (|| -> Result<Revision, redb::Error> {
            let txn = self.db.begin_write()?;
            let mut rev = self.revision;
            {
                let mut t = Tables {
                    kv: txn.open_table(KV)?,
                    hist: txn.open_table(HIST)?,
                    revs: txn.open_table(REVS)?,
                };
                for (op, reply) in writes {
                    match apply(&mut t, rev + 1, op)? {
                        Ok((kind, kv)) => {
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
                let mut meta = txn.open_table(META)?;
                meta.insert(schema::META_REVISION, to_disk(rev))?;
            }
            txn.commit()?;
            Ok(rev)
        })();
        match committed {
            Ok(rev) => {
                self.revision = rev;
                // Publish the revision before the events: a watcher that reads the revision
                // and then subscribes would otherwise miss events sent in between.
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
            let txn = self.db.begin_write()?;
            txn.open_table(META)?
                .insert(schema::META_COMPACTED, to_disk(target))?;
            txn.commit()?;
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

    /// Forgets up to [`COMPACT_CHUNK`] revisions at or below the compaction target.
    pub(super) fn compact_chunk(&mut self) {
        let Some((target, _)) = &self.compacting else {
            return;
        };
        let target = to_disk(*target);
        let result = (|| -> Result<bool, redb::Error> {
            let txn = self.db.begin_write()?;
            let done;
            {
                let mut revs = txn.open_table(REVS)?;
                let mut hist = txn.open_table(HIST)?;
                let mut batch = Vec::new();
                for entry in revs.range(..=target)?.take(COMPACT_CHUNK) {
                    let (rev, key) = entry?;
                    batch.push((rev.value(), key.value().to_owned()));
                }
                done = batch.len() < COMPACT_CHUNK;
                for (rev, key) in batch {
                    // Versions older than this one can no longer be read at any revision.
                    hist.retain_in((key.as_str(), 0)..(key.as_str(), rev), |_, _| false)?;
                    let tombstone = hist
                        .get((key.as_str(), rev))?
                        .is_some_and(|raw| schema::hist_is_delete(raw.value()));
                    if tombstone {
                        let later = hist
                            .range((key.as_str(), rev + 1)..=(key.as_str(), target))?
                            .next()
                            .is_some();
                        if !later {
                            hist.remove((key.as_str(), rev))?;
                        }
                    }
                    revs.remove(rev)?;
                }
            }
            txn.commit()?;
            Ok(done)
        })();
        match result {
            Ok(false) => {}
            Ok(true) => {
                if let Some((target, waiters)) = self.compacting.take() {
                    tracing::debug!(revision = from_disk(to_disk(target)), "compaction done");
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

/// Applies one mutation at revision `rev`. The outer error aborts the batch (storage failed);
/// the inner one is the caller's (conflict, missing key…).
fn apply(
    t: &mut Tables<'_>,
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
            t.kv.remove(key.as_str())?;
            (
                key,
                EventKind::Delete,
                current.value,
                current.create_revision,
            )
        }
    };
    if kind != EventKind::Delete {
        t.kv.insert(
            key.as_str(),
            schema::encode_kv(create, rev, &value).as_slice(),
        )?;
    }
    t.hist.insert(
        (key.as_str(), to_disk(rev)),
        schema::encode_hist(kind, create, &value).as_slice(),
    )?;
    t.revs.insert(to_disk(rev), key.as_str())?;
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

fn current(t: &Tables<'_>, key: &str) -> Result<Option<KeyValue>, redb::Error> {
    let Some(raw) = t.kv.get(key)? else {
        return Ok(None);
    };
    schema::decode_kv(key, raw.value())
        .map(Some)
        .ok_or_else(|| redb::Error::Corrupted(format!("undecodable value for key {key:?}")))
}
