//! What the hollow node tests share: an in-process apiserver, controllers on it, hollow
//! nodes that stop when dropped, and polling with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use tug_controllers::{Context, Options};

/// A client of a fresh in-process apiserver (system namespaces made).
pub async fn apiserver() -> kube::Client {
    tug_apiserver::local::client(
        tug_apiserver::local::in_memory()
            .await
            .unwrap_or_else(|e| panic!("in-process apiserver: {e}")),
        tug_apiserver::local::component_user("test"),
    )
}

/// A task that is aborted when dropped.
pub struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the given controllers (one shared informer factory) until dropped.
pub fn controllers(
    client: &kube::Client,
    options: Options,
    starts: &[fn(&Context) -> BoxFuture<'static, ()>],
) -> Running {
    let ctx = Context::new(client.clone(), options);
    let futs: Vec<_> = starts.iter().map(|s| s(&ctx)).collect();
    ctx.informers.start();
    Running(tokio::spawn(async move {
        futures::future::join_all(futs).await;
    }))
}

/// Runs hollow nodes until dropped.
pub fn hollow(client: &kube::Client, options: tug_hollow::Options) -> Running {
    Running(tokio::spawn(tug_hollow::run(client.clone(), options)))
}

/// Polls `check` every 50 ms until it answers `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
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

/// A pod from JSON.
pub fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("pod: {e}"))
}

/// Creates `pod` in `default` and binds it to `node` through pods/binding.
pub async fn create_bound(client: &kube::Client, pod: &Pod, node: &str) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), pod)
        .await
        .unwrap_or_else(|e| panic!("create pod: {e}"));
    let name = created.metadata.name.clone().unwrap_or_default();
    let binding = serde_json::json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": { "name": name, "namespace": "default" },
        "target": { "apiVersion": "v1", "kind": "Node", "name": node },
    });
    let _: serde_json::Value = api
        .create_subresource("binding", &name, &PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("bind {name}: {e}"));
    created
}

/// The named condition's status on a pod.
pub fn pod_condition(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}
