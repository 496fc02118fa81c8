//! Response bodies: objects and lists as JSON (lists are the cached bytes of their items
//! joined, never re-encoded), `Table`s for `kubectl get` (upstream's columns per kind, with
//! `includeObject`), and `PartialObjectMetadata`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};
use tug_api::ResourceInfo;

use super::cache::Cached;
use super::resources::CustomVersion;

use super::request::{Form, Query};
use crate::status::ApiError;

/// A JSON response.
pub fn json_response(code: StatusCode, body: Bytes) -> Response {
    let mut res = (code, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A JSON response of a value.
pub fn value_response(code: StatusCode, value: &Value) -> Response {
    json_response(
        code,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// What a Table row carries besides its cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// From `includeObject=`.
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        match q.get("includeObject") {
            None | Some("" | "Metadata") => Ok(Include::Metadata),
            Some("None") => Ok(Include::None),
            Some("Object") => Ok(Include::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"None\", \
                 \"Metadata\", \"Object\""
            ))),
        }
    }
}

/// Seconds since the epoch, for ages.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table of `items`. `columns` false leaves out the column definitions (watch events
/// after the first).
pub fn table(
    info: &ResourceInfo,
    custom: Option<&CustomVersion>,
    version: &str,
    items: &[&Value],
    include: Include,
    list_meta: Value,
    columns: bool,
) -> Value {
    let printer = tug_api::printers::printer(info.group, info.plural);
    let now = now_unix();
    let column = |name: &str, type_: &str, format: &str, description: &str, priority: i32| {
        json!({
            "name": name,
            "type": type_,
            "format": format,
            "description": description,
            "priority": priority,
        })
    };
    let defs: Vec<Value> = match (columns, custom) {
        (false, _) => Vec::new(),
        (true, Some(c)) => c
            .columns
            .iter()
            .map(|c| column(&c.name, &c.type_, &c.format, &c.description, c.priority))
            .collect(),
        (true, None) => printer
            .columns
            .iter()
            .map(|c| column(c.name, c.type_, c.format, c.description, c.priority))
            .collect(),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let cells = match custom {
                Some(c) => tug_api::crd::cells(&c.columns, obj, now),
                None => (printer.cells)(obj, now),
            };
            let mut row = json!({ "cells": cells });
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(obj),
                Include::Object => row["object"] = (*obj).clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// List metadata: resourceVersion and, when more remain, continue.
pub fn list_meta(rv: i64, cont: Option<&str>) -> Value {
    let mut m = json!({ "resourceVersion": rv.to_string() });
    if let Some(c) = cont {
        m["continue"] = c.into();
    }
    m
}

/// A custom object stored through another served version, with `apiVersion` set to the
/// version it is read through (conversion `None`: nothing else changes). `None` when the
/// object already says that version (the cached bytes serve as they are).
pub fn as_version(
    info: &ResourceInfo,
    custom: Option<&CustomVersion>,
    obj: &Value,
) -> Option<Value> {
    custom?;
    let gv = info.group_version();
    if obj["apiVersion"].as_str() == Some(gv.as_str()) {
        return None;
    }
    let mut out = obj.clone();
    out["apiVersion"] = Value::String(gv);
    Some(out)
}

/// `obj`'s bytes as read through `info`'s version (a built-in kind's objects, or custom
/// ones already in that version, are their cached bytes: nothing is decoded).
pub fn versioned_bytes(info: &ResourceInfo, custom: Option<&CustomVersion>, obj: &Cached) -> Bytes {
    if custom.is_none() {
        return obj.bytes.clone();
    }
    match as_version(info, custom, obj.value()) {
        Some(v) => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
        None => obj.bytes.clone(),
    }
}

/// A list body from cached items, in the form asked for (JSON joins their bytes).
pub fn list_body(
    info: &ResourceInfo,
    custom: Option<&CustomVersion>,
    form: Form,
    include: Include,
    items: &[&Cached],
    meta: Value,
) -> Bytes {
    match form {
        Form::Json => {
            let size: usize = items.iter().map(|c| c.bytes.len() + 1).sum();
            let mut out = BytesMut::with_capacity(size + 128);
            out.put_slice(b"{\"kind\":\"");
            out.put_slice(info.kind.as_bytes());
            out.put_slice(b"List\",\"apiVersion\":\"");
            out.put_slice(info.group_version().as_bytes());
            out.put_slice(b"\",\"metadata\":");
            out.put_slice(&serde_json::to_vec(&meta).unwrap_or_default());
            out.put_slice(b",\"items\":[");
            for (i, c) in items.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(&versioned_bytes(info, custom, c));
            }
            out.put_slice(b"]}");
            out.freeze()
        }
        Form::Table(version) => {
            let values: Vec<&Value> = items.iter().map(|c| c.value()).collect();
            let t = table(info, custom, version, &values, include, meta, true);
            Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
        }
        Form::Metadata => {
            let list = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items.iter().map(|c| partial_metadata(c.value())).collect::<Vec<_>>(),
            });
            Bytes::from(serde_json::to_vec(&list).unwrap_or_default())
        }
    }
}

/// One cached object in the form asked for.
pub fn object_body(
    info: &ResourceInfo,
    custom: Option<&CustomVersion>,
    form: Form,
    include: Include,
    obj: &Cached,
) -> Bytes {
    match form {
        Form::Json => versioned_bytes(info, custom, obj),
        Form::Table(version) => {
            let value = obj.value();
            let meta = json!({ "resourceVersion": value["metadata"]["resourceVersion"].clone() });
            let t = table(info, custom, version, &[value], include, meta, true);
            Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
        }
        Form::Metadata => {
            Bytes::from(serde_json::to_vec(&partial_metadata(obj.value())).unwrap_or_default())
        }
    }
}
