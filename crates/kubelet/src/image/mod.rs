//! Container images without a registry. Tugboat makes the images it needs itself and hands
//! them to containerd as archives:
//!
//! - [`Archive`] (`archive.rs`) writes an OCI image-layout tar (one layer, its config, its
//!   manifest, an `index.json` naming the image) from files, directories and symlinks.
//! - `builtin.rs` makes the two images Tugboat relies on: the pod sandbox image
//!   ([`PAUSE_IMAGE`], whose `/pause` is compiled from `pause/pause.c` by the crate's build
//!   script) and a busybox image from the host's static busybox, the workload of tests and
//!   benchmarks.
//! - `import.rs` imports archives (OCI or docker-archive) into containerd's `k8s.io`
//!   namespace, where the CRI plugin sees them, by running `ctr images import`; one archive
//!   or every `*.tar` of a directory (`<data-dir>/agent/images/`).
//!
//! Start with [`Archive`]; `tug image` is the command line over this module.

mod archive;
#[cfg(test)]
mod archive_tests;
mod builtin;
mod import;
#[cfg(test)]
mod readback;

use std::path::PathBuf;

pub use archive::Archive;
pub use builtin::{
    busybox_archive, find_busybox, pause_archive, BUSYBOX_IMAGE, BUSYBOX_PATHS, PAUSE_IMAGE,
};
pub use import::{import, import_dir};

/// Making, reading or importing an image archive failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path given to an [`Archive`] cannot be a path inside an image.
    #[error("invalid path {path:?} in image {reference}: {reason}")]
    Path {
        /// The image being written.
        reference: String,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host file or directory could not be read.
    #[error("reading {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The archive could not be written.
    #[error("writing {target}")]
    Write {
        /// The file, or which image's archive.
        target: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No busybox was named and none is at the usual places.
    #[error("no busybox at {} (install busybox-static, or name one)", BUSYBOX_PATHS.join(" or "))]
    BusyboxNotFound,
    /// The busybox given cannot make an image.
    #[error("busybox {path}: {reason}")]
    Busybox {
        /// The busybox binary.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The archive to import does not exist.
    #[error("image archive {path} does not exist")]
    ArchiveMissing {
        /// The path given.
        path: PathBuf,
    },
    /// The file to import is not a tar of an OCI layout or a docker archive.
    #[error("{path} is not an image archive: {reason}")]
    NotAnArchive {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// containerd's socket is not there.
    #[error("no containerd socket at {path} (is containerd running?)")]
    Socket {
        /// The socket path.
        path: PathBuf,
    },
    /// `ctr`, containerd's client, is not installed.
    #[error("`ctr` (containerd's client) is not on PATH; it is needed to import images")]
    CtrMissing,
    /// A program could not be started.
    #[error("running {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `ctr images import` failed.
    #[error("ctr could not import {path} ({status}): {stderr}")]
    Ctr {
        /// The archive.
        path: PathBuf,
        /// How ctr exited.
        status: String,
        /// What ctr printed on stderr, on one line.
        stderr: String,
    },
}

/// The image module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The OCI name of the architecture this binary was built for (`GOARCH` names, which OCI
/// platforms use): x86_64 → amd64, aarch64 → arm64.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// `e` and its causes on one line, `a: b: c`, for logs.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
