//! The REST API through kube-rs, the Rust client operators use: list, a stale update's 409
//! Conflict, and a watcher that keeps going across an API server restart (re-listing when
//! its resourceVersion is no longer served).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{kube_client as client, Server};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::Api;

fn cm(name: &str, label: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), label.to_owned())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..ConfigMap::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_conflict() {
    let server = Server::start(&[]);
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), "x"))
            .await
            .unwrap();
    }
    let list = api.list(&ListParams::default()).await.unwrap();
    // Every namespace also has the cluster CA's ConfigMap, as upstream's.
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["c0", "c1", "c2"]);
    assert!(list.metadata.resource_version.is_some());
    let paged = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(paged.items.len(), 2);
    assert!(paged.metadata.continue_.is_some());

    let mut stale = api.get("c0").await.unwrap();
    let mut fresh = stale.clone();
    fresh.data = Some(BTreeMap::from([("k".to_owned(), "fresh".to_owned())]));
    api.replace("c0", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.data = Some(BTreeMap::from([("k".to_owned(), "stale".to_owned())]));
    match api.replace("c0", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
        }
        other => panic!("expected a 409 Conflict, got {other:?}"),
    }
    assert_eq!(
        api.get_opt("missing")
            .await
            .unwrap()
            .map(|c| c.metadata.name),
        None
    );
}

/// Waits (with a deadline) for the watcher to report an object named `name`.
async fn seen(
    events: &mut (impl futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>>
              + Unpin),
    name: &str,
) {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            let objects = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => vec![o],
                _ => continue,
            };
            if objects
                .iter()
                .any(|o| o.metadata.name.as_deref() == Some(name))
            {
                return;
            }
        }
        panic!("the watch ended");
    })
    .await;
    assert!(found.is_ok(), "the watcher never saw {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_resumes_across_a_restart() {
    let mut server = Server::start(&[]);
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    api.create(&PostParams::default(), &cm("before", "watched"))
        .await
        .unwrap();
    let config = watcher::Config::default().labels("app=watched");
    let mut events = watcher(api.clone(), config).boxed();
    seen(&mut events, "before").await;
    // Writes the watcher does not see move the revision past its last one, so after the
    // restart its resourceVersion is older than the new cache's window: 410, then a relist.
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("other{i}"), "ignored"))
            .await
            .unwrap();
    }
    tokio::task::block_in_place(|| server.restart());
    api.create(&PostParams::default(), &cm("after", "watched"))
        .await
        .unwrap();
    seen(&mut events, "after").await;
}
