//! Tugboat's resource catalogue: every kind the API server serves, with the facts discovery,
//! routing and storage need — group, version, kind, plural and singular names, scope, short
//! names, categories, verbs and subresources. Group, version, kind, plural and scope come
//! from the `k8s-openapi` types themselves, so they cannot drift from upstream; what the
//! types do not carry (short names, categories, verbs) is written here once.
//!
//! Start at [`catalogue`]; [`validation`] holds upstream's name rules and messages.

pub mod apply;
mod catalogue;
pub mod crd;
mod go;
pub mod meta;
pub mod printers;
pub mod protobuf;
pub mod rbac;
pub mod schema;
pub mod selectors;
pub mod strategic;
pub mod strategy;
pub mod validation;

pub use catalogue::{catalogue, find, ResourceInfo, Subresource};
pub use go::go_duration;
