//! An operator written with kube-rs against Tugboat: its CRD comes from
//! `derive(CustomResource)`, is installed by server-side apply and waited on until
//! Established; a `kube::runtime::Controller` watches the custom objects and writes their
//! status through server-side apply on the status subresource, as real operators do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{kube_client as client, Server};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The spec of a Counter: the value its status should reach.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "tug.example.com",
    version = "v1",
    kind = "Counter",
    namespaced,
    status = "CounterStatus",
    shortname = "cnt"
)]
pub struct CounterSpec {
    target: i32,
}

/// What the controller reports.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct CounterStatus {
    observed: i32,
}

const MANAGER: &str = "counter-controller";

async fn reconcile(counter: Arc<Counter>, api: Arc<Api<Counter>>) -> Result<Action, kube::Error> {
    let status = serde_json::json!({
        "apiVersion": "tug.example.com/v1",
        "kind": "Counter",
        "status": { "observed": counter.spec.target },
    });
    api.patch_status(
        &counter.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&status),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Counter>, _: &kube::Error, _: Arc<Api<Counter>>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_writes_status_by_server_side_apply() {
    let server = Server::start(&[]);
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Counter::crd();
    let name = crd.name_any();
    crds.patch(&name, &PatchParams::apply("installer"), &Patch::Apply(&crd))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .expect("established within 5 s")
    .unwrap();

    let api: Api<Counter> = Api::namespaced(client.clone(), "default");
    let shared = Arc::new(api.clone());
    let controller = Controller::new(api.clone(), Default::default())
        .run(reconcile, error_policy, shared)
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    api.create(
        &PostParams::default(),
        &Counter::new("c1", CounterSpec { target: 3 }),
    )
    .await
    .unwrap();
    let observed = |want: i32| {
        let api = api.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(10),
                await_condition(api, "c1", move |c: Option<&Counter>| {
                    c.and_then(|c| c.status.as_ref())
                        .is_some_and(|s| s.observed == want)
                }),
            )
            .await
            .expect("the controller writes the status")
            .unwrap();
        }
    };
    observed(3).await;
    api.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"target": 7}})),
    )
    .await
    .unwrap();
    observed(7).await;

    let c1 = api.get("c1").await.unwrap();
    let entry = c1
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some(MANAGER))
        .expect("the controller's managedFields entry");
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    controller.abort();
}
