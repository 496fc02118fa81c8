//! The garbage collector, namespace and serviceaccount controllers against an in-process
//! apiserver.

mod ctrl_common;

use ctrl_common::{create, start, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn owner_ref(owner: &ConfigMap, block: bool) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(),
        "uid": owner.uid().unwrap_or_default(), "blockOwnerDeletion": block
    })
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> Option<()> {
    match api.get_opt(name).await {
        Ok(None) => Some(()),
        _ => None,
    }
}

#[tokio::test]
async fn background_deletion_removes_dependents_of_a_deleted_owner() {
    let c = start(&["garbagecollector"]).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owner = create(&api, json!({"metadata": {"name": "owner"}})).await;
    let other = create(&api, json!({"metadata": {"name": "other"}})).await;
    create(
        &api,
        json!({"metadata": {"name": "dep", "ownerReferences": [owner_ref(&owner, false)]}}),
    )
    .await;
    create(&api, json!({"metadata": {"name": "shared", "ownerReferences": [owner_ref(&owner, false), owner_ref(&other, false)]}})).await;
    api.delete("owner", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    wait_for("dependent deleted", || gone(&api, "dep")).await;
    // The shared dependent keeps living through its other owner, without the dead reference.
    let shared = wait_for("dead reference removed", || async {
        let s = api.get("shared").await.ok()?;
        (s.owner_references().len() == 1).then_some(s)
    })
    .await;
    assert_eq!(shared.owner_references()[0].name, "other");
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents_and_the_owner_goes_last() {
    let c = start(&["garbagecollector"]).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owner = create(
        &api,
        json!({"metadata": {"name": "owner", "finalizers": ["foregroundDeletion"]}}),
    )
    .await;
    create(&api, json!({"metadata": {"name": "dep", "finalizers": ["test/hold"], "ownerReferences": [owner_ref(&owner, true)]}})).await;
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    // The dependent is marked for deletion, held by its own finalizer; the owner waits.
    wait_for("dependent marked", || async {
        api.get("dep")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    let o = api
        .get("owner")
        .await
        .unwrap_or_else(|e| panic!("owner: {e}"));
    assert!(o.finalizers().iter().any(|f| f == "foregroundDeletion"));
    api.patch(
        "dep",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap_or_else(|e| panic!("release: {e}"));
    wait_for("owner deleted", || gone(&api, "owner")).await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let c = start(&["garbagecollector"]).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owner = create(
        &api,
        json!({"metadata": {"name": "owner", "finalizers": ["orphan"]}}),
    )
    .await;
    create(
        &api,
        json!({"metadata": {"name": "dep", "ownerReferences": [owner_ref(&owner, true)]}}),
    )
    .await;
    api.delete("owner", &DeleteParams::orphan())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    wait_for("owner deleted", || gone(&api, "owner")).await;
    let dep = api.get("dep").await.unwrap_or_else(|e| panic!("dep: {e}"));
    assert!(dep.owner_references().is_empty());
}

#[tokio::test]
async fn a_deleted_namespace_loses_its_content_then_goes() {
    let c = start(&["namespace"]).await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    create(&nss, json!({"metadata": {"name": "doomed"}})).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "doomed");
    create(&api, json!({"metadata": {"name": "a"}})).await;
    create(&api, json!({"metadata": {"name": "b"}})).await;
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    wait_for("namespace gone", || async {
        matches!(nss.get_opt("doomed").await, Ok(None)).then_some(())
    })
    .await;
    let left = Api::<ConfigMap>::namespaced(c.client.clone(), "doomed")
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_again_after_deletion() {
    let c = start(&["serviceaccount"]).await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    create(&nss, json!({"metadata": {"name": "team"}})).await;
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "team");
    wait_for("default SA", || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    wait_for("default SA again", || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;
}
