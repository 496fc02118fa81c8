//! Pruning of custom resources, as upstream's request decoding does it: the structural
//! pruning algorithm (unknown fields dropped unless `x-kubernetes-preserve-unknown-fields`;
//! `apiVersion`, `kind` and `metadata` kept at the root and in embedded resources), then
//! nulls of non-nullable fields without a default, then the coercion of object metadata to
//! `ObjectMeta` (unknown fields, malformed fields and nulls dropped; `apiVersion`/`kind`
//! that are not strings dropped).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

use super::structural::{Additional, Schema};
use super::{child, key};
use crate::schema::{builtin, Node, Schemas, Ty};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prunes a whole custom resource; returns the dropped unknown fields' paths, sorted.
pub(crate) fn prune_object(root: &Schema, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune(obj, Some(root), true, "", &mut unknown);
    prune_nulls(obj, Some(root));
    coerce(obj, root, true, "", &mut unknown);
    unknown.sort();
    unknown
}

/// Prunes a value against one schema node (used on defaults: `root` marks a resource root).
pub(crate) fn prune_value(s: &Schema, x: &mut Value, root: bool) {
    prune(x, Some(s), root, "", &mut Vec::new());
}

/// The schema `additionalProperties` prunes with: none for a bare boolean (which drops
/// everything below, as upstream).
fn additional(s: &Schema) -> Option<Option<&Schema>> {
    match &s.additional {
        None => None,
        Some(Additional::Allows(_)) => Some(None),
        Some(Additional::Schema(extra)) => Some(Some(extra)),
    }
}

fn index_path(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn prune(x: &mut Value, s: Option<&Schema>, root: bool, path: &str, unknown: &mut Vec<String>) {
    if let Some(s) = s.filter(|s| s.preserve_unknown) {
        skip_prune(x, Some(s), root, path, unknown);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                unknown.extend(map.keys().map(|k| child(path, k)));
                map.clear();
                return;
            };
            let embedded = root || s.embedded;
            map.retain(|k, v| {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    return true;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune(v, Some(prop), false, &child(path, k), unknown);
                    true
                } else if let Some(extra) = additional(s) {
                    prune(v, extra, false, &child(path, k), unknown);
                    true
                } else {
                    if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                        unknown.push(child(path, k));
                    }
                    false
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                prune(item, item_schema, false, &index_path(path, i), unknown);
            }
        }
        _ => {}
    }
}

fn skip_prune(
    x: &mut Value,
    s: Option<&Schema>,
    root: bool,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let Some(s) = s else {
        return;
    };
    match x {
        Value::Object(map) => {
            let embedded = root || s.embedded;
            for (k, v) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune(v, Some(prop), false, &child(path, k), unknown);
                } else if let Some(extra) = additional(s) {
                    prune(v, extra, false, &child(path, k), unknown);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                skip_prune(
                    item,
                    s.items.as_deref(),
                    false,
                    &index_path(path, i),
                    unknown,
                );
            }
        }
        _ => {}
    }
}

/// upstream's `PruneNonNullableNullsWithoutDefaults`.
fn prune_nulls(x: &mut Value, s: Option<&Schema>) {
    match x {
        Value::Object(map) => {
            map.retain(|k, v| {
                let field = s.and_then(|s| s.field_schema(k));
                let drop = v.is_null() && field.is_some_and(|f| !f.nullable && f.default.is_none());
                if !drop {
                    prune_nulls(v, field);
                }
                !drop
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for item in items {
                prune_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}

/// upstream's `objectmeta.Coerce` with malformed fields dropped: metadata of the root and of
/// embedded resources is cut to what `ObjectMeta` holds.
fn coerce(x: &mut Value, s: &Schema, root: bool, path: &str, unknown: &mut Vec<String>) {
    match x {
        Value::Object(map) => {
            if root || s.embedded {
                for k in ["apiVersion", "kind"] {
                    if map.get(k).is_some_and(|v| !v.is_string()) {
                        map.remove(k);
                    }
                }
                if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                    coerce_meta(meta, &child(path, "metadata"), unknown);
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    coerce(v, prop, false, &child(path, k), unknown);
                } else if let Some(extra) = s.additional_schema() {
                    coerce(v, extra, false, &key(path, k), unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    coerce(item, item_schema, false, &index_path(path, i), unknown);
                }
            }
        }
        _ => {}
    }
}

fn coerce_meta(meta: &mut Map<String, Value>, path: &str, unknown: &mut Vec<String>) {
    let schemas = builtin();
    if let Some(ty) = schemas.named("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta") {
        let mut value = Value::Object(std::mem::take(meta));
        prune_builtin(&mut value, &ty, schemas, path, unknown);
        if let Value::Object(m) = value {
            *meta = m;
        }
    }
    meta.retain(|k, v| {
        if v.is_null() {
            return false;
        }
        let mut single = Map::new();
        single.insert(k.clone(), v.clone());
        serde_json::from_value::<ObjectMeta>(Value::Object(single)).is_ok()
    });
}

/// Drops the fields a built-in type does not have, recursively.
fn prune_builtin(v: &mut Value, ty: &Ty, schemas: &Schemas, path: &str, unknown: &mut Vec<String>) {
    match (schemas.resolve(ty), v) {
        (Node::Struct(st), Value::Object(map)) => {
            map.retain(|k, fv| match st.fields.get(k) {
                Some(field) => {
                    prune_builtin(fv, &field.ty, schemas, &child(path, k), unknown);
                    true
                }
                None if st.extra.is_some() => true,
                None => {
                    unknown.push(child(path, k));
                    false
                }
            });
        }
        (Node::Map(m), Value::Object(map)) => {
            for (k, fv) in map.iter_mut() {
                prune_builtin(fv, &m.values, schemas, &child(path, k), unknown);
            }
        }
        (Node::List(l), Value::Array(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                prune_builtin(item, &l.items, schemas, &index_path(path, i), unknown);
            }
        }
        _ => {}
    }
}
