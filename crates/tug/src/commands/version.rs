//! `tug version`.

/// Tugboat's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Kubernetes API version Tugboat speaks.
pub const KUBERNETES_VERSION: &str = "v1.37.0";

/// Prints the version lines.
pub fn print() {
    println!("tug version v{VERSION}");
    println!("kubernetes api {KUBERNETES_VERSION}");
}
