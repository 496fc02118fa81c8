//! Reads of the embedded store, run on the blocking pool against one redb snapshot each.

use redb::{Database, ReadableDatabase};

use super::schema::{self, from_disk, to_disk, HIST, KV, META};
use crate::key::{paginate, prefix_end, ListStart};
use crate::{Error, KeyValue, ListResult, Result, Revision};

fn fail(e: impl Into<redb::Error>) -> Error {
    Error::backend("reading the database", e.into())
}

fn corrupt(key: &str) -> Error {
    Error::Backend {
        message: format!("stored value for key {key:?} is corrupt"),
        source: None,
    }
}

/// The latest version of `key`.
pub(super) fn get(db: &Database, key: &str) -> Result<Option<KeyValue>> {
    let txn = db.begin_read().map_err(fail)?;
    let kv = txn.open_table(KV).map_err(fail)?;
    let hist = txn.open_table(HIST).map_err(fail)?;
    schema::latest(&kv, &hist, key).map_err(fail)
}

/// One page of the keys under `prefix` at `start.revision` (0 = latest).
pub(super) fn list(
    db: &Database,
    prefix: &str,
    start: &ListStart,
    limit: usize,
    compacted: Revision,
) -> Result<ListResult> {
    let txn = db.begin_read().map_err(fail)?;
    let current = txn
        .open_table(META)
        .map_err(fail)?
        .get(schema::META_REVISION)
        .map_err(fail)?
        .map(|v| from_disk(v.value()))
        .unwrap_or(0);
    let revision = if start.revision == 0 {
        current
    } else {
        start.revision
    };
    if revision > current {
        return Err(Error::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision < compacted {
        return Err(Error::Compacted {
            requested: revision,
            oldest: compacted,
        });
    }
    let end = prefix_end(prefix);
    // One more than asked for tells whether another page follows.
    let wanted = if limit == 0 { usize::MAX } else { limit + 1 };
    let mut items = Vec::new();
    if start.from.as_str() >= end.as_str() {
        return Ok(paginate(prefix, items, limit, revision));
    }
    if revision == current {
        let kv = txn.open_table(KV).map_err(fail)?;
        let hist = txn.open_table(HIST).map_err(fail)?;
        for entry in kv.range(start.from.as_str()..end.as_str()).map_err(fail)? {
            if items.len() == wanted {
                break;
            }
            let (key, raw) = entry.map_err(fail)?;
            let key = key.value();
            let (_, modified) = schema::decode_kv(raw.value()).ok_or_else(|| corrupt(key))?;
            let version = hist
                .get((key, to_disk(modified)))
                .map_err(fail)?
                .ok_or_else(|| corrupt(key))?;
            let (_, item) =
                schema::decode_hist(key, modified, version.value()).ok_or_else(|| corrupt(key))?;
            items.push(item);
        }
    } else {
        // Past revision: for each key, the newest version at or before `revision`.
        let hist = txn.open_table(HIST).map_err(fail)?;
        let at = to_disk(revision);
        let mut best: Option<(String, u64, Vec<u8>)> = None;
        let flush = |best: Option<(String, u64, Vec<u8>)>, items: &mut Vec<KeyValue>| {
            if let Some((key, rev, raw)) = best {
                if !schema::hist_is_delete(&raw) {
                    let (_, kv) = schema::decode_hist(&key, from_disk(rev), &raw)
                        .ok_or_else(|| corrupt(&key))?;
                    items.push(kv);
                }
            }
            Ok::<_, Error>(())
        };
        let range = hist
            .range((start.from.as_str(), 0)..(end.as_str(), 0))
            .map_err(fail)?;
        for entry in range {
            let (k, raw) = entry.map_err(fail)?;
            let (key, rev) = k.value();
            let same_key = best.as_ref().is_some_and(|(b, _, _)| b == key);
            if !same_key {
                flush(best.take(), &mut items)?;
                if items.len() == wanted {
                    break;
                }
            }
            if rev <= at {
                best = Some((key.to_owned(), rev, raw.value().to_vec()));
            }
        }
        if items.len() < wanted {
            flush(best.take(), &mut items)?;
        }
    }
    Ok(paginate(prefix, items, limit, revision))
}
