//! Subresources: `status` (GET/PUT/PATCH of the status alone), `scale` (an autoscaling/v1
//! Scale over spec.replicas), `pods/binding` (the scheduler's write), `pods/eviction`
//! (a delete that disruption budgets will guard), and `namespaces/finalize`. The streaming
//! pod subresources (log, exec, attach, portforward) are proxied to the kubelet by
//! [`crate::kubelet`] before requests reach this module.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use tug_api::strategy::{ErrorType, FieldError};

use super::object;
use super::path::Target;
use super::read;
use super::render;
use super::request::{self, Query};
use super::write::{self, Part, WriteOpts};
use super::Registry;
use crate::status::ApiError;

/// Serves `t.sub` of `t`.
pub async fn handle(
    reg: &Arc<Registry>,
    t: &Target,
    sub: &str,
    method: Method,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let verbs = t
        .info
        .subresources
        .iter()
        .find(|s| s.name == sub)
        .map_or(&["update"][..], |s| s.verbs);
    let verb = match method {
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::POST => "create",
        _ => "",
    };
    if !verbs.contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    match (sub, method) {
        ("status", Method::GET) => read::get(reg, t, q, headers).await,
        ("status", Method::PUT) => write::replace(reg, t, q, headers, body, Part::Status).await,
        ("status", Method::PATCH) => {
            super::patching::patch(reg, t, q, headers, body, Part::Status).await
        }
        ("ephemeralcontainers", Method::GET) => read::get(reg, t, q, headers).await,
        ("ephemeralcontainers", Method::PUT) => {
            write::replace(reg, t, q, headers, body, Part::EphemeralContainers).await
        }
        ("ephemeralcontainers", Method::PATCH) => {
            super::patching::patch(reg, t, q, headers, body, Part::EphemeralContainers).await
        }
        ("scale", Method::GET) => {
            let obj = current(reg, t).await?;
            let paths = scale_paths(t);
            Ok(render::value_response(
                StatusCode::OK,
                &scale_of(&obj, paths.as_ref()),
            ))
        }
        ("scale", Method::PUT) => {
            request::object_body_type(headers)?;
            let sent = request::parse_json(body)?;
            set_scale(reg, t, q, headers, move |_| Ok(sent.clone())).await
        }
        ("scale", Method::PATCH) => {
            let kind = request::patch_body_type(headers)?;
            let doc = request::parse_json(body)?;
            // Scale is a built-in kind: strategic merge follows its type.
            let scale_type = tug_api::schema::builtin().kind("autoscaling", "v1", "Scale");
            set_scale(reg, t, q, headers, move |scale| {
                super::patching::patch_document(kind, &doc, scale, scale_type.as_ref())
            })
            .await
        }
        ("binding", Method::POST) => bind(reg, t, q, body).await,
        ("eviction", Method::POST) => super::eviction::evict(reg, t, q, body).await,
        ("token", Method::POST) => super::token::request(reg, t, body).await,
        ("finalize", Method::PUT) => finalize(reg, t, q, headers, body).await,
        _ => {
            current(reg, t).await?;
            Err(ApiError::bad_request(format!(
                "{}/{sub} is served by the node agent, which this server does not run yet",
                t.info.plural
            )))
        }
    }
}

/// The object a subresource request names, from the watch cache once it is fresh.
pub(super) async fn current(reg: &Registry, t: &Target) -> Result<Value, ApiError> {
    reg.cache.wait_fresh().await?;
    let key = object::relative_key(t.namespace.as_deref(), t.name_str());
    reg.cache
        .resource(t.info)
        .get(&key)
        .map(|c| c.value().clone())
        .ok_or_else(|| ApiError::not_found(t.status_target()))
}

/// A label selector in upstream's text form (`metav1.FormatLabelSelector`).
fn selector_text(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match e["operator"].as_str().unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_owned(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            });
        }
    }
    // A plain map (ReplicationController selectors).
    if parts.is_empty() {
        if let Some(m) = sel.as_object() {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    parts.push(format!("{k}={v}"));
                }
            }
        }
    }
    parts.join(",")
}

/// Where a custom resource keeps its replicas (None: a built-in workload's fields).
fn scale_paths(t: &Target) -> Option<super::resources::ScalePaths> {
    t.custom.as_ref().and_then(|c| c.scale.clone())
}

/// The value at a simple JSONPath such as `.spec.replicas`.
fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(obj, |v, seg| v.get(seg))
}

/// Sets the value at a simple JSONPath such as `.spec.replicas`, making objects on the way.
fn set_path(obj: &mut Value, path: &str, value: Value) {
    let segs: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut cur = obj;
    for seg in &segs[..segs.len().saturating_sub(1)] {
        if !cur[*seg].is_object() {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
    if let Some(last) = segs.last() {
        cur[*last] = value;
    }
}

/// The Scale of a workload (or of a custom resource with the scale subresource).
fn scale_of(obj: &Value, paths: Option<&super::resources::ScalePaths>) -> Value {
    let meta = &obj["metadata"];
    let mut m = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            m[f] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": { "replicas": replicas(obj, paths.map_or(".spec.replicas", |p| &p.spec_replicas)) },
        "status": {
            "replicas": replicas(obj, paths.map_or(".status.replicas", |p| &p.status_replicas)),
            "selector": match paths {
                None => selector_text(&obj["spec"]["selector"]),
                Some(p) => p
                    .label_selector
                    .as_deref()
                    .and_then(|s| at_path(obj, s))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            },
        },
    })
}

fn replicas(obj: &Value, path: &str) -> i64 {
    at_path(obj, path).and_then(Value::as_i64).unwrap_or(0)
}

/// Writes a new replica count from a Scale computed from the current one.
async fn set_scale(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    new_scale: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let opts = WriteOpts::from_request(q, headers, "scale")?;
    let paths = scale_paths(t);
    let updated = write::update_with(reg, t, Part::Main, &opts, |old| {
        let current = scale_of(old, paths.as_ref());
        let scale = new_scale(&current)?;
        let mut map = write::object_map(scale)?;
        write::check_type_field(&mut map, "kind", "kind", "Scale")?;
        let scale = Value::Object(map);
        let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
        if replicas < 0 {
            let err = FieldError {
                kind: ErrorType::Invalid,
                field: "spec.replicas".into(),
                bad_value: Some(json!(replicas)),
                detail: "must be greater than or equal to 0".into(),
            };
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                t.name_str(),
                &[err],
            ));
        }
        let expected = write::changed_precondition(&scale, &current)?;
        let mut new = old.clone();
        let path = paths
            .as_ref()
            .map_or(".spec.replicas", |p| &p.spec_replicas);
        set_path(&mut new, path, json!(replicas));
        Ok((new, expected))
    })
    .await?;
    Ok(render::value_response(
        StatusCode::OK,
        &scale_of(&updated, paths.as_ref()),
    ))
}

/// The Status a successful subresource create answers (201).
pub(super) fn success() -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 })
}

/// pods/binding: assigns a pod to a node, once.
async fn bind(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let dry_run = q.dry_run()?;
    let binding = request::parse_json(body)?;
    let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
    if node.is_empty() {
        let err = FieldError {
            kind: ErrorType::Required,
            field: "target.name".into(),
            bad_value: None,
            detail: String::new(),
        };
        return Err(ApiError::invalid("Binding", "", t.name_str(), &[err]));
    }
    let name = t.name_str().to_owned();
    let key = write::key_of(t, &name);
    // The first attempt starts from the watch cache, as upstream's GuaranteedUpdate does:
    // a stale copy fails the compare-and-swap and the retry reads the store. (Staleness
    // cannot fake the checks below: a node once set and a deletion once begun stay.)
    let mut cached = reg
        .cache
        .resource(t.info)
        .get(&object::relative_key(t.namespace.as_deref(), &name));
    let now = tug_api::meta::timestamp(render::now_unix());
    let condition = json!({
        "type": "PodScheduled", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": now,
    });
    let uid = binding["metadata"]["uid"]
        .as_str()
        .filter(|u| !u.is_empty());
    let annotations = binding["metadata"]["annotations"]
        .as_object()
        .filter(|a| !a.is_empty());
    if annotations.is_some_and(|a| a.values().any(|v| !v.is_string())) {
        return Err(ApiError::bad_request(
            "Binding in version \"v1\" cannot be handled as a Binding: metadata.annotations: expected string values".into(),
        ));
    }
    let node_json = serde_json::to_vec(&node).unwrap_or_default();
    let condition_json = serde_json::to_vec(&condition).unwrap_or_default();
    for _ in 0..write::RETRIES {
        // The usual case, a new pod from the cache, is spliced without decoding it.
        let spliced = cached
            .as_ref()
            .filter(|_| annotations.is_none())
            .and_then(|c| {
                let bytes = super::stamp::bind(&c.bytes, c.rv, uid, &node_json, &condition_json)?;
                Some((c.rv, bytes))
            });
        if let Some((revision, bytes)) = spliced {
            if dry_run {
                return Ok(render::value_response(StatusCode::CREATED, &success()));
            }
            match reg.store.update(&key, bytes, revision).await {
                Ok(_) => return Ok(render::value_response(StatusCode::CREATED, &success())),
                Err(tug_store::Error::Conflict { .. }) => {
                    cached = None;
                    continue;
                }
                Err(e) => return Err(ApiError::from_store(&e, t.status_target())),
            }
        }
        let (revision, mut pod, from_cache) = match cached.take() {
            Some(c) => (
                c.rv,
                c.decode()
                    .map_err(|e| ApiError::internal(format!("undecodable object {key}: {e}")))?,
                true,
            ),
            None => {
                let (kv, pod) = write::load(reg, t, &key).await?;
                (kv.mod_revision, pod, false)
            }
        };
        if let Some(refusal) = refuse_binding(&pod, &name, uid) {
            // A cached copy may be stale (another incarnation, gates since removed): the
            // refusal stands only on what the store holds.
            if from_cache {
                continue;
            }
            return Err(ApiError::conflict(t.status_target(), refusal));
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(status) = pod["status"].as_object_mut() {
            // Upstream's ClearingNominatedNodeNameAfterBinding (on by default).
            status.remove("nominatedNodeName");
        }
        if let Some(annotations) = annotations {
            for (k, v) in annotations {
                pod["metadata"]["annotations"][k] = v.clone();
            }
        }
        let conditions = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conditions.push(condition.clone());
        pod["status"]["conditions"] = json!(conditions);
        if dry_run {
            return Ok(render::value_response(StatusCode::CREATED, &success()));
        }
        match reg
            .store
            .update(&key, object::encode_for_store(&mut pod), revision)
            .await
        {
            Ok(_) => return Ok(render::value_response(StatusCode::CREATED, &success())),
            Err(tug_store::Error::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(&e, t.status_target())),
        }
    }
    Err(write::kept_changing(t))
}

/// Why a pod cannot be bound, in upstream's words (its binding storage's checks).
/// `stamp::bind` splices only pods where none of these fields is present (and the UID
/// matches), so a new check here needs its field among the splice's refused keys.
fn refuse_binding(pod: &Value, name: &str, uid: Option<&str>) -> Option<String> {
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    if let Some(uid) = uid.filter(|u| *u != pod_uid) {
        return Some(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {pod_uid}"
        ));
    }
    if object::is_deleting(pod) {
        return Some(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        ));
    }
    if let Some(existing) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(format!(
            "pod {name} is already assigned to node {existing:?}"
        ));
    }
    if pod["spec"]["schedulingGates"]
        .as_array()
        .is_some_and(|g| !g.is_empty())
    {
        return Some(format!("pod {name} has non-empty .spec.schedulingGates"));
    }
    None
}

/// namespaces/finalize: replaces the namespace's spec.finalizers.
async fn finalize(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let opts = WriteOpts::from_request(q, headers, "finalize")?;
    let sent = request::parse_json(body)?;
    let finalizers = sent["spec"]["finalizers"].clone();
    let updated = write::update_with(reg, t, Part::Main, &opts, |old| {
        let mut new = old.clone();
        if finalizers.is_null() {
            if let Some(spec) = new["spec"].as_object_mut() {
                spec.remove("finalizers");
            }
        } else {
            new["spec"]["finalizers"] = finalizers.clone();
        }
        Ok((new, None))
    })
    .await?;
    Ok(render::value_response(StatusCode::OK, &updated))
}
