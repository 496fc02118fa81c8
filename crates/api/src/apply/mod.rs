//! Placeholder for server-side apply field management (replaced by the real module).
#![allow(missing_docs, unused_variables)]
use crate::schema::{Schemas, Ty};
use serde_json::Value;

pub struct Manager<'a> {
    pub name: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub subresource: &'a str,
}
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("conflicts")]
    Conflicts(Vec<Conflict>),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadManagedFields(String),
}
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    mgr: &Manager,
    force: bool,
    ty: &Ty,
    schemas: &Schemas,
) -> Result<Value, ApplyError> {
    let mut out = live.cloned().unwrap_or(Value::Object(Default::default()));
    json_merge(&mut out, config);
    Ok(out)
}
fn json_merge(t: &mut Value, p: &Value) {
    match (t, p) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    mgr: &Manager,
    ty: &Ty,
    schemas: &Schemas,
) -> Result<(), ApplyError> {
    Ok(())
}
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    String::new()
}
