//! Hollow nodes against an in-process apiserver with the nodeipam controller: they register
//! Ready with a podCIDR, renew their leases, run bound pods with IPs from that CIDR, finish
//! pods that should finish, and remove pods being deleted.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::DeleteParams;
use kube::Api;

fn options(prefix: &str, count: usize) -> tug_hollow::Options {
    tug_hollow::Options {
        count,
        name_prefix: prefix.to_owned(),
        lease_renew_interval: Duration::from_millis(500),
        ..tug_hollow::Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_register_and_run_pods() {
    let client = apiserver().await;
    let _ipam = controllers(
        &client,
        tug_controllers::Options::default(),
        &[tug_controllers::nodeipam::start],
    );
    let _nodes = hollow(&client, options("hollow-", 3));
    let nodes: Api<Node> = Api::all(client.clone());

    // Registered, Ready, with a podCIDR and the node's addresses.
    let node = eventually(20, "hollow-2 Ready with a podCIDR", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("hollow-2").await.ok()?;
            n.spec.as_ref()?.pod_cidr.as_ref()?;
            let ready = n.status.as_ref()?.conditions.as_ref()?.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("KubeletReady")
            });
            ready.then_some(n)
        }
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some("hollow-2")
    );
    assert_eq!(
        labels
            .get("node.kubernetes.io/instance-type")
            .map(String::as_str),
        Some("hollow")
    );
    let status = node.status.clone().unwrap_or_default();
    let internal = status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .unwrap_or_default();
    assert_eq!(internal, "10.200.0.3");
    assert_eq!(
        status.node_info.map(|i| i.kubelet_version).as_deref(),
        Some("v1.37.0-tug-hollow")
    );
    let cidr = node.spec.and_then(|s| s.pod_cidr).unwrap_or_default();

    // The lease is held by the node and renewed.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = eventually(10, "hollow-2's lease", || {
        let leases = leases.clone();
        async move { leases.get("hollow-2").await.ok()?.spec?.renew_time }
    })
    .await;
    let lease = leases
        .get("hollow-2")
        .await
        .unwrap_or_else(|e| panic!("lease: {e}"));
    let spec = lease.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("hollow-2"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert_eq!(
        lease
            .metadata
            .owner_references
            .unwrap_or_default()
            .first()
            .map(|o| o.kind.clone()),
        Some("Node".to_owned())
    );
    eventually(10, "a renewed lease", || {
        let (leases, first) = (leases.clone(), first.clone());
        async move {
            let t = leases.get("hollow-2").await.ok()?.spec?.renew_time?;
            (t.0 > first.0).then_some(())
        }
    })
    .await;

    // A bound pod runs with an IP from the node's podCIDR.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_bound(
        &client,
        &pod(serde_json::json!({
            "metadata": { "name": "web" },
            "spec": { "containers": [{ "name": "nginx", "image": "nginx:1.27" }] },
        })),
        "hollow-2",
    )
    .await;
    let running = eventually(20, "web Running and Ready", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("web").await.ok()?;
            let phase = p.status.as_ref()?.phase.clone()?;
            (phase == "Running" && pod_condition(&p, "Ready").as_deref() == Some("True"))
                .then_some(p)
        }
    })
    .await;
    let status = running.status.clone().unwrap_or_default();
    assert_eq!(status.host_ip.as_deref(), Some("10.200.0.3"));
    let ip = status.pod_ip.clone().unwrap_or_default();
    let cidr = tug_hollow::ipam::Cidr::parse(&cidr).unwrap_or_else(|| panic!("cidr {cidr}"));
    assert!(
        cidr.contains(ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"))),
        "{ip} in {cidr}"
    );
    let cs = status.container_statuses.unwrap_or_default();
    assert!(
        cs[0].ready
            && cs[0]
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .is_some()
    );

    // A pod that exits 3 with restartPolicy Never fails.
    create_bound(
        &client,
        &pod(serde_json::json!({
            "metadata": { "name": "job", "annotations": {
                "hollow.tugboat.dev/exit-code": "3", "hollow.tugboat.dev/run-seconds": "0.2" } },
            "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "busybox" }] },
        })),
        "hollow-1",
    )
    .await;
    let failed = eventually(20, "job Failed", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("job").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
        }
    })
    .await;
    let term = failed
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .first()
        .and_then(|c| c.state.clone()?.terminated)
        .unwrap_or_else(|| panic!("job's container not terminated"));
    assert_eq!((term.exit_code, term.reason.as_deref()), (3, Some("Error")));

    // A deleted pod goes (the kubelet confirms with grace 0).
    pods.delete("web", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    eventually(20, "web gone", || {
        let pods = pods.clone();
        async move { pods.get_opt("web").await.ok()?.is_none().then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_hollow_nodes_stop_renewing() {
    let client = apiserver().await;
    let run = hollow(&client, options("gone-", 1));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    eventually(20, "gone-0's lease", || {
        let leases = leases.clone();
        async move { leases.get("gone-0").await.ok() }
    })
    .await;
    drop(run);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = leases
        .get("gone-0")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .spec
        .and_then(|s| s.renew_time);
    // Three renew intervals pass without a renewal.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = leases
        .get("gone-0")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .spec
        .and_then(|s| s.renew_time);
    assert_eq!(before, after);
}
