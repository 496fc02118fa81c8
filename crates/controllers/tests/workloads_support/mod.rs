//! The harness of the workload controller tests: an in-process apiserver, the controllers
//! under test, and the test playing scheduler and kubelet (binding pods to Node objects it
//! created, marking them Running and Ready, finishing graceful deletions).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tug_controllers::{Context, Options};

/// How long a wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// An apiserver with the named controllers running against it.
pub struct Cluster {
    /// A client to the apiserver.
    pub client: kube::Client,
    controllers: tokio::task::JoinHandle<()>,
    kubelet: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.controllers.abort();
        if let Some(k) = &self.kubelet {
            k.abort();
        }
    }
}

/// Parses a JSON manifest into a typed object.
pub fn object<K: DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("manifest: {e}"))
}

impl Cluster {
    /// Starts an apiserver and the controllers named (upstream's names).
    pub async fn start(controllers: &[&str]) -> Self {
        let client = tug_apiserver::local::client(
            tug_apiserver::local::in_memory()
                .await
                .unwrap_or_else(|e| panic!("in-process apiserver: {e}")),
            tug_apiserver::local::component_user("test"),
        );
        let options = Options {
            controllers: controllers.iter().map(|c| (*c).to_owned()).collect(),
            workers: 2,
            ..Options::default()
        };
        let ctx = Context::new(client.clone(), options);
        let controllers = tokio::spawn(tug_controllers::run(ctx));
        Self {
            client,
            controllers,
            kubelet: None,
        }
    }

    /// An Api for a namespaced kind in `default`.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a Node with labels and taints (JSON taints as in the API).
    pub async fn add_node(&self, name: &str, labels: serde_json::Value, taints: serde_json::Value) {
        let node: Node = object(json!({
            "metadata": { "name": name, "labels": labels },
            "spec": { "taints": taints },
            "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
        }));
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap_or_else(|e| panic!("create node {name}: {e}"));
    }

    /// Starts a background "scheduler and kubelet": every unbound pod is bound (to the node
    /// its required `metadata.name` node affinity names, else to `node`) and made Running and
    /// Ready; every pod being deleted is removed.
    pub fn run_kubelet(&mut self, node: &str) {
        let (client, node) = (self.client.clone(), node.to_owned());
        self.kubelet = Some(tokio::spawn(async move {
            loop {
                let api: Api<Pod> = Api::namespaced(client.clone(), "default");
                if let Ok(list) = api.list(&ListParams::default()).await {
                    for pod in list {
                        if pod.metadata.deletion_timestamp.is_some() {
                            let _ = api
                                .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
                                .await;
                        } else if !is_running(&pod) {
                            let _ = bind_and_run(&client, &pod, &node).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    /// Binds the pod `name` (to `node`, unless bound already) and makes it Running and Ready.
    pub async fn run_pod(&self, name: &str, node: &str) {
        let pod = self
            .api::<Pod>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get pod {name}: {e}"));
        bind_and_run(&self.client, &pod, node)
            .await
            .unwrap_or_else(|e| panic!("run pod {name}: {e}"));
    }

    /// The pods in `default` with `label=value`, sorted by name.
    pub async fn pods(&self, selector: &str) -> Vec<Pod> {
        let mut pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap_or_else(|e| panic!("list pods: {e}"))
            .items;
        pods.sort_by_key(ResourceExt::name_any);
        pods
    }
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The node a pod's required node affinity pins it to with `metadata.name In [node]`.
pub fn affinity_node(pod: &Pod) -> Option<String> {
    let terms = pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    terms.node_selector_terms.iter().find_map(|t| {
        t.match_fields
            .iter()
            .flatten()
            .find(|f| f.key == "metadata.name" && f.operator == "In")
            .and_then(|f| f.values.as_ref()?.first().cloned())
    })
}

async fn bind_and_run(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let name = pod.name_any();
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none()
    {
        let target = affinity_node(pod).unwrap_or_else(|| node.to_owned());
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": { "name": name, "namespace": "default" },
            "target": { "apiVersion": "v1", "kind": "Node", "name": target },
        });
        api.create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await?;
    }
    let now = tug_runtime::now();
    let status = json!({ "status": {
        "phase": "Running",
        "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": now }],
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

/// Polls `check` every 50 ms until it answers `Some`, failing the test after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
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

/// The labels of an object.
pub fn labels_of<K: kube::Resource>(obj: &K) -> BTreeMap<String, String> {
    obj.meta().labels.clone().unwrap_or_default()
}
