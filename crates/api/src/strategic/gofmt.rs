//! Error messages of strategic merge patch, worded as upstream's (which prints JSON values
//! with Go's `%v` and names their Go types), so clients see the same text.

use serde_json::{Map, Value};

use super::SmpError;

/// The JSON kind of a value, as Go's decoder names it in "cannot unmarshal" errors.
pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) use crate::go::go_type;

/// A JSON value printed like Go's `%v` of its decoded form (`map[k:v]`, `[a b]`).
pub(super) fn go_value(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// A map printed like Go's `%v`.
pub(super) fn go_map(m: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_map(&mut out, m);
    out
}

/// A list printed like Go's `%v`.
pub(super) fn go_list(l: &[Value]) -> String {
    let mut out = String::new();
    write_list(&mut out, l);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => write_list(out, a),
        Value::Object(m) => write_map(out, m),
    }
}

fn write_list(out: &mut String, l: &[Value]) {
    out.push('[');
    for (i, v) in l.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(out, v);
    }
    out.push(']');
}

fn write_map(out: &mut String, m: &Map<String, Value>) {
    // Go prints map keys sorted.
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    out.push_str("map[");
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push(':');
        if let Some(v) = m.get(k) {
            write_value(out, v);
        }
    }
    out.push(']');
}

/// Upstream's `ErrBadArgType`: a value of the wrong JSON type where `expected` was needed.
pub(super) fn bad_arg_type(expected: &str, actual: &Value) -> SmpError {
    SmpError::BadRequest(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

/// Upstream's `ErrNoMergeKey`.
pub(super) fn no_merge_key(m: &Map<String, Value>, key: &str) -> SmpError {
    SmpError::BadRequest(format!(
        "map: {} does not contain declared merge key: {key}",
        go_map(m)
    ))
}

/// Upstream's `ErrBadPatchType`: an unknown `$patch` value.
pub(super) fn bad_patch_type(t: &Value, m: &Map<String, Value>) -> SmpError {
    SmpError::BadRequest(format!(
        "unknown patch type: {} in map: {}",
        go_value(t),
        go_map(m)
    ))
}

/// Go's name of a map type, for [`bad_arg_type`].
pub(super) const GO_MAP: &str = "map[string]interface {}";
/// Go's name of a list type, for [`bad_arg_type`].
pub(super) const GO_LIST: &str = "[]interface {}";
