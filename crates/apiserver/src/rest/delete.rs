//! Deletes: DELETE of one object and of a collection, with upstream's DeleteOptions
//! (grace period, uid and resourceVersion preconditions, dry run, propagation policy as the
//! garbage collector's finalizers). Graceful deletion and "ready to remove" are the kinds'
//! rules ([`super::kinds`]); the compare-and-swap retries are as in [`super::write`].

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::kinds::{self, Deletion};
use super::object;
use super::path::Target;
use super::read::Selectors;
use super::render;
use super::request::{self, Query};
use super::write::{kept_changing, key_of, load, store_err, RETRIES};
use super::Registry;
use crate::status::ApiError;

/// DeleteOptions from the body and the query (the query wins, as upstream merges them).
#[derive(Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub rv: Option<i64>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy` (or the deprecated `orphanDependents` as Orphan/Background).
    pub propagation: Option<String>,
}

/// Reads DeleteOptions from a DELETE request's body (possibly empty) and query.
pub fn delete_options(q: &Query, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return delete_options_from(q, None);
    }
    delete_options_from(q, Some(&request::parse_json(body)?))
}

/// DeleteOptions from an already parsed object (the body, or an Eviction's deleteOptions)
/// and the query.
pub fn delete_options_from(q: &Query, v: Option<&Value>) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if let Some(v) = v {
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "DeleteOptions must be a JSON object".to_owned(),
            ));
        }
        opts.grace = v["gracePeriodSeconds"].as_i64();
        opts.uid = v["preconditions"]["uid"].as_str().map(str::to_owned);
        if let Some(rv) = v["preconditions"]["resourceVersion"].as_str() {
            opts.rv = Some(super::read::parse_rv(rv)?);
        }
        if let Some(p) = v["propagationPolicy"].as_str() {
            check_propagation(p)?;
            opts.propagation = Some(p.to_owned());
        } else if let Some(orphan) = v["orphanDependents"].as_bool() {
            opts.propagation = Some(orphan_policy(orphan));
        }
        opts.dry_run = v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    }
    if let Some(g) = q.int("gracePeriodSeconds")? {
        opts.grace = Some(g);
    }
    if let Some(p) = q.get("propagationPolicy") {
        check_propagation(p)?;
        opts.propagation = Some(p.to_owned());
    } else if let (Some(orphan), None) = (q.get("orphanDependents"), &opts.propagation) {
        opts.propagation = Some(orphan_policy(orphan == "true"));
    }

    opts.dry_run |= q.dry_run()?;
    Ok(opts)
}

/// Propagation policies as upstream: Orphan and Foreground become the `orphan` and
/// `foregroundDeletion` finalizers the garbage collector acts on.
fn check_propagation(p: &str) -> Result<(), ApiError> {
    match p {
        "Orphan" | "Background" | "Foreground" => Ok(()),
        other => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Orphan\", \
             \"Background\", \"Foreground\""
        ))),
    }
}

/// The garbage collector's finalizers.
const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// The policy the deprecated `orphanDependents` stands for.
fn orphan_policy(orphan: bool) -> String {
    if orphan { "Orphan" } else { "Background" }.to_owned()
}

/// Sets the `orphan` / `foregroundDeletion` finalizers a propagation policy asks for (none
/// named: leave them as they are); whether they changed.
fn gc_finalizers(obj: &mut Value, policy: Option<&str>) -> bool {
    let want = match policy {
        Some("Orphan") => Some(ORPHAN),
        Some("Foreground") => Some(FOREGROUND),
        Some(_) => None,
        None => return false,
    };
    let mut list: Vec<Value> = obj["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let before = list.clone();
    list.retain(|f| f != ORPHAN && f != FOREGROUND);
    if let Some(w) = want {
        list.push(json!(w));
    }
    if list == before {
        return false;
    }
    if list.is_empty() {
        object::remove_meta(obj, "finalizers");
    } else {
        object::set_meta(obj, "finalizers", Value::Array(list));
    }
    true
}

/// Deletes one object; the object (pods, or when deletion is pending) or a Success Status.
pub async fn delete_one(
    reg: &Registry,
    t: &Target,
    opts: &DeleteOptions,
) -> Result<Response, ApiError> {
    let name = t.name_str().to_owned();
    let key = key_of(t, &name);
    let is_namespace = t.info.group.is_empty() && t.info.plural == "namespaces";
    if is_namespace && kinds::IMMORTAL_NAMESPACES.contains(&name.as_str()) {
        return Err(ApiError::forbidden(
            t.status_target(),
            format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
        ));
    }
    for _ in 0..RETRIES {
        let (kv, mut obj) = load(reg, t, &key).await?;
        let uid = object::meta_str(&obj, "uid").unwrap_or("").to_owned();
        if let Some(want) = &opts.uid {
            if *want != uid {
                return Err(ApiError::conflict(
                    t.status_target(),
                    format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                ));
            }
        }
        if let Some(want) = opts.rv {
            if want != kv.mod_revision {
                return Err(ApiError::conflict(
                    t.status_target(),
                    format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, \
                         ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
        }
        let is_pod = t.info.group.is_empty() && t.info.plural == "pods";
        let finalizers_changed = gc_finalizers(&mut obj, opts.propagation.as_deref());
        match kinds::deletion(t.info, &obj, opts.grace) {
            Deletion::Graceful { grace } => {
                let pending = object::meta_str(&obj, "deletionTimestamp").is_some();
                let shorter = obj["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .is_some_and(|g| grace < g);
                if !pending || shorter || finalizers_changed {
                    kinds::mark_deleting(t.info, &mut obj, grace, render::now_unix());
                    if !opts.dry_run {
                        match reg
                            .store
                            .update(&key, object::encode_for_store(&mut obj), kv.mod_revision)
                            .await
                        {
                            Ok(w) => object::set_meta(
                                &mut obj,
                                "resourceVersion",
                                w.mod_revision.to_string(),
                            ),
                            Err(tug_store::Error::Conflict { .. }) if opts.rv.is_none() => continue,
                            Err(e) => return Err(store_err(t, &e)),
                        }
                    }
                }
                return Ok(render::value_response(StatusCode::OK, &obj));
            }
            Deletion::Now => {
                if !opts.dry_run {
                    match reg.store.delete(&key, Some(kv.mod_revision)).await {
                        Ok(_) => kinds::release_all(t.info, &mut reg.allocator(), &obj),
                        Err(tug_store::Error::Conflict { .. }) if opts.rv.is_none() => continue,
                        Err(e) => return Err(store_err(t, &e)),
                    }
                }
                if is_pod {
                    return Ok(render::value_response(StatusCode::OK, &obj));
                }
                let mut details = json!({ "name": name, "kind": t.info.plural, "uid": uid });
                if !t.info.group.is_empty() {
                    details["group"] = json!(t.info.group);
                }
                let status = json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                });
                return Ok(render::value_response(StatusCode::OK, &status));
            }
        }
    }
    Err(kept_changing(t))
}

/// DELETE on an object.
pub async fn delete(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let opts = delete_options(q, body)?;
    delete_one(reg, t, &opts).await
}

/// DELETE on a collection: deletes every object the selectors match; answers the list of
/// what was deleted, as upstream.
pub async fn delete_collection(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let opts = delete_options(q, body)?;
    let sel = Selectors::from_query(t, q)?;
    reg.cache.wait_fresh().await?;
    let cache = super::read::resource(reg, t);
    let snap = cache.snapshot(t.namespace.as_deref(), reg.cache.revision());
    let mut deleted = Vec::new();
    for c in snap.items.iter().filter(|c| sel.matches_cached(t, c)) {
        let one = Target {
            info: t.info,
            namespace: object::namespace(c.value()).map(str::to_owned),
            name: Some(object::name(c.value()).to_owned()),
            sub: None,
            custom: t.custom.clone(),
        };
        match delete_one(reg, &one, &opts).await {
            Ok(_) => deleted.push(c.value().clone()),
            Err(e) if e.code == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": format!("{}List", t.info.kind),
        "apiVersion": t.info.group_version(),
        "metadata": { "resourceVersion": snap.rv.to_string() },
        "items": deleted,
    });
    Ok(render::value_response(StatusCode::OK, &list).into_response())
}
