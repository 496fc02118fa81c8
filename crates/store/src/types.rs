//! The values that cross the [`Store`](crate::Store) trait: stored objects, watch events,
//! list options and results.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

/// A store revision: the value of the global write counter. Revisions start at 1; 0 means
/// "now" where a revision is optional.
pub type Revision = i64;

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/pods/default/web-0`.
    pub key: String,
    /// The serialized object. Cloning shares the bytes.
    pub value: Bytes,
    /// The revision that created the key.
    pub create_revision: Revision,
    /// The revision of the last change (for a deletion event, the deletion's revision).
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Create,
    /// The key's value was replaced.
    Update,
    /// The key was deleted; the event's value is the last value it had.
    Delete,
}

/// One change, as delivered by a watch. Events are shared (`Arc`) between all watchers, so
/// fanning one out to a thousand watchers copies no bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key and value after the change (the last value, for a deletion).
    pub kv: KeyValue,
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A watch: a stream of shared events, ending with an error (e.g.
/// [`Error::Compacted`](crate::Error::Compacted) when the watcher fell behind compaction).
pub type WatchStream = Pin<Box<dyn Stream<Item = crate::Result<Arc<Event>>> + Send>>;

/// How to list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Read as of this revision; 0 reads the latest state.
    pub revision: Revision,
    /// At most this many items; 0 means all.
    pub limit: usize,
    /// A token from an earlier [`ListResult`], to get the next page. Its revision wins over
    /// `revision`.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    /// The items, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// Present when more items remain: pass it back to read the next page.
    pub continue_token: Option<String>,
}
