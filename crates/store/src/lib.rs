//! The cluster store: every API object lives here, keyed as Kubernetes lays keys out
//! (`/registry/<resource>/<namespace>/<name>`), versioned by one global revision counter that
//! clients see as `resourceVersion`.
//!
//! [`Store`] is the one trait the apiserver uses, modelled on what Kubernetes asks of etcd:
//! point reads, paginated prefix lists at a revision, create / compare-and-swap update and
//! delete, ordered watches from a revision, and compaction. Three backends implement it:
//!
//! - [`embedded::EmbeddedStore`], the default: durable on disk (fjall underneath), with group
//!   commit so concurrent writers share one fsync;
//! - [`etcd::EtcdStore`]: etcd v3, for HA;
//! - [`EmbeddedStore::in_memory`](embedded::EmbeddedStore::in_memory): the same engine on
//!   memory instead of a file, for unit tests of other crates — one implementation, so the
//!   tests exercise exactly the semantics production has.
//!
//! Start at [`Store`]; the embedded engine's design is described in [`embedded`].

mod error;
mod key;
mod types;

pub mod embedded;
pub mod etcd;
pub mod etcd_process;

pub use error::{Error, Result};
pub use key::{validate_key, validate_prefix, ContinueToken, MAX_VALUE_BYTES};
pub use types::{Event, EventKind, KeyValue, ListOptions, ListResult, Revision, WatchStream};

use async_trait::async_trait;
use bytes::Bytes;

/// What the apiserver needs from a key-value store.
///
/// Every mutation is given the next revision of one global counter. Reads can be taken at a
/// past revision until it is compacted away; watches deliver every change after a revision,
/// in order, exactly once.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// The keys under `prefix`, in key order, as of `options.revision` (0 = now), at most
    /// `options.limit` of them (0 = all), continuing after `options.continue_token`.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult>;

    /// Stores `value` under `key`, which must not exist. Returns the new object.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces `key`'s value if its mod revision is still `expected`; exactly one of several
    /// racing writers with the same expectation wins, the others get [`Error::Conflict`].
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue>;

    /// Deletes `key` (if `expected` is given, only at that mod revision). Returns the deleted
    /// object with `mod_revision` set to the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Every change under `prefix` after revision `after` (0 = from now on), in revision order,
    /// with no gaps or duplicates. Fails with [`Error::Compacted`] if `after` is no longer
    /// retained and [`Error::FutureRevision`] if it has not happened yet.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets history up to and including `revision`; the latest state stays readable.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the latest write.
    async fn current_revision(&self) -> Result<Revision>;
}
