//! Printer columns of custom resources, as upstream's CRD table convertor: a `Name` column,
//! then the version's `additionalPrinterColumns` (or `Age` from
//! `metadata.creationTimestamp` when it has none); each cell is the first value the column's
//! JSONPath selects, converted to the column's type (`date` columns show the time since, as
//! `kubectl get` does), or null when nothing is selected.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::formats::go_float;
use super::jsonpath::JsonPath;
use crate::printers::human_duration;

/// Upstream's description of `metadata.name`, used by the Name column.
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Upstream's description of `metadata.creationTimestamp`, used by the default Age column.
const CREATED_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// Unix seconds of Go's zero time, which upstream shows as `<unknown>`.
const GO_ZERO_TIME_SECS: i64 = -62_135_596_800;

/// One column of a custom resource's Table (meta.k8s.io/v1 `TableColumnDefinition`, plus
/// the JSONPath its cells come from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    /// The header: `Name`, `Age`, or the CRD column's name.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// The OpenAPI format: `name` for the Name column, else as the CRD says (often empty).
    pub format: String,
    /// The CRD's description, or upstream's default text.
    pub description: String,
    /// 0 for columns always shown, more for wide output only.
    pub priority: i32,
    /// Where the cells come from (`.spec.replicas`); empty for the Name column, whose cells
    /// are the object's name.
    pub json_path: String,
}

/// The Table columns of a CRD version: Name, then its `additionalPrinterColumns`, or Age
/// when it has none.
pub fn columns(version: &CustomResourceDefinitionVersion) -> Vec<ColumnDef> {
    let mut out = vec![ColumnDef {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: NAME_DESCRIPTION.into(),
        priority: 0,
        json_path: String::new(),
    }];
    let defined = version.additional_printer_columns.as_deref().unwrap_or(&[]);
    if defined.is_empty() {
        out.push(ColumnDef {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: CREATED_DESCRIPTION.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        });
    }
    for c in defined {
        let description = match c.description.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => d.to_owned(),
            None => format!(
                "Custom resource definition column (in JSONPath format): {}",
                c.json_path
            ),
        };
        out.push(ColumnDef {
            name: c.name.clone(),
            type_: c.type_.clone(),
            format: c.format.clone().unwrap_or_default(),
            description,
            priority: c.priority.unwrap_or(0),
            json_path: c.json_path.clone(),
        });
    }
    out
}

/// One object's row: a cell per column. `now` is the current time in Unix seconds (for
/// `date` columns). A path that selects nothing (or does not parse) gives a null cell.
pub fn cells(cols: &[ColumnDef], obj: &Value, now: i64) -> Vec<Value> {
    cols.iter()
        .map(|col| {
            if col.json_path.is_empty() {
                let name = obj.pointer("/metadata/name").and_then(Value::as_str);
                return Value::from(name.unwrap_or(""));
            }
            JsonPath::parse(&col.json_path)
                .ok()
                .and_then(|p| p.first(obj).cloned())
                .map_or(Value::Null, |v| cell(&col.type_, &v, now))
        })
        .collect()
}

/// upstream's `cellForJSONValue`, with `string` columns printed as client-go's JSONPath
/// prints a value.
fn cell(type_: &str, v: &Value, now: i64) -> Value {
    match (type_, v) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => Value::from(s.as_str()),
        ("string", Value::Number(n)) => Value::from(match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        ("string", Value::Bool(b)) => Value::from(b.to_string()),
        ("string", other) => Value::from(other.to_string()),
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64().unwrap_or(0.0) as i64),
        },
        ("number", Value::Number(n)) => Value::from(n.as_f64().unwrap_or(0.0)),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(s)) => Value::from(date_cell(s, now)),
        _ => Value::Null,
    }
}

/// The time since an RFC 3339 timestamp (`<unknown>` for an empty or zero one, `<invalid>`
/// when it does not parse).
fn date_cell(s: &str, now: i64) -> String {
    if s.is_empty() || s == "null" {
        return "<unknown>".into();
    }
    match s.parse::<Timestamp>() {
        Err(_) => "<invalid>".into(),
        Ok(t) if t.as_second() == GO_ZERO_TIME_SECS && t.subsec_nanosecond() == 0 => {
            "<unknown>".into()
        }
        Ok(t) => {
            let nanos = i128::from(now) * 1_000_000_000 - t.as_nanosecond();
            let secs = nanos / 1_000_000_000;
            human_duration(i64::try_from(secs).unwrap_or(i64::MAX))
        }
    }
}
