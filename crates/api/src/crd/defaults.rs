//! Defaulting: of a CRD object (upstream's `SetObjectDefaults_CustomResourceDefinition`) and
//! of custom resources from their schema's `default`s (upstream's structural defaulting).

use serde_json::{json, Map, Value};

use super::structural::Schema;

/// Fills a CRD's defaults (JSON as sent, `apiextensions.k8s.io/v1`), as upstream's
/// `SetObjectDefaults_CustomResourceDefinition`: `spec.names.singular` = the lower-cased
/// kind, `spec.names.listKind` = kind + `List`, `spec.conversion` = `{strategy: None}`, a
/// conversion webhook service's `port` = 443, and `status.storedVersions` = the storage
/// version when empty. Per-version schemas have no defaults of their own in v1.
/// Does nothing to values that are not objects.
pub fn default_crd(crd: &mut Value) {
    let Some(obj) = crd.as_object_mut() else {
        return;
    };
    let mut storage_version = None;
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
            default_names(names);
        }
        match spec.get_mut("conversion") {
            None | Some(Value::Null) => {
                spec.insert("conversion".into(), json!({"strategy": "None"}));
            }
            Some(conversion) => {
                let service = conversion
                    .pointer_mut("/webhook/clientConfig/service")
                    .and_then(Value::as_object_mut);
                if let Some(service) = service {
                    if service.get("port").is_none_or(Value::is_null) {
                        service.insert("port".into(), json!(443));
                    }
                }
            }
        }
        storage_version = spec
            .get("versions")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            })
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    let Some(version) = storage_version else {
        return;
    };
    let status = obj
        .entry("status")
        .or_insert_with(|| Value::Object(Map::new()));
    if status.is_null() {
        *status = Value::Object(Map::new());
    }
    if let Some(status) = status.as_object_mut() {
        let empty = status
            .get("storedVersions")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if empty {
            status.insert("storedVersions".into(), json!([version]));
        }
    }
}

fn default_names(names: &mut Map<String, Value>) {
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let unset = |names: &Map<String, Value>, k: &str| {
        names
            .get(k)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    };
    if unset(names, "singular") {
        names.insert("singular".into(), Value::from(kind.to_lowercase()));
    }
    if unset(names, "listKind") && !kind.is_empty() {
        names.insert("listKind".into(), Value::from(format!("{kind}List")));
    }
}

/// upstream's structural `Default`: below every present object, missing (or non-nullable
/// null) properties get a copy of their default; null items and map values that are not
/// nullable get their schema's default.
pub(crate) fn apply_defaults(s: &Schema, x: &mut Value) {
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                let missing = match map.get(k) {
                    None => true,
                    Some(v) => v.is_null() && !prop.nullable,
                };
                if missing {
                    map.insert(k.clone(), default.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    apply_defaults(prop, v);
                } else if let Some(extra) = s.additional_schema() {
                    if v.is_null() && !extra.nullable {
                        if let Some(default) = &extra.default {
                            *v = default.clone();
                        }
                    }
                    apply_defaults(extra, v);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = &s.items else {
                return;
            };
            for item in items {
                if item.is_null() && !item_schema.nullable {
                    if let Some(default) = &item_schema.default {
                        *item = default.clone();
                    }
                }
                apply_defaults(item_schema, item);
            }
        }
        _ => {}
    }
}
