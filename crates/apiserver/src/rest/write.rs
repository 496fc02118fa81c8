//! Writes: create, replace and the update step of patches, all through the same steps as
//! upstream — decode and check the body against the kind's type, server-set metadata,
//! defaulting, validation (422 with causes), namespace lifecycle, then a compare-and-swap
//! write that retries on conflict unless the client named a resourceVersion. `dryRun=All`
//! runs every step but the write. Deletes are in [`super::delete`].

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::fields;
pub use super::fields::WriteOpts;
use super::kinds;
use super::object;
use super::path::Target;
use super::render;
use super::request::{self, Query};
use super::Registry;
use crate::status::ApiError;

/// How many times a write retries after losing a compare-and-swap race.
pub(crate) const RETRIES: usize = 16;

/// A decoded body and the warnings it earned.
pub struct Decoded {
    /// The object, normalized by its type.
    pub obj: Value,
    /// `Warning` header values.
    pub warnings: Vec<String>,
}

/// Checks a body's `field` (`apiVersion` or `kind`) against `expected`, filling it in when
/// absent; `what` names it in the 400 ("API version", "kind").
pub fn check_type_field(
    map: &mut serde_json::Map<String, Value>,
    field: &str,
    what: &str,
    expected: &str,
) -> Result<(), ApiError> {
    match map.get(field).and_then(Value::as_str) {
        None | Some("") => {
            map.insert(field.into(), expected.into());
            Ok(())
        }
        Some(v) if v == expected => Ok(()),
        Some(v) => Err(ApiError::bad_request(format!(
            "the {what} in the data ({v}) does not match the expected {what} ({expected})"
        ))),
    }
}

/// A body as a JSON object, else 400.
pub fn object_map(sent: Value) -> Result<serde_json::Map<String, Value>, ApiError> {
    match sent {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "the request body must be a JSON object".to_owned(),
        )),
    }
}

/// Decodes an object body for `t`: JSON, the right apiVersion and kind (filled in when
/// absent), the kind's schema, and unknown fields per `fieldValidation`.
pub fn decode_object(t: &Target, q: &Query, sent: Value) -> Result<Decoded, ApiError> {
    decode_checked(t, q, sent, Vec::new())
}

/// Parses and decodes an object body, counting its duplicate fields as `fieldValidation`
/// problems too.
pub fn decode_body(t: &Target, q: &Query, body: &[u8]) -> Result<Decoded, ApiError> {
    let (sent, duplicates) = if q.get("fieldValidation") == Some("Ignore") {
        (request::parse_json(body)?, Vec::new())
    } else {
        request::parse_json_with_duplicates(body)?
    };
    decode_checked(t, q, sent, duplicates)
}

fn decode_checked(
    t: &Target,
    q: &Query,
    sent: Value,
    duplicates: Vec<String>,
) -> Result<Decoded, ApiError> {
    let kind = t.info.kind;
    let mut map = object_map(sent)?;
    check_type_field(
        &mut map,
        "apiVersion",
        "API version",
        &t.info.group_version(),
    )?;
    check_type_field(&mut map, "kind", "kind", kind)?;
    let sent = Value::Object(map);
    let (obj, dropped) = match t.custom.as_deref().and_then(|c| c.structural.as_ref()) {
        // A custom resource: fields its schema does not know are pruned.
        Some(schema) => {
            let mut obj = sent;
            let pruned = schema.prune(&mut obj);
            (obj, pruned)
        }
        None => {
            let obj = (t.info.normalize)(&sent).map_err(|e| {
                ApiError::bad_request(format!(
                    "{kind} in version {:?} cannot be handled as a {kind}: {e}",
                    t.info.version
                ))
            })?;
            let dropped = object::dropped_fields(&sent, &obj);
            (obj, dropped)
        }
    };
    let mut warnings = Vec::new();
    if !dropped.is_empty() || !duplicates.is_empty() {
        let texts: Vec<String> = dropped
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .chain(duplicates.iter().map(|f| format!("duplicate field {f:?}")))
            .collect();
        match q.get("fieldValidation") {
            Some("Strict") => {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    texts.join(", ")
                )))
            }
            Some("Ignore") => {}
            _ => warnings = texts,
        }
    }
    Ok(Decoded { obj, warnings })
}

/// Adds `Warning` headers (code 299) to a response.
pub fn with_warnings(mut res: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            res.headers_mut().append("warning", v);
        }
    }
    res
}

fn invalid(t: &Target, name: &str, errors: &[tug_api::strategy::FieldError]) -> ApiError {
    ApiError::invalid(t.info.kind, t.info.group, name, errors)
}

/// Checks that the namespace of a namespaced write exists and is not terminating.
pub async fn check_namespace(reg: &Registry, t: &Target, name: &str) -> Result<(), ApiError> {
    let Some(ns) = t.namespace.as_deref().filter(|_| t.info.namespaced) else {
        return Ok(());
    };
    let Some(info) = tug_api::find("", "v1", "namespaces") else {
        return Ok(());
    };
    let cache = reg.cache.resource(info);
    let mut found = cache.get(ns);
    if found.is_none() {
        reg.cache.wait_fresh().await?;
        found = cache.get(ns);
    }
    let Some(namespace) = found else {
        return Err(ApiError::not_found(crate::status::Target {
            resource: "namespaces",
            group: "",
            name: ns,
        }));
    };
    if object::is_deleting(namespace.value()) {
        return Err(ApiError::forbidden(
            t.status_target(),
            format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {ns} \
                 because it is being terminated",
                t.info.plural
            ),
        ));
    }
    Ok(())
}

pub(crate) fn store_err(t: &Target, e: &tug_store::Error) -> ApiError {
    ApiError::from_store(e, t.status_target())
}

/// The stored object at `key` and its value (with its resourceVersion); 404 if absent.
pub async fn load(
    reg: &Registry,
    t: &Target,
    key: &str,
) -> Result<(tug_store::KeyValue, Value), ApiError> {
    let kv = reg
        .store
        .get(key)
        .await
        .map_err(|e| store_err(t, &e))?
        .ok_or_else(|| ApiError::not_found(t.status_target()))?;
    let value = object::decode_stored(&kv.value, kv.mod_revision)
        .map_err(|e| ApiError::internal(format!("undecodable object {key}: {e}")))?;
    Ok((kv, value))
}

/// The store key of object `name` of `t`'s resource and namespace.
pub fn key_of(t: &Target, name: &str) -> String {
    format!(
        "{}{}",
        object::storage_prefix(t.info),
        object::relative_key(t.namespace.as_deref(), name)
    )
}

/// POST: creates an object.
pub async fn create(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    request::object_body_type(headers)?;
    let opts = WriteOpts::from_request(q, headers, "")?;
    let Decoded { obj, warnings } = decode_body(t, q, body)?;
    let written = create_written(reg, t, &opts, obj).await?;
    Ok(with_warnings(
        written.response(StatusCode::CREATED),
        &warnings,
    ))
}

/// An object as a write left it, and, when it was stored, its JSON as stored with the new
/// resourceVersion spliced in: the response body without encoding the object again.
pub struct Written {
    /// The object (with its new resourceVersion).
    pub obj: Value,
    /// Its JSON, when the write produced it.
    pub body: Option<Bytes>,
}

impl Written {
    fn stored(obj: Value, stored: &Bytes, revision: i64) -> Written {
        let body = super::stamp::stamp(stored, revision);
        Written { obj, body }
    }

    fn unstored(obj: Value) -> Written {
        Written { obj, body: None }
    }

    /// The object as a JSON response.
    pub fn response(self, code: StatusCode) -> Response {
        match self.body {
            Some(body) => render::json_response(code, body),
            None => render::value_response(code, &self.obj),
        }
    }
}

/// Creates a decoded object: names, metadata, defaults, validation, managedFields, store.
pub async fn create_object(
    reg: &Registry,
    t: &Target,
    opts: &WriteOpts,
    obj: Value,
) -> Result<Value, ApiError> {
    create_written(reg, t, opts, obj).await.map(|w| w.obj)
}

/// [`create_object`], keeping the stored JSON for the response.
pub async fn create_written(
    reg: &Registry,
    t: &Target,
    opts: &WriteOpts,
    mut obj: Value,
) -> Result<Written, ApiError> {
    if t.info.namespaced && t.namespace.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    let dry_run = opts.dry_run;
    if let (Some(url_ns), Some(obj_ns)) = (t.namespace.as_deref(), object::namespace(&obj)) {
        if url_ns != obj_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on \
                 the request"
                    .to_owned(),
            ));
        }
    }
    if object::meta_str(&obj, "resourceVersion").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created".to_owned(),
        ));
    }
    if let Some(ns) = &t.namespace {
        object::set_meta(&mut obj, "namespace", ns.clone());
    } else {
        object::remove_meta(&mut obj, "namespace");
    }
    if object::name(&obj).is_empty() {
        if let Some(prefix) = object::meta_str(&obj, "generateName").map(str::to_owned) {
            object::set_meta(&mut obj, "name", tug_api::meta::generate_name(&prefix));
        }
    }
    let name = object::name(&obj).to_owned();
    if name.is_empty() {
        let err = tug_api::strategy::FieldError {
            kind: tug_api::strategy::ErrorType::Required,
            field: "metadata.name".into(),
            bad_value: None,
            detail: "name or generateName is required".into(),
        };
        return Err(invalid(t, "", &[err]));
    }
    check_namespace(reg, t, &name).await?;
    for f in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        object::remove_meta(&mut obj, f);
    }
    object::set_meta(&mut obj, "uid", tug_api::meta::new_uid());
    object::set_meta(
        &mut obj,
        "creationTimestamp",
        tug_api::meta::timestamp(render::now_unix()),
    );
    kinds::prepare_create(t.info, &mut obj);
    let custom = t.custom.as_deref();
    super::custom::default(custom, t.info, &mut obj);
    super::admission::admit_create(reg, t, &mut obj).await?;
    let errors = super::custom::validate(custom, t.info, &obj, None);
    if !errors.is_empty() {
        return Err(invalid(t, &name, &errors));
    }
    fields::track(t, opts, None, &mut obj);
    let taken = {
        let mut alloc = reg.allocator();
        kinds::allocate(t.info, &mut alloc, &mut obj, None).map_err(|e| invalid(t, &name, &e))?
    };
    if dry_run {
        taken.undo(&mut reg.allocator());
        return Ok(Written::unstored(obj));
    }
    let key = key_of(t, &name);
    let stored = object::encode_for_store(&mut obj);
    match reg.store.create(&key, stored.clone()).await {
        Ok(kv) => {
            object::set_meta(&mut obj, "resourceVersion", kv.mod_revision.to_string());
            Ok(Written::stored(obj, &stored, kv.mod_revision))
        }
        Err(e) => {
            taken.undo(&mut reg.allocator());
            let named = Target {
                name: Some(name),
                ..t.clone()
            };
            Err(store_err(&named, &e))
        }
    }
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Everything but a separate status.
    Main,
    /// Only the status.
    Status,
    /// Only a pod's `spec.ephemeralContainers`.
    EphemeralContainers,
}

impl Part {
    /// The subresource managedFields record for a write of this part.
    pub fn subresource(self) -> &'static str {
        match self {
            Part::Main => "",
            Part::Status => "status",
            Part::EphemeralContainers => "ephemeralcontainers",
        }
    }
}

/// Reads the object, computes its new state with `change` (which may also name the
/// resourceVersion the client expects), applies the server's rules and writes it with
/// compare-and-swap, retrying when another writer won and the client named no version.
pub async fn update_with(
    reg: &Registry,
    t: &Target,
    part: Part,
    opts: &WriteOpts,
    change: impl Fn(&Value) -> Result<(Value, Option<i64>), ApiError>,
) -> Result<Value, ApiError> {
    update_written(reg, t, part, opts, change)
        .await
        .map(|w| w.obj)
}

/// [`update_with`], keeping the stored JSON for the response.
pub async fn update_written(
    reg: &Registry,
    t: &Target,
    part: Part,
    opts: &WriteOpts,
    change: impl Fn(&Value) -> Result<(Value, Option<i64>), ApiError>,
) -> Result<Written, ApiError> {
    let dry_run = opts.dry_run;
    let name = t.name_str().to_owned();
    let key = key_of(t, &name);
    for _ in 0..RETRIES {
        let (kv, old) = load(reg, t, &key).await?;
        let (sent, expected) = change(&old)?;
        if let Some(rv) = expected {
            if rv != kv.mod_revision {
                return Err(store_err(
                    t,
                    &tug_store::Error::Conflict {
                        key: key.clone(),
                        expected: rv,
                        actual: kv.mod_revision,
                    },
                ));
            }
        }
        let mut new = match part {
            Part::Main => sent,
            Part::Status => kinds::apply_status(&old, &sent),
            Part::EphemeralContainers => kinds::apply_ephemeral_containers(&old, &sent),
        };
        let sent_name = object::name(&new);
        if !sent_name.is_empty() && sent_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({sent_name}) does not match the name on the URL ({name})"
            )));
        }
        if let (Some(a), Some(b)) = (object::namespace(&new), t.namespace.as_deref()) {
            if a != b {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent \
                     on the request"
                        .to_owned(),
                ));
            }
        }
        new["apiVersion"] = json!(t.info.group_version());
        new["kind"] = json!(t.info.kind);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old["metadata"].get(f) {
                Some(v) => object::set_meta(&mut new, f, v.clone()),
                None => {
                    object::remove_meta(&mut new, f);
                }
            }
        }
        if part == Part::Main {
            kinds::prepare_update(t.info, &mut new, &old);
        }
        let custom = t.custom.as_deref();
        super::custom::default(custom, t.info, &mut new);
        let taken = {
            let mut alloc = reg.allocator();
            kinds::allocate(t.info, &mut alloc, &mut new, Some(&old))
                .map_err(|e| invalid(t, &name, &e))?
        };
        let errors = match part {
            Part::EphemeralContainers => {
                tug_api::strategy::validate_ephemeral_containers_update(&new, &old)
            }
            _ => super::custom::validate(custom, t.info, &new, Some(&old)),
        };
        if !errors.is_empty() {
            taken.undo(&mut reg.allocator());
            return Err(invalid(t, &name, &errors));
        }
        object::set_meta(&mut new, "resourceVersion", kv.mod_revision.to_string());
        fields::track(t, opts, Some(&old), &mut new);
        if fields::unchanged(&new, &old) {
            return Ok(Written::unstored(old));
        }
        if dry_run {
            taken.undo(&mut reg.allocator());
            return Ok(Written::unstored(new));
        }
        if kinds::ready_to_remove(t.info, &new) {
            return match reg.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(kv) => {
                    kinds::release_all(t.info, &mut reg.allocator(), &old);
                    object::set_meta(&mut new, "resourceVersion", kv.mod_revision.to_string());
                    Ok(Written::unstored(new))
                }
                Err(tug_store::Error::Conflict { .. }) if expected.is_none() => continue,
                Err(e) => Err(store_err(t, &e)),
            };
        }
        let stored = object::encode_for_store(&mut new);
        match reg
            .store
            .update(&key, stored.clone(), kv.mod_revision)
            .await
        {
            Ok(written) => {
                kinds::release_unused(t.info, &mut reg.allocator(), &new, &old);
                object::set_meta(
                    &mut new,
                    "resourceVersion",
                    written.mod_revision.to_string(),
                );
                return Ok(Written::stored(new, &stored, written.mod_revision));
            }
            Err(tug_store::Error::Conflict { .. }) if expected.is_none() => {
                taken.undo(&mut reg.allocator());
            }
            Err(e) => {
                taken.undo(&mut reg.allocator());
                return Err(store_err(t, &e));
            }
        }
    }
    Err(kept_changing(t))
}

/// The resourceVersion a body names, if any (a precondition).
pub fn precondition(obj: &Value) -> Result<Option<i64>, ApiError> {
    match object::meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(s) => super::read::parse_rv(s).map(Some),
    }
}

/// 409 after [`RETRIES`] lost compare-and-swap races in a row.
pub fn kept_changing(t: &Target) -> ApiError {
    ApiError::conflict(
        t.status_target(),
        "the object kept changing; please try again".to_owned(),
    )
}

/// The precondition of an object computed from `old` (a patched object, a Scale): none if it
/// kept `old`'s resourceVersion (so a lost race retries), else the one it names.
pub fn changed_precondition(new: &Value, old: &Value) -> Result<Option<i64>, ApiError> {
    Ok(match (precondition(new)?, precondition(old)?) {
        (Some(n), Some(o)) if n != o => Some(n),
        _ => None,
    })
}

/// PUT: replaces an object (or, with `part`, its status).
pub async fn replace(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    part: Part,
) -> Result<Response, ApiError> {
    request::object_body_type(headers)?;
    let opts = WriteOpts::from_request(q, headers, part.subresource())?;
    let Decoded { obj, warnings } = decode_body(t, q, body)?;
    let expected = precondition(&obj)?;
    let updated = update_written(reg, t, part, &opts, |_| Ok((obj.clone(), expected))).await?;
    Ok(with_warnings(updated.response(StatusCode::OK), &warnings))
}
