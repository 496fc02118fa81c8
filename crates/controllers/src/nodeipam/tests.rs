//! Tests of the node IPAM controller, and the in-process apiserver the node controllers'
//! tests share.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use super::*;
use crate::{Context, Options};

/// A client of a fresh in-process apiserver (system namespaces made).
pub(crate) async fn apiserver() -> kube::Client {
    tug_apiserver::local::client(
        tug_apiserver::local::in_memory()
            .await
            .unwrap_or_else(|e| panic!("in-process apiserver: {e}")),
        tug_apiserver::local::component_user("test"),
    )
}

/// Starts the controller `start` with `options` and its informers; the task ends with the
/// returned handle's abort.
pub(crate) fn run_controller(
    client: kube::Client,
    options: Options,
    start: fn(&Context) -> BoxFuture<'static, ()>,
) -> tokio::task::JoinHandle<()> {
    let ctx = Context::new(client, options);
    let fut = start(&ctx);
    ctx.informers.start();
    tokio::spawn(fut)
}

/// Polls `check` every 50 ms until it answers `Some`, for at most `secs` seconds.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn node(name: &str, pod_cidr: Option<&str>) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": pod_cidr.map_or(serde_json::json!({}), |c| serde_json::json!({ "podCIDR": c, "podCIDRs": [c] })),
    }))
    .unwrap_or_else(|e| panic!("node: {e}"))
}

#[test]
fn blocks_are_handed_out_in_order_and_come_back() {
    let mut set = CidrSet::new("10.42.0.0/22", 24).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.occupy("10.42.1.0/24"));
    assert!(!set.occupy("10.43.0.0/24"));
    assert!(!set.occupy("10.42.2.0/25"));
    assert_eq!(set.allocate().as_deref(), Some("10.42.0.0/24"));
    assert_eq!(set.allocate().as_deref(), Some("10.42.2.0/24"));
    assert_eq!(set.allocate().as_deref(), Some("10.42.3.0/24"));
    assert_eq!(set.allocate(), None);
    set.release("10.42.2.0/24");
    assert_eq!(set.allocate().as_deref(), Some("10.42.2.0/24"));
    assert!(CidrSet::new("10.42.0.0/16", 8).is_err());
    assert!(CidrSet::new("bogus", 24).is_err());
}

#[tokio::test]
async fn nodes_get_distinct_cidrs_and_exhaustion_is_reported() {
    let client = apiserver().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    // A node that already has a block: the controller must not hand it out again.
    nodes
        .create(&pp, &node("old", Some("10.9.0.0/24")))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let options = Options {
        cluster_cidr: "10.9.0.0/23".to_owned(),
        node_cidr_mask_size: 24,
        ..Options::default()
    };
    let task = run_controller(client.clone(), options, start);
    nodes
        .create(&pp, &node("a", None))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let cidr = |name: &'static str| {
        let nodes = nodes.clone();
        move || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get(name).await.ok()?;
                let spec = n.spec?;
                let list = spec.pod_cidrs?;
                (list.len() == 1 && spec.pod_cidr.as_ref() == list.first())
                    .then_some(list[0].clone())
            }
        }
    };
    assert_eq!(
        eventually(10, "a's podCIDR", cidr("a")).await,
        "10.9.1.0/24"
    );
    // Exhausted: b waits, with an event.
    nodes
        .create(&pp, &node("b", None))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    eventually(10, "CIDRNotAvailable event", || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("CIDRNotAvailable")
                        && e.involved_object.name.as_deref() == Some("b")
                })
                .then_some(())
        }
    })
    .await;
    // Deleting a node frees its block for b.
    nodes
        .delete("a", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(
        eventually(20, "b's podCIDR", cidr("b")).await,
        "10.9.1.0/24"
    );
    task.abort();
}
