//! The endpoints and endpointslice controllers against an in-process apiserver; the test
//! plays scheduler and kubelet.

mod ctrl_common;

use ctrl_common::{bind, create, node, running, set_pod_status, start, wait_for};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::Api;
use serde_json::json;

fn pod(name: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx",
            "ports": [{"name": "http", "containerPort": 8080}]}]}
    })
}

async fn slices(api: &Api<EndpointSlice>) -> Vec<EndpointSlice> {
    api.list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn endpoints_and_slices_follow_pod_readiness() {
    let c = start(&["endpoint", "endpointslice"]).await;
    node(&c.client, "n1").await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    create(&svcs, json!({
        "metadata": {"name": "web", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}
    })).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for (name, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
        create(&pods, pod(name)).await;
        bind(&c.client, "default", name, "n1").await;
        set_pod_status(&c.client, "default", name, running(name == "a", ip)).await;
    }
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let ep = wait_for("endpoints with a ready and a not-ready address", || async {
        let ep = eps.get_opt("web").await.ok().flatten()?;
        let s = ep.subsets.as_ref()?.first()?.clone();
        (s.addresses.as_ref()?.len() == 1 && s.not_ready_addresses.as_ref()?.len() == 1)
            .then_some(ep)
    })
    .await;
    let subset = &ep.subsets.unwrap_or_default()[0];
    let ready = &subset.addresses.clone().unwrap_or_default()[0];
    assert_eq!(ready.ip, "10.0.0.1");
    assert_eq!(ready.node_name.as_deref(), Some("n1"));
    assert_eq!(
        ready.target_ref.as_ref().and_then(|r| r.name.as_deref()),
        Some("a")
    );
    let ports = subset.ports.clone().unwrap_or_default();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("web"), 8080)
    );
    assert_eq!(
        ep.metadata
            .labels
            .unwrap_or_default()
            .get("tier")
            .map(String::as_str),
        Some("front")
    );

    let sapi: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let slice = wait_for("a slice with both pods", || async {
        let s = slices(&sapi).await.into_iter().next()?;
        (s.endpoints.as_ref()?.len() == 2).then_some(s)
    })
    .await;
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert!(slice
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| n.starts_with("web-")));
    assert_eq!(slice.address_type, "IPv4");
    let ready_of = |s: &EndpointSlice, pod: &str| {
        s.endpoints
            .iter()
            .flatten()
            .find(|e| e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
            .and_then(|e| e.conditions.as_ref()?.ready)
    };
    assert_eq!(ready_of(&slice, "a"), Some(true));
    assert_eq!(ready_of(&slice, "b"), Some(false));

    // b becomes ready: both views follow.
    set_pod_status(&c.client, "default", "b", running(true, "10.0.0.2")).await;
    wait_for("both addresses ready", || async {
        let ep = eps.get("web").await.ok()?;
        let s = ep.subsets.as_ref()?.first()?;
        (s.addresses.as_ref()?.len() == 2 && s.not_ready_addresses.is_none()).then_some(())
    })
    .await;
    wait_for("both endpoints ready in the slice", || async {
        let s = slices(&sapi).await.into_iter().next()?;
        (ready_of(&s, "b") == Some(true)).then_some(())
    })
    .await;
    // The kubernetes service (no selector) is left alone: no slice of ours.
    let ks =
        sapi.list(&ListParams::default().labels(
            "kubernetes.io/service-name=kubernetes,endpointslice.kubernetes.io/managed-by",
        ))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    assert_eq!(ks, 0);
}

#[tokio::test]
async fn slices_hold_at_most_100_endpoints_and_publish_not_ready_ones_on_request() {
    let c = start(&["endpoint", "endpointslice"]).await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    create(
        &svcs,
        json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": true,
                "ports": [{"port": 80, "targetPort": 8080}]}
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for i in 0..101 {
        let name = format!("p{i}");
        create(&pods, pod(&name)).await;
        set_pod_status(
            &c.client,
            "default",
            &name,
            running(false, &format!("10.2.{}.{}", i / 200, i % 200)),
        )
        .await;
    }
    let sapi: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let all = wait_for("101 endpoints over two slices", || async {
        let s = slices(&sapi).await;
        let n: usize = s
            .iter()
            .map(|s| s.endpoints.as_ref().map_or(0, Vec::len))
            .sum();
        (n == 101).then_some(s)
    })
    .await;
    assert_eq!(all.len(), 2);
    assert!(all
        .iter()
        .all(|s| s.endpoints.as_ref().map_or(0, Vec::len) <= 100));
    // Not ready, but published: ready in the slices, under addresses in Endpoints.
    assert!(all
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true)));
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    wait_for("101 ready addresses", || async {
        let ep = eps.get_opt("web").await.ok().flatten()?;
        let s = ep.subsets.as_ref()?.first()?;
        (s.addresses.as_ref()?.len() == 101 && s.not_ready_addresses.is_none()).then_some(())
    })
    .await;
}
