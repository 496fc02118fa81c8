//! Objects as JSON values: reading and writing the metadata fields the generic REST code
//! manages (name, namespace, resourceVersion, uid, generation, deletion), storage keys, and
//! the typed round trip that checks a body against its kind's schema.

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::{Map, Value};
use tug_api::ResourceInfo;

/// Where a resource's objects live in the store: `/registry/<group>/<plural>/`, with the
/// version appended for a resource that is not its group's first-listed version (those are
/// kept apart until conversion between versions exists). Computed once per resource.
pub fn storage_prefix(info: &ResourceInfo) -> &'static str {
    static PREFIXES: LazyLock<HashMap<(&str, &str, &str), String>> = LazyLock::new(|| {
        let catalogue = tug_api::catalogue();
        catalogue
            .iter()
            .map(|r| {
                let group = if r.group.is_empty() { "core" } else { r.group };
                let preferred = catalogue
                    .iter()
                    .find(|p| p.group == r.group && p.plural == r.plural)
                    .is_none_or(|p| p.version == r.version);
                let prefix = if preferred {
                    format!("/registry/{group}/{}/", r.plural)
                } else {
                    format!("/registry/{group}/{}.{}/", r.plural, r.version)
                };
                ((r.group, r.version, r.plural), prefix)
            })
            .collect()
    });
    match PREFIXES.get(&(info.group, info.version, info.plural)) {
        Some(p) => p,
        // A custom resource: every version shares one prefix (conversion is None).
        None => intern(&format!("/registry/{}/{}/", info.group, info.plural)),
    }
}

/// One `&'static str` per distinct string: store prefixes of resources that appear while
/// the server runs (custom resources). Bounded by the number of distinct resources.
pub fn intern(s: &str) -> &'static str {
    static INTERNED: LazyLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        LazyLock::new(Default::default);
    let mut set = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// The key of one object below its resource's prefix: `ns/name` or `name`.
pub fn relative_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// `metadata`, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(map) = obj else {
        unreachable!("made an object above")
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.name`, or "".
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// `metadata.namespace`, if set.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|s| !s.is_empty())
}

/// Sets a string field of `metadata`.
pub fn set_meta(obj: &mut Value, field: &str, value: impl Into<Value>) {
    meta_mut(obj).insert(field.to_owned(), value.into());
}

/// Removes a field of `metadata`.
pub fn remove_meta(obj: &mut Value, field: &str) -> Option<Value> {
    meta_mut(obj).remove(field)
}

/// `metadata.finalizers` is non-empty.
pub fn has_finalizers(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// The object as stored: JSON without `metadata.resourceVersion` (the store's revision is
/// the resource version). Removes it from `obj` rather than copying the object; callers set
/// the new one from the write's revision.
pub fn encode_for_store(obj: &mut Value) -> Bytes {
    remove_meta(obj, "resourceVersion");
    Bytes::from(serde_json::to_vec(obj).unwrap_or_default())
}

/// Parses a stored object and gives it its resource version.
pub fn decode_stored(bytes: &[u8], revision: i64) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(bytes)?;
    set_meta(&mut obj, "resourceVersion", revision.to_string());
    Ok(obj)
}

/// Fields present in `sent` (with a non-null value) but absent from `kept`, as dotted paths:
/// what a typed decode dropped as unknown.
pub fn dropped_fields(sent: &Value, kept: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_dropped(sent, kept, &mut Vec::new(), &mut out);
    out
}

/// A step of a path in [`dropped_fields`]; the path is spelled only for a dropped field.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn spell(path: &[Step<'_>]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn walk_dropped<'a>(
    sent: &'a Value,
    kept: &Value,
    path: &mut Vec<Step<'a>>,
    out: &mut Vec<String>,
) {
    match (sent, kept) {
        (Value::Object(s), Value::Object(k)) => {
            for (key, sv) in s {
                path.push(Step::Key(key));
                match k.get(key) {
                    None if !sv.is_null() => out.push(spell(path)),
                    None => {}
                    Some(kv) => walk_dropped(sv, kv, path, out),
                }
                path.pop();
            }
        }
        (Value::Array(s), Value::Array(k)) => {
            for (i, (sv, kv)) in s.iter().zip(k).enumerate() {
                path.push(Step::Index(i));
                walk_dropped(sv, kv, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefixes_keep_versions_apart() {
        let pods = tug_api::find("", "v1", "pods").unwrap();
        assert_eq!(storage_prefix(pods), "/registry/core/pods/");
        let hpa2 = tug_api::find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        let hpa1 = tug_api::find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        assert_ne!(storage_prefix(hpa1), storage_prefix(hpa2));
    }

    #[test]
    fn stored_objects_carry_no_resource_version() {
        let mut obj = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let bytes = encode_for_store(&mut obj);
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let back = decode_stored(&bytes, 9).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn dropped_fields_are_named() {
        let sent = json!({"spec": {"a": 1, "b": {"c": 2}, "n": null, "l": [{"x": 1, "y": 2}]}});
        let kept = json!({"spec": {"a": 1, "b": {}, "l": [{"x": 1}]}});
        assert_eq!(
            dropped_fields(&sent, &kept),
            vec!["spec.b.c", "spec.l[0].y"]
        );
    }
}
