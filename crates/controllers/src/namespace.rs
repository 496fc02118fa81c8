//! The namespace controller, as upstream's `pkg/controller/namespace`: a namespace marked for
//! deletion goes to phase Terminating, every namespaced object in it is deleted (one
//! deletecollection per resource where the resource answers it, else one delete per object),
//! and once nothing is left the `kubernetes` finalizer is taken off through
//! `namespaces/<name>/finalize`, letting the apiserver remove the namespace. The status
//! conditions say why it is still there, with upstream's types, reasons and messages.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus};
use kube::api::{DeleteParams, DynamicObject, ListParams, PartialObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::garbagecollector::resources::{self, Deletable};
use crate::Context;

/// The finalizer this controller owns on `spec.finalizers`.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// The condition types this controller keeps, in upstream's order.
const CONDITIONS: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
];

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error("namespace {namespace}: {source}")]
    Api {
        /// The namespace.
        namespace: String,
        /// The failure.
        #[source]
        source: kube::Error,
    },
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let queue: Queue<String> = Queue::new();
    let informer = ctx.informers.get::<Namespace>();
    {
        let q = queue.clone();
        informer.on_change(move |c: &Change<'_, Namespace>| {
            let ns = c.object();
            if ns.metadata.deletion_timestamp.is_some() && !matches!(c, Change::Deleted(_)) {
                q.add(ns.name_any());
            }
        });
    }
    let ctx = ctx.clone();
    let store = informer.store();
    Box::pin(async move {
        ctx.informers.synced().await;
        let client = ctx.client.clone();
        tug_runtime::queue::run(
            "namespace",
            queue,
            ctx.options.workers.min(10),
            move |name: String| {
                let (client, store) = (client.clone(), store.clone());
                async move { sync(&client, &store, &name).await }
            },
        )
        .await;
    })
}

/// What one pass over a namespace's content found.
#[derive(Default)]
struct Content {
    /// Remaining objects per resource (`plural.group`).
    remaining: BTreeMap<String, usize>,
    /// Remaining objects per finalizer they carry.
    finalizers: BTreeMap<String, usize>,
    /// Deletion failures.
    errors: Vec<String>,
}

async fn sync(
    client: &kube::Client,
    store: &Store<Namespace>,
    name: &str,
) -> Result<Option<Duration>, Error> {
    let err = |source| Error::Api {
        namespace: name.to_owned(),
        source,
    };
    let Some(cached) = store.get(&ObjectKey::cluster(name)) else {
        return Ok(None);
    };
    if cached.metadata.deletion_timestamp.is_none() {
        return Ok(None);
    }
    let api: Api<Namespace> = Api::all(client.clone());
    // Read it live: a stale copy could finalize a namespace whose content is still arriving.
    let mut ns = match api.get(name).await {
        Ok(ns) => ns,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    if ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating") {
        ns.status.get_or_insert_with(NamespaceStatus::default).phase = Some("Terminating".into());
        ns = api
            .replace_status(name, &PostParams::default(), &ns)
            .await
            .map_err(err)?;
    }
    let has_finalizer = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER_KUBERNETES));
    if !has_finalizer {
        return Ok(None);
    }

    let mut failures: Vec<(&str, &str, String)> = Vec::new();
    let content = match resources::discover(client).await {
        Ok(found) => {
            let namespaced: Vec<&Deletable> = found.all.iter().filter(|d| d.namespaced).collect();
            delete_content(client, name, &namespaced).await
        }
        Err(e) => {
            failures.push((
                "NamespaceDeletionDiscoveryFailure",
                "DiscoveryFailed",
                e.to_string(),
            ));
            Content::default()
        }
    };
    if !content.errors.is_empty() {
        let mut msgs = content.errors.clone();
        msgs.sort();
        failures.push((
            "NamespaceDeletionContentFailure",
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                msgs.len(),
                msgs.join(", ")
            ),
        ));
    }
    if !content.remaining.is_empty() {
        let list: Vec<String> = content
            .remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        failures.push((
            "NamespaceContentRemaining",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", list.join(", ")),
        ));
    }
    if !content.finalizers.is_empty() {
        let list: Vec<String> = content
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        failures.push((
            "NamespaceFinalizersRemaining",
            "SomeFinalizerRemain",
            format!("Some finalizers are remaining: {}", list.join(", ")),
        ));
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    if update_conditions(status, &failures) {
        ns = api
            .replace_status(name, &PostParams::default(), &ns)
            .await
            .map_err(err)?;
    }
    if !failures.is_empty() {
        // Content is still going (pods in their grace period, finalizers): look again, as
        // upstream does after its estimate, rather than on every change in the namespace.
        return Ok(Some(Duration::from_secs(1)));
    }

    // Everything is gone: take our finalizer off.
    if let Some(spec) = ns.spec.as_mut() {
        if let Some(f) = spec.finalizers.as_mut() {
            f.retain(|f| f != FINALIZER_KUBERNETES);
        }
    }
    match api
        .replace_subresource("finalize", name, &PostParams::default(), &ns)
        .await
    {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(err(e)),
    }
}

/// Deletes every object of `resources` in `namespace`, then counts what is left.
async fn delete_content(
    client: &kube::Client,
    namespace: &str,
    resources: &[&Deletable],
) -> Content {
    let mut content = Content::default();
    for d in resources {
        let meta: Api<PartialObjectMeta<DynamicObject>> =
            Api::namespaced_with(client.clone(), namespace, &d.resource);
        let dp = DeleteParams::background();
        let deleted = if d.delete_collection {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &d.resource);
            api.delete_collection(&dp, &ListParams::default())
                .await
                .map(|_| ())
        } else {
            delete_each(&meta, &dp).await
        };
        if let Err(e) = deleted {
            if !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 405) {
                content.errors.push(format!("{}: {e}", d.display()));
            }
            continue;
        }
        match meta.list(&ListParams::default()).await {
            Ok(list) if !list.items.is_empty() => {
                content.remaining.insert(d.display(), list.items.len());
                for item in &list.items {
                    for f in item.finalizers() {
                        *content.finalizers.entry(f.clone()).or_default() += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
            Err(e) => content.errors.push(format!("{}: {e}", d.display())),
        }
    }
    content
}

async fn delete_each(
    api: &Api<PartialObjectMeta<DynamicObject>>,
    dp: &DeleteParams,
) -> Result<(), kube::Error> {
    let list = api.list(&ListParams::default()).await?;
    for item in list.items {
        if item.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match api.delete(&item.name_any(), dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Brings the five conditions to what `failures` says (the others to their "ok" variant);
/// whether anything changed.
fn update_conditions(status: &mut NamespaceStatus, failures: &[(&str, &str, String)]) -> bool {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    for (type_, ok_reason, ok_message) in CONDITIONS {
        let (state, reason, message) = match failures.iter().find(|f| f.0 == type_) {
            Some((_, reason, message)) => ("True", *reason, message.clone()),
            None => ("False", ok_reason, ok_message.to_owned()),
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: type_.to_owned(),
                    status: state.to_owned(),
                    reason: Some(reason.to_owned()),
                    message: Some(message),
                    last_transition_time: Some(tug_runtime::now()),
                });
                changed = true;
            }
            Some(c) => {
                if c.status != state
                    || c.reason.as_deref() != Some(reason)
                    || c.message.as_deref() != Some(message.as_str())
                {
                    if c.status != state {
                        c.last_transition_time = Some(tug_runtime::now());
                    }
                    c.status = state.to_owned();
                    c.reason = Some(reason.to_owned());
                    c.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_go_to_their_ok_variant_and_report_failures() {
        let mut status = NamespaceStatus::default();
        let failures = [(
            "NamespaceContentRemaining",
            "SomeResourcesRemain",
            "Some resources are remaining: pods. has 2 resource instances".to_owned(),
        )];
        assert!(update_conditions(&mut status, &failures));
        let cs = status.conditions.clone().unwrap_or_default();
        assert_eq!(cs.len(), 5);
        let remaining = cs
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining")
            .unwrap_or_else(|| panic!("no condition"));
        assert_eq!(remaining.status, "True");
        assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
        assert!(!update_conditions(&mut status, &failures));
        assert!(update_conditions(&mut status, &[]));
        assert!(status
            .conditions
            .iter()
            .flatten()
            .all(|c| c.status == "False"));
    }
}
