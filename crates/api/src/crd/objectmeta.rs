//! Object metadata of custom resources: the root object's name rule (upstream's custom
//! resource validator checks `metadata.name` and `generateName` as DNS subdomains) and the
//! checks upstream's `schema/objectmeta` package makes on embedded resources
//! (`x-kubernetes-embedded-resource`: apiVersion and kind present and well-formed, and a
//! loose check of their metadata's name and namespace).

use serde_json::{Map, Value};

use super::structural::Schema;
use super::{child, index, key};
use crate::strategy::{invalid, required, FieldError};
use crate::validation::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain};

use crate::go::go_type;

/// A string field of the metadata map (malformed values count as absent, as upstream drops
/// them when it reads the metadata of a request).
fn meta_str<'a>(meta: &'a Map<String, Value>, k: &str) -> &'a str {
    meta.get(k).and_then(Value::as_str).unwrap_or("")
}

/// upstream's `maskTrailingDash`: a generateName prefix may end with a dash.
pub(crate) fn masked(name: &str, prefix: bool) -> String {
    if prefix && name.len() > 1 && name.ends_with('-') {
        let mut chars = name.chars();
        chars.next_back();
        chars.next_back();
        format!("{}a", chars.as_str())
    } else {
        name.to_owned()
    }
}

/// The name and generateName of a custom resource: DNS subdomains, one of them required.
pub(crate) fn validate_root_name(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            errs.push(invalid(
                "metadata",
                other.clone(),
                &format!("invalid metadata: expected object, got {}", go_type(other)),
            ));
            return errs;
        }
    };
    let generate = meta_str(meta, "generateName");
    if !generate.is_empty() {
        for msg in is_dns1123_subdomain(&masked(generate, true)) {
            errs.push(invalid("metadata.generateName", generate, &msg));
        }
    }
    match meta_str(meta, "name") {
        "" => errs.push(required(
            "metadata.name",
            "name or generateName is required",
        )),
        name => {
            for msg in is_dns1123_subdomain(name) {
                errs.push(invalid("metadata.name", name, &msg));
            }
        }
    }
    errs
}

/// upstream's `IsPathSegmentName` / `IsPathSegmentPrefix`.
fn path_segment_errors(name: &str, prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if !prefix && (name == "." || name == "..") {
        errs.push(format!("may not be '{name}'"));
    }
    for c in ["/", "%"] {
        if name.contains(c) {
            errs.push(format!("may not contain '{c}'"));
        }
    }
    errs
}

/// Embedded resources below `path` (upstream's `objectmeta.Validate`; the root counts as one
/// only when `is_root`).
pub(crate) fn validate_embedded(
    s: &Schema,
    path: &str,
    x: &Value,
    is_root: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    walk(s, path, x, is_root, &mut errs);
    errs
}

fn walk(s: &Schema, path: &str, x: &Value, embedded: bool, errs: &mut Vec<FieldError>) {
    match x {
        Value::Object(map) => {
            if embedded || s.embedded {
                embedded_resource(path, map, errs);
            }
            for (k, v) in map {
                if let Some(prop) = s.properties.get(k) {
                    walk(prop, &child(path, k), v, false, errs);
                } else if let Some(extra) = s.additional_schema() {
                    walk(extra, &key(path, k), v, false, errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &s.items {
                for (i, v) in items.iter().enumerate() {
                    walk(item_schema, &index(path, i), v, false, errs);
                }
            }
        }
        _ => {}
    }
}

/// upstream's `validateEmbeddedResource`.
fn embedded_resource(path: &str, x: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    for k in ["apiVersion", "kind"] {
        if !x.contains_key(k) {
            errs.push(required(child(path, k), ""));
        }
    }
    if let Some(v) = x.get("apiVersion") {
        let field = child(path, "apiVersion");
        match v.as_str() {
            None => errs.push(invalid(field, v.clone(), "must be a string")),
            Some("") => errs.push(invalid(field, "", "must not be empty")),
            Some(av) if av.matches('/').count() > 1 => errs.push(invalid(
                field,
                av,
                &format!("unexpected GroupVersion string: {av}"),
            )),
            Some(_) => {}
        }
    }
    if let Some(v) = x.get("kind") {
        let field = child(path, "kind");
        match v.as_str() {
            None => errs.push(invalid(field, v.clone(), "must be a string")),
            Some("") => errs.push(invalid(field, "", "must not be empty")),
            Some(kind) => {
                let msgs = is_dns1035_label(&kind.to_lowercase());
                if !msgs.is_empty() {
                    errs.push(invalid(
                        field,
                        kind,
                        &format!(
                            "may have mixed case, but should otherwise match: {}",
                            msgs.join(",")
                        ),
                    ));
                }
            }
        }
    }
    match x.get("metadata") {
        None => {}
        Some(Value::Object(meta)) => {
            let mpath = child(path, "metadata");
            let generate = meta_str(meta, "generateName");
            if !generate.is_empty() {
                for msg in path_segment_errors(generate, true) {
                    errs.push(invalid(child(&mpath, "generateName"), generate, &msg));
                }
            }
            let name = meta_str(meta, "name");
            if !name.is_empty() {
                for msg in path_segment_errors(name, false) {
                    errs.push(invalid(child(&mpath, "name"), name, &msg));
                }
            }
            let namespace = meta_str(meta, "namespace");
            if !namespace.is_empty() {
                for msg in is_dns1123_label(namespace) {
                    errs.push(invalid(child(&mpath, "namespace"), namespace, &msg));
                }
            }
        }
        Some(other) => errs.push(invalid(
            child(path, "metadata"),
            other.clone(),
            &format!("invalid metadata: expected object, got {}", go_type(other)),
        )),
    }
}
