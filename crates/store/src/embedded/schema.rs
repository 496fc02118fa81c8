//! The on-disk layout of the embedded store: four redb tables and the byte encoding of their
//! values.
//!
//! - `kv`: key → the latest version (`create_rev`, `mod_rev`, value). Serves gets and lists
//!   at the latest revision.
//! - `hist`: (key, revision) → the version written at that revision, or a tombstone carrying
//!   the last value. Serves lists at a past revision and watch catch-up.
//! - `revs`: revision → key. The write log, in revision order, for watch catch-up and
//!   compaction.
//! - `meta`: `revision` (the latest) and `compacted` (the oldest readable).

use bytes::Bytes;
use redb::TableDefinition;

use crate::{EventKind, KeyValue, Revision};

pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
pub(super) const HIST: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hist");
pub(super) const REVS: TableDefinition<u64, &str> = TableDefinition::new("revs");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(super) const META_REVISION: &str = "revision";
pub(super) const META_COMPACTED: &str = "compacted";

/// Encodes a latest version for `kv`: create revision, mod revision, value.
pub(super) fn encode_kv(create: Revision, modified: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn read_i64(raw: &[u8], at: usize) -> Option<i64> {
    let bytes: [u8; 8] = raw.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// Decodes a `kv` value; `None` if the bytes are not ours (corruption).
pub(super) fn decode_kv(key: &str, raw: &[u8]) -> Option<KeyValue> {
    Some(KeyValue {
        key: key.to_owned(),
        create_revision: read_i64(raw, 0)?,
        mod_revision: read_i64(raw, 8)?,
        value: Bytes::copy_from_slice(raw.get(16..)?),
    })
}

fn kind_byte(kind: EventKind) -> u8 {
    match kind {
        EventKind::Create => 0,
        EventKind::Update => 1,
        EventKind::Delete => 2,
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
    let kind = match raw.first()? {
        0 => EventKind::Create,
        1 => EventKind::Update,
        2 => EventKind::Delete,
        _ => return None,
    };
    Some((
        kind,
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

/// Revisions are positive `i64`s in the API and `u64`s on disk.
pub(super) fn to_disk(rev: Revision) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

/// The reverse of [`to_disk`].
pub(super) fn from_disk(rev: u64) -> Revision {
    Revision::try_from(rev).unwrap_or(Revision::MAX)
}
