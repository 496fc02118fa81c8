//! Tugboat's benchmarks, run by `tug bench …`. Each benchmark measures the contenders side by
//! side in one run and reports ratios, because the machines we run on are shared and noisy:
//! a ratio taken in one run means something, two absolute numbers from two runs do not.

pub mod api;
pub mod density;
pub mod http;
pub mod pods;
pub mod report;
pub mod scheduler;
pub mod store;

/// A benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store failed.
    #[error(transparent)]
    Store(#[from] tug_store::Error),
    /// A file or process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The benchmark saw something wrong (a missing event, say).
    #[error("{0}")]
    Invalid(String),
}

/// A benchmark step that failed, with what it was doing.
pub(crate) fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{what}: {e}"))
}

/// The benchmarks' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
