//! Placeholder for strategic merge patch (replaced by the real module).
#![allow(missing_docs, unused_variables)]
use crate::schema::{Schemas, Ty};
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
pub enum SmpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
}
pub fn apply(
    original: &Value,
    patch: &Value,
    ty: &Ty,
    schemas: &Schemas,
) -> Result<Value, SmpError> {
    Err(SmpError::BadRequest("not yet".into()))
}
