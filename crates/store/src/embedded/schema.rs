//! The on-disk layout of the embedded store: four fjall keyspaces in one database (one
//! journal, so a batch across them is atomic) and the byte encoding of their entries.
//!
//! - `kv`: key → the latest version (create revision, mod revision, value): gets and lists
//!   at the latest revision;
//! - `hist`: key, NUL, revision (big-endian) → the version written at that revision (kind,
//!   create revision, value), or a tombstone carrying the last value: lists at a past
//!   revision and watch catch-up. Keys never contain NUL, so one key's versions sort
//!   together and before any longer key;
//! - `revs`: revision (big-endian) → key: the write log in revision order, for watch
//!   catch-up and compaction;
//! - `meta`: `revision` (the latest) and `compacted` (the oldest readable).

use bytes::Bytes;

use crate::{EventKind, KeyValue, Revision};

pub(super) const META_REVISION: &str = "revision";
pub(super) const META_COMPACTED: &str = "compacted";

/// Encodes a `kv` value: create revision, mod revision, value.
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

/// The `hist` key of `key`'s version at `revision`.
pub(super) fn hist_key(key: &str, revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 9);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(&rev_key(revision));
    out
}

/// Splits a `hist` key into the object key and the revision.
pub(super) fn split_hist_key(raw: &[u8]) -> Option<(&str, Revision)> {
    let cut = raw.len().checked_sub(9)?;
    if raw.get(cut) != Some(&0) {
        return None;
    }
    let key = std::str::from_utf8(raw.get(..cut)?).ok()?;
    Some((key, parse_rev_key(raw.get(cut + 1..)?)?))
}

/// A revision as a key that sorts numerically (big-endian).
pub(super) fn rev_key(revision: Revision) -> [u8; 8] {
    u64::try_from(revision).unwrap_or(0).to_be_bytes()
}

/// The reverse of [`rev_key`].
pub(super) fn parse_rev_key(raw: &[u8]) -> Option<Revision> {
    let bytes: [u8; 8] = raw.try_into().ok()?;
    Revision::try_from(u64::from_be_bytes(bytes)).ok()
}

/// Encodes a `meta` value.
pub(super) fn encode_meta(revision: Revision) -> [u8; 8] {
    revision.to_le_bytes()
}

/// Decodes a `meta` value.
pub(super) fn decode_meta(raw: &[u8]) -> Option<Revision> {
    read_i64(raw, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_keys_sort_by_key_then_revision() {
        let a1 = hist_key("/a/b", 1);
        let a300 = hist_key("/a/b", 300);
        let longer = hist_key("/a/bc", 2);
        assert!(a1 < a300 && a300 < longer);
        assert_eq!(split_hist_key(&a300), Some(("/a/b", 300)));
        assert_eq!(split_hist_key(b"short"), None);
    }
}
