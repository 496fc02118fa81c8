//! The store's error type: every way a store call can fail, each with a message that names
//! the key or revision involved.

use crate::types::Revision;

/// A store call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` of a key that already exists.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `update` or `delete` of a key that does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A compare-and-swap lost: the key changed since the caller read it.
    #[error("conflict on key {key:?}: expected mod revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The mod revision the caller expected.
        expected: Revision,
        /// The mod revision the key has now.
        actual: Revision,
    },
    /// A read or watch at a revision that compaction has removed.
    #[error("revision {requested} has been compacted; the oldest retained revision is {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still readable.
        oldest: Revision,
    },
    /// A read or watch at a revision that has not happened yet.
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// A key or prefix that is not of the form `/segment/segment…`.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value over the size limit.
    #[error("value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A continue token that this store did not hand out, or that was altered.
    #[error("invalid continue token: {0}")]
    InvalidContinue(String),
    /// A negative revision or other argument out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend failed (disk, database or network).
    #[error("storage backend failed: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
}

impl Error {
    /// A backend failure with its cause.
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
