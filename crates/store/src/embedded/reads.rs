//! Reads of the embedded store, each against one fjall snapshot so that what it returns is
//! consistent with the revision it reports.

use std::ops::Bound;

use fjall::Readable;

use super::schema::{self, hist_key, split_hist_key};
use super::Engine;
use crate::key::{paginate, prefix_end, ListStart};
use crate::{Error, KeyValue, ListResult, Result, Revision};

fn fail(e: fjall::Error) -> Error {
    Error::backend("reading the embedded store", e)
}

fn corrupt(key: &str) -> Error {
    Error::Backend {
        message: format!("stored value for key {key:?} is corrupt"),
        source: None,
    }
}

/// One page of the keys under `prefix` at `start.revision` (0 = latest).
pub(super) fn list(
    e: &Engine,
    prefix: &str,
    start: &ListStart,
    limit: usize,
    compacted: Revision,
) -> Result<ListResult> {
    let snapshot = e.db.snapshot();
    let current = snapshot
        .get(&e.meta, schema::META_REVISION)
        .map_err(fail)?
        .and_then(|raw| schema::decode_meta(&raw))
        .unwrap_or(1);
    let revision = crate::key::resolve_revision(start.revision, current, compacted)?;
    let end = prefix_end(prefix);
    // One more than asked for tells whether another page follows.
    let wanted = if limit == 0 { usize::MAX } else { limit + 1 };
    let mut items = Vec::new();
    if start.from.as_str() >= end.as_str() {
        return Ok(paginate(prefix, items, limit, revision));
    }
    if revision == current {
        for guard in snapshot.range(&e.kv, start.from.as_str()..end.as_str()) {
            if items.len() == wanted {
                break;
            }
            let (key, raw) = guard.into_inner().map_err(fail)?;
            let key = std::str::from_utf8(&key).map_err(|_| corrupt("<non-UTF-8>"))?;
            items.push(schema::decode_kv(key, &raw).ok_or_else(|| corrupt(key))?);
        }
    } else {
        // Past revision: for each key, the newest version at or before `revision`.
        let mut best: Option<(String, Revision, Vec<u8>)> = None;
        let flush = |best: Option<(String, Revision, Vec<u8>)>, items: &mut Vec<KeyValue>| {
            if let Some((key, rev, raw)) = best {
                if !schema::hist_is_delete(&raw) {
                    let (_, kv) =
                        schema::decode_hist(&key, rev, &raw).ok_or_else(|| corrupt(&key))?;
                    items.push(kv);
                }
            }
            Ok::<_, Error>(())
        };
        // A continue token starts at "<last key>\0": in `hist`, whose keys are
        // "<key>\0<revision>", that means after every version of the last key.
        let from = match start.from.strip_suffix('\0') {
            Some(last) => Bound::Excluded(hist_key(last, Revision::MAX)),
            None => Bound::Included(hist_key(&start.from, 0)),
        };
        let range = (from, Bound::Excluded(hist_key(&end, 0)));
        for guard in snapshot.range(&e.hist, range) {
            let (hk, raw) = guard.into_inner().map_err(fail)?;
            let (key, rev) = split_hist_key(&hk).ok_or_else(|| corrupt("<history key>"))?;
            let same_key = best.as_ref().is_some_and(|(b, _, _)| b == key);
            if !same_key {
                flush(best.take(), &mut items)?;
                if items.len() == wanted {
                    break;
                }
            }
            if rev <= revision {
                best = Some((key.to_owned(), rev, raw.to_vec()));
            }
        }
        if items.len() < wanted {
            flush(best.take(), &mut items)?;
        }
    }
    Ok(paginate(prefix, items, limit, revision))
}
