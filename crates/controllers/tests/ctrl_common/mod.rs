//! Helpers for the controller tests: an in-process apiserver over an in-memory store, the
//! named controllers running against it, and a poll-with-deadline. There is no scheduler or
//! kubelet: tests play them (bind pods, write pod status) where they need to.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tug_controllers::{Context, Options};

/// How long a test waits for a condition.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running apiserver and controllers; the controllers stop on drop.
pub struct Cluster {
    /// A client of the apiserver.
    pub client: kube::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an apiserver and the controllers named (upstream's names, as `--controllers`).
pub async fn start(controllers: &[&str]) -> Cluster {
    start_with(controllers, |_| {}).await
}

/// As [`start`], with the context adjusted by `adjust` before the controllers start.
pub async fn start_with(controllers: &[&str], adjust: impl FnOnce(&mut Context)) -> Cluster {
    let client = apiserver().await;
    let options = Options {
        controllers: controllers.iter().map(|c| (*c).to_owned()).collect(),
        workers: 2,
        ..Options::default()
    };
    let mut ctx = Context::new(client.clone(), options);
    adjust(&mut ctx);
    let task = tokio::spawn(tug_controllers::run(ctx));
    Cluster { client, task }
}

/// Starts an apiserver and the controllers `starts` returns (to pass them settings).
pub async fn start_fns(starts: impl FnOnce(&Context) -> Vec<BoxFuture<'static, ()>>) -> Cluster {
    let client = apiserver().await;
    let options = Options {
        workers: 2,
        ..Options::default()
    };
    let ctx = Context::new(client.clone(), options);
    let running = starts(&ctx);
    ctx.informers.start();
    let task = tokio::spawn(async move {
        futures::future::join_all(running).await;
    });
    Cluster { client, task }
}

/// An in-process apiserver over an in-memory store, bootstrapped; a client of it.
pub async fn apiserver() -> kube::Client {
    tug_apiserver::local::client(
        tug_apiserver::local::in_memory()
            .await
            .unwrap_or_else(|e| panic!("in-process apiserver: {e}")),
        tug_apiserver::local::component_user("test"),
    )
}

/// Polls `check` until it answers `Some`, failing the test after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Parses a JSON object into a typed one.
pub fn from_json<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("parse: {e}"))
}

/// Creates `obj` through `api`.
pub async fn create<K>(api: &Api<K>, obj: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), &from_json(obj))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"))
}

/// Creates a Node named `name`.
pub async fn node(client: &kube::Client, name: &str) -> Node {
    create(
        &Api::<Node>::all(client.clone()),
        json!({"metadata": {"name": name}}),
    )
    .await
}

/// Plays the scheduler: binds a pod to `node`.
pub async fn bind(client: &kube::Client, ns: &str, pod: &str, node: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}
    });
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        pod,
        &PostParams::default(),
        &binding,
    )
    .await
    .unwrap_or_else(|e| panic!("bind {pod}: {e}"));
}

/// Plays the kubelet: merges `status` into a pod's status.
pub async fn set_pod_status(client: &kube::Client, ns: &str, pod: &str, status: serde_json::Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        pod,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("status of {pod}: {e}"));
}

/// A Running pod's status, Ready or not, on `ip`.
pub fn running(ready: bool, ip: &str) -> serde_json::Value {
    let r = if ready { "True" } else { "False" };
    json!({
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": r, "lastTransitionTime": "2024-01-01T00:00:00Z"}]
    })
}
