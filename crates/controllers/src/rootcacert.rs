//! The root CA publisher, as upstream's `root-ca-certificate-publisher`: every active
//! namespace has a ConfigMap `kube-root-ca.crt` holding the cluster CA (`ca.crt`), which the
//! service account token volume projects into pods so they can verify the API server. Made
//! when a namespace appears, put back when deleted or changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::Context;

/// The ConfigMap's name.
pub const NAME: &str = "kube-root-ca.crt";
/// Its key.
const KEY: &str = "ca.crt";
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
/// Upstream's annotation text.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Registers the controller's handlers and returns its workers; nothing to do without a CA
/// (`--root-ca-file` or the kubeconfig's).
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let Some(ca) = ctx.options.root_ca.clone() else {
        tracing::info!("no root CA: the kube-root-ca.crt publisher does not run");
        return Box::pin(async {});
    };
    let queue: Queue<String> = Queue::new();
    let namespaces = ctx.informers.get::<Namespace>();
    let maps = ctx.informers.get::<ConfigMap>();
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
        maps.on_change(move |c: &Change<'_, ConfigMap>| {
            if c.object().name_any() == NAME {
                q.add(c.object().namespace().unwrap_or_default());
            }
        });
    }
    let ctx = ctx.clone();
    let (ns_store, cm_store) = (namespaces.store(), maps.store());
    let ca: Arc<str> = ca.into();
    Box::pin(async move {
        ctx.informers.synced().await;
        let client = ctx.client.clone();
        tug_runtime::queue::run(
            "root-ca-cert-publisher",
            queue,
            ctx.options.workers,
            move |ns: String| {
                let (client, ns_store, cm_store, ca) = (
                    client.clone(),
                    ns_store.clone(),
                    cm_store.clone(),
                    ca.clone(),
                );
                async move {
                    sync(&client, &ns_store, &cm_store, &ca, &ns)
                        .await
                        .map(|()| None)
                }
            },
        )
        .await;
    })
}

fn wanted_data(ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(KEY.to_owned(), ca.to_owned())])
}

async fn sync(
    client: &kube::Client,
    namespaces: &Store<Namespace>,
    maps: &Store<ConfigMap>,
    ca: &str,
    ns: &str,
) -> Result<(), kube::Error> {
    let Some(namespace) = namespaces.get(&ObjectKey::cluster(ns)) else {
        return Ok(());
    };
    let terminating = namespace.metadata.deletion_timestamp.is_some()
        || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let data = wanted_data(ca);
    let result = match maps.get_in(ns, NAME) {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(NAME.to_owned()),
                    namespace: Some(ns.to_owned()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_KEY.to_owned(),
                        DESCRIPTION.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            api.create(&PostParams::default(), &cm).await.map(drop)
        }
        Some(cm) => {
            let annotated =
                cm.annotations().get(DESCRIPTION_KEY).map(String::as_str) == Some(DESCRIPTION);
            if cm.data.as_ref() == Some(&data) && annotated {
                return Ok(());
            }
            let mut fixed = (*cm).clone();
            fixed.data = Some(data);
            fixed.binary_data = None;
            fixed
                .annotations_mut()
                .insert(DESCRIPTION_KEY.to_owned(), DESCRIPTION.to_owned());
            api.replace(NAME, &PostParams::default(), &fixed)
                .await
                .map(drop)
        }
    };
    match result {
        // Our store lags (409), or the namespace is terminating (403): the next change
        // brings us back.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => Ok(()),
        other => other,
    }
}
