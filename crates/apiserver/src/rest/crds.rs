//! The CustomResourceDefinition controller, run inside the API server as upstream's
//! apiextensions-apiserver does: it watches CRDs in the watch cache and, on every change,
//! recomputes the served custom resources (names checked for conflicts, `NamesAccepted` and
//! `Established` conditions, accepted names and stored versions written to the status),
//! swaps them into [`Resources`](super::resources::Resources) (routing, discovery) and the
//! OpenAPI documents, and finishes deleting CRDs: their objects are deleted, then the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer is removed.
//!
//! It is level-triggered: every event leads to one full pass over all CRDs (there are few),
//! and a pass is idempotent — a status that is already right is not written again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::path::Target;
use super::resources::{custom_info, CustomNames, CustomVersion, ScalePaths};
use super::write::{self, Part};
use super::{object, Registry};

/// The finalizer every CRD carries until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn crd_info() -> Option<&'static tug_api::ResourceInfo> {
    tug_api::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

/// What the served set is built from: every accepted CRD's uid and spec generation. A pass
/// that finds the same rebuilds nothing (no schema compiled again, no discovery or OpenAPI
/// documents dropped) — most passes are caused by the controller's own status writes.
#[derive(Default, PartialEq, Eq)]
pub struct Accepted(Vec<(String, i64)>);

/// Starts the controller (after a first [`sync`] made `served`); it runs as long as the
/// cache does.
pub fn spawn(reg: Arc<Registry>, served: Accepted) {
    tokio::spawn(async move { run(reg, served).await });
}

async fn run(reg: Arc<Registry>, mut served: Accepted) {
    let Some(info) = crd_info() else { return };
    loop {
        let cache = reg.cache.resource(info);
        let Ok(sub) = cache.subscribe(0, None, reg.cache.revision()) else {
            return;
        };
        let mut live = sub.live;
        let mut pending = sync(&reg, &mut served).await;
        loop {
            // Objects of a CRD being deleted may wait on their own finalizers: their changes
            // are not CRD events, so look again after a while until they are gone.
            let retry = async {
                if pending {
                    tokio::time::sleep(DELETION_RETRY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                got = live.recv() => match got {
                    Ok(_) => {
                        // Everything queued is covered by one pass.
                        while live.try_recv().is_ok() {}
                    }
                    Err(RecvError::Lagged(_)) => {}
                    // The cache was refilled: subscribe again.
                    Err(RecvError::Closed) => break,
                },
                () = retry => {}
            }
            pending = sync(&reg, &mut served).await;
        }
    }
}

/// How soon a pass runs again while a CRD's objects are still being deleted.
const DELETION_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// One pass over every CRD; true while a CRD being deleted still has objects.
pub async fn sync(reg: &Arc<Registry>, last: &mut Accepted) -> bool {
    let Some(info) = crd_info() else { return false };
    let mut crds: Vec<Value> = reg
        .cache
        .resource(info)
        .snapshot(None, reg.cache.revision())
        .items
        .iter()
        .map(|c| c.value().clone())
        .collect();
    // The oldest CRD keeps contested names, as upstream.
    crds.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                object::name(v).to_owned(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut taken: HashMap<String, HashSet<String>> = HashMap::new();
    let mut accepted_crds = Vec::new();
    let mut served = Accepted::default();
    let mut statuses = Vec::new();
    let mut deleting = Vec::new();
    for crd in &crds {
        let Ok(typed) = serde_json::from_value::<CustomResourceDefinition>(crd.clone()) else {
            tracing::warn!(
                crd = object::name(crd),
                "undecodable CustomResourceDefinition"
            );
            continue;
        };
        let spec = &typed.spec;
        let names = &spec.names;
        let in_group = taken.entry(spec.group.clone()).or_default();
        let mut wanted = vec![names.plural.clone(), names.kind.clone()];
        wanted.extend(names.singular.iter().filter(|s| !s.is_empty()).cloned());
        wanted.extend(names.short_names.iter().flatten().cloned());
        let conflict = wanted
            .iter()
            .find(|n| in_group.contains(*n) || builtin_name(&spec.group, n));
        let status = status_for(crd, &typed, conflict);
        if conflict.is_none() {
            in_group.extend(wanted.iter().cloned());
            let uid = typed.metadata.uid.clone().unwrap_or_default();
            served.0.push((uid, typed.metadata.generation.unwrap_or(0)));
        }
        if crd["status"] != status {
            statuses.push((object::name(crd).to_owned(), status));
        }
        if object::is_deleting(crd) {
            deleting.push(typed.clone());
        }
        if conflict.is_none() {
            accepted_crds.push(typed);
        }
    }
    if *last != served {
        let versions: Vec<CustomVersion> = accepted_crds
            .iter()
            .flat_map(|crd| {
                crd.spec
                    .versions
                    .iter()
                    .filter(|v| v.served)
                    .map(move |v| custom_version(crd, v))
            })
            .collect();
        reg.openapi
            .set_custom(versions.iter().map(openapi_kind).collect());
        reg.resources.set_custom(versions);
        *last = served;
    }
    for (name, status) in statuses {
        write_status(reg, &name, status).await;
    }
    let mut pending = false;
    for crd in &deleting {
        pending |= !finish_deletion(reg, crd).await;
    }
    pending
}

/// The OpenAPI view of a served custom resource.
fn openapi_kind(c: &CustomVersion) -> crate::openapi::CustomKind {
    crate::openapi::CustomKind {
        group: c.info.group.to_owned(),
        version: c.info.version.to_owned(),
        kind: c.info.kind.to_owned(),
        list_kind: c.list_kind.clone(),
        plural: c.info.plural.to_owned(),
        namespaced: c.info.namespaced,
        schema: c.schema.clone(),
        status: c.status,
        scale: c.scale.is_some(),
    }
}

/// Whether `name` belongs to a built-in resource of `group`.
fn builtin_name(group: &str, name: &str) -> bool {
    tug_api::catalogue().iter().any(|r| {
        r.group == group && (r.plural == name || r.kind == name || r.short_names.contains(&name))
    })
}

/// The scale subresource's paths of one version, if it has one.
fn scale_paths(v: &CustomResourceDefinitionVersion) -> Option<ScalePaths> {
    let s = v.subresources.as_ref()?.scale.as_ref()?;
    Some(ScalePaths {
        spec_replicas: s.spec_replicas_path.clone(),
        status_replicas: s.status_replicas_path.clone(),
        label_selector: s.label_selector_path.clone(),
    })
}

/// The resource one version of a CRD serves.
fn info_of(
    crd: &CustomResourceDefinition,
    v: &CustomResourceDefinitionVersion,
) -> &'static tug_api::ResourceInfo {
    let spec = &crd.spec;
    let names = &spec.names;
    custom_info(&CustomNames {
        group: spec.group.clone(),
        version: v.name.clone(),
        kind: names.kind.clone(),
        plural: names.plural.clone(),
        namespaced: spec.scope == "Namespaced",
        short_names: names.short_names.clone().unwrap_or_default(),
        categories: names.categories.clone().unwrap_or_default(),
        status: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
        scale: scale_paths(v).is_some(),
    })
}

fn custom_version(
    crd: &CustomResourceDefinition,
    v: &CustomResourceDefinitionVersion,
) -> CustomVersion {
    let names = &crd.spec.names;
    let info = info_of(crd, v);
    let scale = scale_paths(v);
    let status = info.has_subresource("status");
    let props = v
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    CustomVersion {
        info,
        crd: crd.metadata.name.clone().unwrap_or_default(),
        list_kind: names
            .list_kind
            .clone()
            .unwrap_or_else(|| format!("{}List", names.kind)),
        singular: names
            .singular
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| names.kind.to_ascii_lowercase()),
        schema: props
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or(Value::Null),
        structural: props.and_then(|p| match tug_api::crd::Structural::new(p) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(crd = ?crd.metadata.name, error = %e, "unusable schema");
                None
            }
        }),
        ty: props.map_or_else(tug_api::schema::Ty::any, tug_api::crd::to_ty),
        columns: tug_api::crd::columns(v),
        scale,
        status,
    }
}

/// The status a CRD should have, given whether its names conflict.
fn status_for(crd: &Value, typed: &CustomResourceDefinition, conflict: Option<&String>) -> Value {
    let spec = &typed.spec;
    let old = &crd["status"];
    let now = tug_api::meta::timestamp(super::render::now_unix());
    let old_conditions = old["conditions"].as_array().cloned().unwrap_or_default();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        let previous = old_conditions
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == status);
        let since = previous
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map_or_else(|| now.clone(), str::to_owned);
        json!({
            "type": type_,
            "status": status,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        })
    };
    let mut conditions = Vec::new();
    match conflict {
        None => {
            conditions.push(condition(
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            ));
            conditions.push(condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ));
        }
        Some(name) => {
            let message = format!("{name:?} is already in use");
            conditions.push(condition(
                "NamesAccepted",
                "False",
                "NameConflict",
                &message,
            ));
            conditions.push(condition(
                "Established",
                "False",
                "NotAccepted",
                "not all names are accepted",
            ));
        }
    }
    if object::is_deleting(crd) {
        conditions.push(condition(
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    let mut stored: Vec<Value> = old["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(v) = spec.versions.iter().find(|v| v.storage) {
        if !stored.iter().any(|s| s == v.name.as_str()) {
            stored.push(json!(v.name));
        }
    }
    let names = &spec.names;
    let accepted = if conflict.is_none() {
        json!({
            "plural": names.plural,
            "singular": names.singular.clone().filter(|s| !s.is_empty())
                .unwrap_or_else(|| names.kind.to_ascii_lowercase()),
            "kind": names.kind,
            "listKind": names.list_kind.clone().unwrap_or_else(|| format!("{}List", names.kind)),
            "shortNames": names.short_names,
            "categories": names.categories,
        })
    } else {
        old.get("acceptedNames")
            .cloned()
            .unwrap_or_else(|| json!({"plural": "", "kind": ""}))
    };
    let mut status = json!({
        "conditions": conditions,
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
    if let Some(m) = status["acceptedNames"].as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    status
}

fn crd_target(name: &str) -> Option<Target> {
    Some(Target {
        info: crd_info()?,
        namespace: None,
        name: Some(name.to_owned()),
        sub: Some("status".to_owned()),
        custom: None,
    })
}

/// Writes `status` unless the CRD already has it.
async fn write_status(reg: &Registry, name: &str, status: Value) {
    let Some(t) = crd_target(name) else { return };
    let opts = write::WriteOpts::internal();
    let result = write::update_with(reg, &t, Part::Status, &opts, |old| {
        let mut new = old.clone();
        new["status"] = status.clone();
        Ok((new, None))
    })
    .await;
    if let Err(e) = result {
        if e.code != http::StatusCode::NOT_FOUND {
            tracing::warn!(crd = name, error = %e.message, "could not write CRD status");
        }
    }
}

/// Deletes the objects of a CRD being deleted, then lets the CRD go; false while objects
/// remain.
async fn finish_deletion(reg: &Arc<Registry>, crd: &CustomResourceDefinition) -> bool {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let spec = &crd.spec;
    let Some(version) = spec
        .versions
        .iter()
        .find(|v| v.storage)
        .or(spec.versions.first())
    else {
        return true;
    };
    // Every version shares one store prefix; the storage version's resource finds them.
    let info = info_of(crd, version);
    let objects = reg
        .cache
        .resource(info)
        .snapshot(None, reg.cache.revision());
    let mut remaining = 0;
    for obj in &objects.items {
        let t = Target {
            info,
            namespace: obj
                .namespace()
                .map(str::to_owned)
                .filter(|_| info.namespaced),
            name: Some(object::name(obj.value()).to_owned()),
            sub: None,
            custom: None,
        };
        match super::delete::delete_one(reg, &t, &super::delete::DeleteOptions::default()).await {
            Ok(_) => {
                if object::has_finalizers(obj.value()) {
                    remaining += 1;
                }
            }
            Err(e) if e.code == http::StatusCode::NOT_FOUND => {}
            Err(e) => {
                remaining += 1;
                tracing::warn!(crd = %name, error = %e.message, "could not delete a custom object");
            }
        }
    }
    if remaining > 0 {
        return false;
    }
    let Some(mut t) = crd_target(&name) else {
        return true;
    };
    t.sub = None;
    let opts = write::WriteOpts::internal();
    let result = write::update_with(reg, &t, Part::Main, &opts, |old| {
        let mut new = old.clone();
        if let Some(f) = new["metadata"]["finalizers"].as_array_mut() {
            f.retain(|x| x != CLEANUP_FINALIZER);
        }
        Ok((new, None))
    })
    .await;
    if let Err(e) = result {
        if e.code != http::StatusCode::NOT_FOUND {
            tracing::warn!(crd = %name, error = %e.message, "could not finish deleting a CRD");
        }
    }
    true
}
