//! PATCH requests, all four types: JSON patch and JSON merge patch (algorithms in
//! [`super::patch`]), strategic merge patch for built-in kinds (`tug_api::strategic`,
//! driven by upstream's patch metadata; custom resources answer 415 as upstream), and
//! server-side apply (`tug_api::apply`: managedFields, conflicts, creating absent objects).

use std::sync::{Arc, Mutex};

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tug_api::schema::Ty;
use tug_api::strategy::{ErrorType, FieldError};

use super::fields::{self, Operation, WriteOpts};
use super::path::Target;
use super::request::{self, BodyType, Query};
use super::write::{self, Part};
use super::{object, patch, render, Registry};
use crate::status::ApiError;

fn patch_options_error(kind: ErrorType, field: &str, detail: &str) -> ApiError {
    ApiError::invalid_options(
        "PatchOptions",
        FieldError {
            kind,
            field: field.into(),
            bad_value: None,
            detail: detail.into(),
        },
    )
}

fn unprocessable(message: String) -> ApiError {
    ApiError {
        code: StatusCode::UNPROCESSABLE_ENTITY,
        reason: "Invalid",
        message,
        details: None,
    }
}

/// Applies a JSON, merge or strategic merge patch to a document. `strategic` is the type
/// strategic merge follows; `None` (custom resources) answers 415, as upstream.
pub fn patch_document(
    kind: BodyType,
    patch_doc: &Value,
    old: &Value,
    strategic: Option<&Ty>,
) -> Result<Value, ApiError> {
    match kind {
        BodyType::MergePatch => {
            let mut doc = old.clone();
            patch::merge_patch(&mut doc, patch_doc);
            Ok(doc)
        }
        BodyType::JsonPatch => {
            let mut doc = old.clone();
            patch::json_patch(&mut doc, patch_doc).map_err(|e| match e {
                patch::PatchError::Malformed(m) => ApiError::bad_request(m),
                patch::PatchError::Failed(m) => unprocessable(m),
            })?;
            Ok(doc)
        }
        BodyType::StrategicMergePatch => {
            let Some(ty) = strategic else {
                return Err(request::unsupported_patch_type(
                    "application/strategic-merge-patch+json",
                ));
            };
            tug_api::strategic::apply(old, patch_doc, ty, tug_api::schema::builtin()).map_err(|e| {
                match e {
                    tug_api::strategic::SmpError::BadRequest(m) => ApiError::bad_request(m),
                    tug_api::strategic::SmpError::Invalid(m) => unprocessable(m),
                }
            })
        }
        BodyType::ApplyPatch | BodyType::Json => {
            Err(request::unsupported_patch_type("application/json"))
        }
    }
}

/// Applies a JSON, merge or strategic merge patch to `old`; the result must still decode as
/// the kind.
pub fn apply_patch(
    t: &Target,
    q: &Query,
    kind: BodyType,
    patch_doc: &Value,
    old: &Value,
) -> Result<(Value, Vec<String>), ApiError> {
    let ty = t.custom.is_none().then(|| fields::type_of(t));
    let doc = patch_document(kind, patch_doc, old, ty.as_ref())?;
    let decoded = write::decode_object(t, q, doc)?;
    Ok((decoded.obj, decoded.warnings))
}

/// PATCH an object (or, with `part`, its status).
pub async fn patch(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    part: Part,
) -> Result<Response, ApiError> {
    let kind = request::patch_body_type(headers)?;
    if kind == BodyType::ApplyPatch {
        return server_side_apply(reg, t, q, headers, body, part).await;
    }
    if q.get("force").is_some() {
        return Err(patch_options_error(
            ErrorType::Forbidden,
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    let opts = WriteOpts::from_request(q, headers, part.subresource())?;
    let doc = request::parse_json(body)?;
    let warnings = Mutex::new(Vec::new());
    let updated = write::update_written(reg, t, part, &opts, |old| {
        let (new, w) = apply_patch(t, q, kind, &doc, old)?;
        *warnings.lock().unwrap_or_else(|e| e.into_inner()) = w;
        let expected = write::changed_precondition(&new, old)?;
        Ok((new, expected))
    })
    .await?;
    let res = updated.response(StatusCode::OK);
    let warnings = warnings.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(write::with_warnings(res, &warnings))
}

/// Reads an apply body: YAML (JSON is YAML too), one object.
fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty".to_owned(),
        ));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    serde_norway::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Server-side apply: `application/apply-patch+yaml`.
async fn server_side_apply(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    part: Part,
) -> Result<Response, ApiError> {
    let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(patch_options_error(
            ErrorType::Required,
            "fieldManager",
            "is required for apply patch",
        ));
    };
    let force = match q.get("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid boolean value for force: {other:?}"
            )))
        }
    };
    let mut opts = WriteOpts::from_request(q, headers, part.subresource())?;
    opts.operation = Operation::Apply;
    opts.manager = manager.to_owned();
    let config = parse_apply_body(body)?;
    // Type, schema and unknown-field checks (fieldValidation) of the configuration.
    let checked = write::decode_object(t, q, config.clone())?;
    let mut config = config;
    if let Some(m) = config.as_object_mut() {
        m.insert("apiVersion".into(), json!(t.info.group_version()));
        m.insert("kind".into(), json!(t.info.kind));
    }
    let sent_name = object::name(&config);
    if !sent_name.is_empty() && sent_name != t.name_str() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({sent_name}) does not match the name on the URL ({})",
            t.name_str()
        )));
    }
    let ty = fields::type_of(t);
    let api_version = t.info.group_version();
    let time = tug_api::meta::timestamp(render::now_unix());
    let mgr = tug_api::apply::Manager {
        name: manager,
        api_version: &api_version,
        time: &time,
        subresource: part.subresource(),
        reset_fields: fields::reset_fields(t, part.subresource()),
    };
    let schemas = tug_api::schema::builtin();
    let result = write::update_with(reg, t, part, &opts, |old| {
        let new = tug_api::apply::apply(Some(old), &config, &mgr, force, &ty, schemas)
            .map_err(|e| apply_error(t, e))?;
        let decoded = write::decode_object(t, &Query::default(), new)?;
        Ok((decoded.obj, None))
    })
    .await;
    let (code, obj) = match result {
        Ok(obj) => (StatusCode::OK, obj),
        Err(e) if e.code == StatusCode::NOT_FOUND && part == Part::Main => {
            let new = tug_api::apply::apply(None, &config, &mgr, force, &ty, schemas)
                .map_err(|e| apply_error(t, e))?;
            let mut obj = write::decode_object(t, &Query::default(), new)?.obj;
            object::set_meta(&mut obj, "name", t.name_str().to_owned());
            (
                StatusCode::CREATED,
                write::create_object(reg, t, &opts, obj).await?,
            )
        }
        Err(e) => return Err(e),
    };
    let res = render::value_response(code, &obj);
    Ok(write::with_warnings(res, &checked.warnings))
}

/// An apply failure as upstream's Status: 409 with one cause per conflicting field.
fn apply_error(t: &Target, e: tug_api::apply::ApplyError) -> ApiError {
    use tug_api::apply::ApplyError;
    match e {
        ApplyError::Conflicts(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| {
                    json!({
                        "reason": "FieldManagerConflict",
                        "message": c.cause_message(),
                        "field": c.field,
                    })
                })
                .collect();
            let mut details = json!({
                "name": t.name_str(),
                "kind": t.info.plural,
                "causes": causes,
            });
            if !t.info.group.is_empty() {
                details["group"] = json!(t.info.group);
            }
            ApiError {
                code: StatusCode::CONFLICT,
                reason: "Conflict",
                message: tug_api::apply::conflict_message(&conflicts),
                details: Some(details),
            }
        }
        ApplyError::Invalid(m) => unprocessable(m),
        ApplyError::BadManagedFields(m) => ApiError::bad_request(m),
    }
}
