//! The serviceaccount controller, as upstream's `pkg/controller/serviceaccount`: every active
//! namespace has a ServiceAccount named `default`, created when the namespace appears and
//! again whenever it is deleted.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::Context;

/// The ServiceAccounts every namespace gets, as upstream's defaults.
pub const DEFAULT_SERVICE_ACCOUNTS: &[&str] = &["default"];

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let queue: Queue<String> = Queue::new();
    let namespaces = ctx.informers.get::<Namespace>();
    let accounts = ctx.informers.get::<ServiceAccount>();
    {
        let q = queue.clone();
        namespaces.on_change(move |c: &Change<'_, Namespace>| {
            if !matches!(c, Change::Deleted(_)) {
                q.add(c.object().name_any());
            }
        });
    }
    {
        let q = queue.clone();
        accounts.on_change(move |c: &Change<'_, ServiceAccount>| {
            if matches!(c, Change::Deleted(_)) {
                q.add(c.object().namespace().unwrap_or_default());
            }
        });
    }
    let ctx = ctx.clone();
    let (ns_store, sa_store) = (namespaces.store(), accounts.store());
    Box::pin(async move {
        ctx.informers.synced().await;
        let workers = ctx.options.workers;
        let client = ctx.client.clone();
        tug_runtime::queue::run("serviceaccount", queue, workers, move |ns: String| {
            let (client, ns_store, sa_store) = (client.clone(), ns_store.clone(), sa_store.clone());
            async move {
                sync(&client, &ns_store, &sa_store, &ns)
                    .await
                    .map(|()| None)
            }
        })
        .await;
    })
}

async fn sync(
    client: &kube::Client,
    namespaces: &Store<Namespace>,
    accounts: &Store<ServiceAccount>,
    ns: &str,
) -> Result<(), kube::Error> {
    let Some(namespace) = namespaces.get(&ObjectKey::cluster(ns)) else {
        return Ok(());
    };
    if !is_active(&namespace) {
        return Ok(());
    }
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    for name in DEFAULT_SERVICE_ACCOUNTS {
        if accounts.get_in(ns, name).is_some() {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some((*name).to_owned()),
                namespace: Some(ns.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::debug!(namespace = ns, name, "created service account"),
            // Already there (our store lags), or the namespace is terminating.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_active(ns: &Arc<Namespace>) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}
