//! Uniqueness of `x-kubernetes-list-type: set` and `map` lists, as upstream's
//! `ValidateListSetsAndMaps`: the second occurrence of a repeated element (set) or key (map)
//! is a `Duplicate value`, and map lists must hold objects.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::structural::Schema;
use super::{child, index, key};
use crate::strategy::{duplicate, invalid, FieldError};

/// The list errors of an object below `path` ("" at the root).
pub(crate) fn validate_lists(s: &Schema, path: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Value::Object(map) = obj {
        object(s, path, map, &mut errs);
    }
    errs
}

fn object(s: &Schema, path: &str, map: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    if let Some(extra) = s.additional_schema() {
        for (k, v) in map {
            value(extra, &key(path, k), v, errs);
        }
    }
    for (k, v) in map {
        if let Some(prop) = s.properties.get(k) {
            value(prop, &child(path, k), v, errs);
        }
    }
}

fn value(s: &Schema, path: &str, v: &Value, errs: &mut Vec<FieldError>) {
    match v {
        Value::Array(items) => array(s, path, items, errs),
        Value::Object(map) => object(s, path, map, errs),
        _ => {}
    }
}

fn array(s: &Schema, path: &str, items: &[Value], errs: &mut Vec<FieldError>) {
    match s.list_type.as_deref() {
        Some("set") => {
            let keys: Vec<String> = items.iter().map(Value::to_string).collect();
            for i in repeats(&keys) {
                errs.push(duplicate(index(path, i), items[i].clone()));
            }
        }
        Some("map") => list_map(s, path, items, errs),
        _ => {}
    }
    if let Some(item_schema) = &s.items {
        for (i, item) in items.iter().enumerate() {
            value(item_schema, &index(path, i), item, errs);
        }
    }
}

/// Indices of the second occurrence of each repeated key.
fn repeats(keys: &[String]) -> Vec<usize> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let times = seen.entry(k.as_str()).or_insert(0);
        *times += 1;
        if *times == 2 {
            out.push(i);
        }
    }
    out
}

fn list_map(s: &Schema, path: &str, items: &[Value], errs: &mut Vec<FieldError>) {
    if let Some((i, bad)) = items
        .iter()
        .enumerate()
        .find(|(_, x)| !x.is_null() && !x.is_object())
    {
        errs.push(invalid(
            index(path, i),
            bad.clone(),
            "must be an object for an array of list-type map",
        ));
        return;
    }
    if items.len() <= 1 {
        return;
    }
    // The key of each element: the values of the key fields it has.
    let key_maps: Vec<Map<String, Value>> = items
        .iter()
        .map(|x| {
            s.list_map_keys
                .iter()
                .filter_map(|k| x.get(k).map(|v| (k.clone(), v.clone())))
                .collect()
        })
        .collect();
    let keys: Vec<String> = key_maps
        .iter()
        .map(|m| serde_json::to_string(m).unwrap_or_default())
        .collect();
    for i in repeats(&keys) {
        errs.push(duplicate(
            index(path, i),
            Value::Object(key_maps[i].clone()),
        ));
    }
}
