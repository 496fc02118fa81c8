//! The on-disk layout of the embedded store: two redb databases in one directory, and the
//! byte encoding of their values.
//!
//! `log.redb` is the write-ahead log and the watch history. Its one table `log` maps each
//! revision to the change made at it (kind, key, create revision, value). Every batch of
//! writes is appended here and committed durably (one fsync) before anyone is answered;
//! appends touch only the B-tree's right edge, so a commit writes few pages.
//!
//! `index.redb` holds the queryable state, rebuilt from the log if lost:
//! - `kv`: key → the create and mod revisions of the latest version: gets and lists
//!   at the latest revision (the value is read from `hist`, so it is stored once);
//! - `hist`: (key, revision) → the version written at that revision, or a tombstone carrying
//!   the last value: lists at a past revision;
//! - `meta`: `revision` (the last revision applied) and `compacted` (the oldest readable).
//!
//! The index is committed without fsync and made durable by a periodic checkpoint, which
//! coalesces the random page writes of many batches into one. On open, log entries after the
//! index's durable revision are replayed into it.

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};

use crate::{EventKind, KeyValue, Revision};

pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
pub(super) const HIST: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hist");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(super) const META_REVISION: &str = "revision";
pub(super) const META_COMPACTED: &str = "compacted";

/// Encodes a `kv` entry: the create and mod revisions of the latest version. The value
/// itself is stored once, in `hist` at (key, mod revision).
pub(super) fn encode_kv(create: Revision, modified: Revision) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&create.to_le_bytes());
    out[8..].copy_from_slice(&modified.to_le_bytes());
    out
}

fn read_i64(raw: &[u8], at: usize) -> Option<i64> {
    let bytes: [u8; 8] = raw.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// Decodes a `kv` entry into (create revision, mod revision).
pub(super) fn decode_kv(raw: &[u8]) -> Option<(Revision, Revision)> {
    Some((read_i64(raw, 0)?, read_i64(raw, 8)?))
}

/// The latest version of `key`, from `kv` and the value in `hist`.
pub(super) fn latest(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    hist: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    key: &str,
) -> Result<Option<KeyValue>, redb::Error> {
    let Some(raw) = kv.get(key)? else {
        return Ok(None);
    };
    let corrupt = || redb::Error::Corrupted(format!("index entry for key {key:?} is corrupt"));
    let (_, modified) = decode_kv(raw.value()).ok_or_else(corrupt)?;
    let version = hist.get((key, to_disk(modified)))?.ok_or_else(corrupt)?;
    let (_, kv) = decode_hist(key, modified, version.value()).ok_or_else(corrupt)?;
    Ok(Some(kv))
}

fn kind_byte(kind: EventKind) -> u8 {
    match kind {
        EventKind::Create => 0,
        EventKind::Update => 1,
        EventKind::Delete => 2,
    }
}

fn byte_kind(b: u8) -> Option<EventKind> {
    match b {
        0 => Some(EventKind::Create),
        1 => Some(EventKind::Update),
        2 => Some(EventKind::Delete),
        _ => None,
    }
}

/// Encodes a `hist` value: event kind, create revision, value.
pub(super) fn encode_hist(kind: EventKind, create: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(kind_byte(kind));
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a `hist` value written at `revision`.
pub(super) fn decode_hist(
    key: &str,
    revision: Revision,
    raw: &[u8],
) -> Option<(EventKind, KeyValue)> {
    Some((
        byte_kind(*raw.first()?)?,
        KeyValue {
            key: key.to_owned(),
            create_revision: read_i64(raw, 1)?,
            mod_revision: revision,
            value: Bytes::copy_from_slice(raw.get(9..)?),
        },
    ))
}

/// Whether a raw `hist` value is a tombstone.
pub(super) fn hist_is_delete(raw: &[u8]) -> bool {
    raw.first() == Some(&2)
}

/// Encodes a `log` record: kind, create revision, key length, key, value.
pub(super) fn encode_log(kind: EventKind, create: Revision, key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + key.len() + value.len());
    out.push(kind_byte(kind));
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    out
}

/// The key of a `log` record, without decoding the value.
pub(super) fn log_key(raw: &[u8]) -> Option<&str> {
    let len: [u8; 4] = raw.get(9..13)?.try_into().ok()?;
    let len = usize::try_from(u32::from_le_bytes(len)).ok()?;
    std::str::from_utf8(raw.get(13..13 + len)?).ok()
}

/// Decodes a `log` record written at `revision`.
pub(super) fn decode_log(revision: Revision, raw: &[u8]) -> Option<(EventKind, KeyValue)> {
    let key = log_key(raw)?;
    Some((
        byte_kind(*raw.first()?)?,
        KeyValue {
            key: key.to_owned(),
            create_revision: read_i64(raw, 1)?,
            mod_revision: revision,
            value: Bytes::copy_from_slice(raw.get(13 + key.len()..)?),
        },
    ))
}

/// Revisions are positive `i64`s in the API and `u64`s on disk.
pub(super) fn to_disk(rev: Revision) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

/// The reverse of [`to_disk`].
pub(super) fn from_disk(rev: u64) -> Revision {
    Revision::try_from(rev).unwrap_or(Revision::MAX)
}
