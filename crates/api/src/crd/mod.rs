//! CustomResourceDefinition machinery, after upstream's `apiextensions-apiserver`: pure
//! functions over JSON values and k8s-openapi's `apiextensions/v1` types that the API server
//! calls when it serves CRDs and the custom resources they define.
//!
//! - [`default_crd`] and [`validate_crd`]: defaulting and validation of a CRD object itself
//!   (names, scope, versions, the structural-schema rules of each `openAPIV3Schema`, printer
//!   columns, subresources, conversion), with upstream's field paths and messages.
//! - [`Structural`]: one version's schema, compiled once; it validates a custom resource
//!   (kube-openapi's semantics and messages), applies `default`s, and prunes unknown fields.
//! - [`to_ty`]: the schema as a [`crate::schema::Ty`], for strategic merge and server-side apply.
//! - [`columns`] and [`cells`]: the Table a custom resource prints as, with a [`JsonPath`]
//!   subset evaluator for the printer columns.
//!
//! CEL rules (`x-kubernetes-validations`) are out of scope: their syntax is checked on the
//! CRD, but they are never compiled or evaluated against objects.

mod columns;
mod crd_parts;
mod defaults;
mod formats;
mod jsonpath;
mod listtype;
mod objectmeta;
mod prune;
mod schema_rules;
mod structural;
mod structural_rules;
mod to_ty;
mod validate;
mod validate_crd;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crd;

pub use columns::{cells, columns, ColumnDef};
pub use defaults::default_crd;
pub use jsonpath::{JsonPath, JsonPathError};
pub use structural::{SchemaError, Structural};
pub use to_ty::to_ty;
pub use validate_crd::validate_crd;

/// `path.name` (upstream's `Path.Child`), or `name` at the root.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `path[i]` (upstream's `Path.Index`).
fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `path[key]` (upstream's `Path.Key`).
fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}
