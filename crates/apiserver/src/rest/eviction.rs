//! pods/eviction, as upstream's eviction REST: a pod covered by a PodDisruptionBudget is
//! deleted only if the budget allows a disruption, which the eviction takes (the budget's
//! `disruptionsAllowed` goes down by one and the pod is listed in `disruptedPods` until the
//! disruption controller sees it gone); otherwise 429 with a `DisruptionBudget` cause.
//! Terminal, pending and already-terminating pods skip the check.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use tug_api::selectors::LabelSelector;

use super::object;
use super::path::Target;
use super::render;
use super::request::{self, Query};
use super::write::{self, Part, WriteOpts};
use super::Registry;
use crate::status::ApiError;

const VIOLATES: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// POST pods/{name}/eviction.
pub async fn evict(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut eviction = write::object_map(request::parse_json(body)?)?;
    write::check_type_field(&mut eviction, "kind", "kind", "Eviction")?;
    let opts = super::delete::delete_options_from(q, eviction.get("deleteOptions"))?;
    let pod = super::subresource::current(reg, t).await?;
    if !can_ignore_budget(&pod) {
        if let Some(pdb) = budget_of(reg, t, &pod).await? {
            take_disruption(reg, t, &pod, &pdb, opts.dry_run).await?;
        }
    }
    super::delete::delete_one(reg, t, &opts).await?;
    Ok(render::value_response(
        StatusCode::CREATED,
        &super::subresource::success(),
    ))
}

/// Pods whose eviction never disrupts: finished, not yet running, or already going.
fn can_ignore_budget(pod: &Value) -> bool {
    object::is_deleting(pod)
        || matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Pending")
        )
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The one budget covering the pod (none → `None`; several → 500, as upstream).
async fn budget_of(reg: &Registry, t: &Target, pod: &Value) -> Result<Option<Value>, ApiError> {
    let Some(info) = tug_api::find("policy", "v1", "poddisruptionbudgets") else {
        return Ok(None);
    };
    let snap = reg
        .cache
        .resource(info)
        .snapshot(t.namespace.as_deref(), reg.cache.revision());
    let mut found = Vec::new();
    for c in snap.items.iter() {
        let Some(sel) = c.value()["spec"].get("selector").filter(|s| !s.is_null()) else {
            continue;
        };
        let Ok(sel) = serde_json::from_value(sel.clone()) else {
            continue;
        };
        let Ok(sel) = LabelSelector::from_k8s(&sel) else {
            continue;
        };
        if sel.matches_object(pod) {
            found.push(c.value().clone());
        }
    }
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(ApiError::internal(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource \
             does not support."
                .to_owned(),
        )),
    }
}

fn too_many_requests(message: String, cause: Option<String>) -> ApiError {
    let mut details = json!({ "kind": "pods" });
    if let Some(c) = cause {
        details["causes"] = json!([{ "reason": "DisruptionBudget", "message": c }]);
    }
    ApiError {
        code: StatusCode::TOO_MANY_REQUESTS,
        reason: "TooManyRequests",
        message,
        details: Some(details),
    }
}

/// Checks the budget and records the disruption in its status (compare-and-swap).
async fn take_disruption(
    reg: &Registry,
    t: &Target,
    pod: &Value,
    pdb: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    let pdb_name = object::name(pdb).to_owned();
    let status = &pdb["status"];
    let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
    if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err(too_many_requests(
            VIOLATES.to_owned(),
            Some(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )),
        ));
    }
    let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
    let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
    let always = pdb["spec"]["unhealthyPodEvictionPolicy"].as_str() == Some("AlwaysAllow");
    if !pod_ready(pod) && (always || healthy >= desired) {
        // An unready pod costs the budget nothing.
        return Ok(());
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed < 0 {
        return Err(ApiError::forbidden(
            t.status_target(),
            "pdb disruptions allowed is negative".to_owned(),
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            VIOLATES.to_owned(),
            Some(format!(
                "The disruption budget {pdb_name} needs {desired} healthy pods and has \
                 {healthy} currently"
            )),
        ));
    }
    if dry_run {
        return Ok(());
    }
    let Some(info) = tug_api::find("policy", "v1", "poddisruptionbudgets") else {
        return Ok(());
    };
    let pdb_target = Target {
        info,
        namespace: t.namespace.clone(),
        name: Some(pdb_name),
        sub: Some("status".to_owned()),
        custom: None,
    };
    let pod_name = object::name(pod).to_owned();
    let rv = pdb["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse::<i64>().ok());
    let opts = WriteOpts {
        subresource: "status".to_owned(),
        ..WriteOpts::internal()
    };
    let result = write::update_with(reg, &pdb_target, Part::Status, &opts, |old| {
        let mut new = old.clone();
        let left = new["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) - 1;
        new["status"]["disruptionsAllowed"] = json!(left);
        let now = tug_api::meta::timestamp(render::now_unix());
        if !new["status"]["disruptedPods"].is_object() {
            new["status"]["disruptedPods"] = json!({});
        }
        new["status"]["disruptedPods"][&pod_name] = json!(now);
        Ok((new, rv))
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        // The budget changed since it was read: the client retries, as upstream asks.
        Err(e) if e.code == StatusCode::CONFLICT => Err(too_many_requests(
            "Cannot evict pod as the disruption budget changed; please retry".to_owned(),
            None,
        )),
        Err(e) => Err(e),
    }
}
