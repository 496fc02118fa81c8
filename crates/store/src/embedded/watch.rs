//! Watches on the embedded store: history catch-up, then live fan-out without copies.
//!
//! The writer publishes each committed event once, as an `Arc<Event>`, on a broadcast
//! channel; every watcher receives a clone of the same `Arc`, so a thousand watchers share
//! one copy of each value. A watcher that starts in the past, or that falls behind the
//! channel's buffer, reads the missed revisions from the on-disk log and then continues live.
//! Each watcher remembers the last revision it has seen, which makes delivery gap-free and
//! duplicate-free whatever the interleaving.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fjall::Readable;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::schema::{self, hist_key, rev_key};
use super::{Engine, Shared};
use crate::{Error, Event, Result, Revision, WatchStream};

/// How many log entries one catch-up read scans.
const CATCH_UP_BATCH: usize = 1024;

struct Watcher {
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    rx: broadcast::Receiver<Arc<Event>>,
    prefix: String,
    /// Every revision up to this one has been delivered or skipped.
    seen: Revision,
    /// Read from history up to this revision before taking live events.
    catch_up_to: Revision,
    backlog: VecDeque<Arc<Event>>,
    done: bool,
}

/// Starts a watch of `prefix` after revision `after` (0 = now).
pub(super) fn start(
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    prefix: String,
    after: Revision,
) -> Result<WatchStream> {
    // Subscribe before reading the revision: every event after it is then in the channel.
    let rx = shared.events.subscribe();
    let current = shared.current.load(Ordering::SeqCst);
    let compacted = shared.compacted.load(Ordering::SeqCst);
    let after = crate::key::resolve_revision(after, current, compacted)?;
    let watcher = Watcher {
        engine,
        shared,
        rx,
        prefix,
        seen: after,
        catch_up_to: current,
        backlog: VecDeque::new(),
        done: false,
    };
    Ok(futures::stream::unfold(watcher, |mut w| async move {
        let item = w.next().await?;
        Some((item, w))
    })
    .boxed())
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Arc<Event>>> {
        if self.done {
            return None;
        }
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Some(Ok(event));
            }
            if self.seen < self.catch_up_to {
                if let Err(e) = self.catch_up().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(event) => {
                    let rev = event.revision();
                    if rev <= self.seen {
                        continue;
                    }
                    if rev > self.seen + 1 {
                        // Missed some (should not happen without lag): read them, and this
                        // one, from the log.
                        self.catch_up_to = rev;
                        continue;
                    }
                    self.seen = rev;
                    if event.kv.key.starts_with(&self.prefix) {
                        return Some(Ok(event));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, prefix = %self.prefix, "watcher lagged; catching up from the log");
                    self.catch_up_to = self.shared.current.load(Ordering::SeqCst);
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.done = true;
                    return Some(Err(Error::Closed));
                }
            }
        }
    }

    /// Reads the next batch of missed events from the log into the backlog.
    async fn catch_up(&mut self) -> Result<()> {
        let oldest = self.shared.compacted.load(Ordering::SeqCst);
        if self.seen < oldest {
            return Err(Error::Compacted {
                requested: self.seen,
                oldest,
            });
        }
        let engine = self.engine.clone();
        let prefix = self.prefix.clone();
        let (from, to) = (self.seen, self.catch_up_to);
        let (events, last) =
            tokio::task::spawn_blocking(move || read_log(&engine, &prefix, from, to))
                .await
                .map_err(|e| Error::backend("watch catch-up task", e))??;
        // Compaction may have removed part of what we read; the log scan would then have
        // skipped revisions, so check again after reading.
        let oldest = self.shared.compacted.load(Ordering::SeqCst);
        if self.seen < oldest {
            return Err(Error::Compacted {
                requested: self.seen,
                oldest,
            });
        }
        self.backlog.extend(events.into_iter().map(Arc::new));
        self.seen = last;
        Ok(())
    }
}

/// Events under `prefix` with revisions in `(after, upto]`, reading at most
/// [`CATCH_UP_BATCH`] log entries. Returns them and the last revision covered.
fn read_log(
    e: &Engine,
    prefix: &str,
    after: Revision,
    upto: Revision,
) -> Result<(Vec<Event>, Revision)> {
    let fail = |err: fjall::Error| Error::backend("reading the watch log", err);
    let corrupt = |what: String| Error::Backend {
        message: what,
        source: None,
    };
    let snapshot = e.db.snapshot();
    let mut events = Vec::new();
    let mut last = after;
    let range = snapshot.range(&e.revs, rev_key(after + 1)..=rev_key(upto));
    for (scanned, guard) in range.enumerate() {
        if scanned == CATCH_UP_BATCH {
            return Ok((events, last));
        }
        let (rev, key) = guard.into_inner().map_err(fail)?;
        let rev = schema::parse_rev_key(&rev)
            .ok_or_else(|| corrupt("corrupt revision in the watch log".into()))?;
        last = rev;
        let key = std::str::from_utf8(&key)
            .map_err(|_| corrupt(format!("corrupt key at revision {rev}")))?;
        if !key.starts_with(prefix) {
            continue;
        }
        let raw = snapshot.get(&e.hist, hist_key(key, rev)).map_err(fail)?;
        match raw.and_then(|raw| schema::decode_hist(key, rev, &raw)) {
            Some((kind, kv)) => events.push(Event { kind, kv }),
            None => {
                return Err(corrupt(format!(
                    "history entry for {key:?} at revision {rev} is missing"
                )))
            }
        }
    }
    Ok((events, upto))
}
