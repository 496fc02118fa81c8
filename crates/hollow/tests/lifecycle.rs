//! Hollow nodes with the nodeipam and node lifecycle controllers: a node whose hollow
//! kubelet stops goes Unknown and tainted within the grace period, its pods are evicted as
//! their tolerations say, and the taints go when the kubelet comes back.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn options(prefix: &str, ips: &str) -> tug_hollow::Options {
    tug_hollow::Options {
        count: 1,
        name_prefix: prefix.to_owned(),
        node_ip_cidr: ips.to_owned(),
        lease_renew_interval: Duration::from_millis(500),
        status_update_interval: Duration::from_millis(500),
        ..tug_hollow::Options::default()
    }
}

fn ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

async fn wait_running(pods: &Api<Pod>, name: &'static str) {
    eventually(20, name, || {
        let pods = pods.clone();
        async move {
            let p = pods.get(name).await.ok()?;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_hollow_node_goes_unknown_and_its_pods_are_evicted() {
    let client = apiserver().await;
    let grace = Duration::from_secs(3);
    let _controllers = controllers(
        &client,
        tug_controllers::Options {
            node_monitor_grace_period: grace,
            ..tug_controllers::Options::default()
        },
        &[
            tug_controllers::nodeipam::start,
            tug_controllers::nodelifecycle::start,
        ],
    );
    let _healthy = hollow(&client, options("stay-", "10.200.0.0/24"));
    let stopping = hollow(&client, options("stop-", "10.200.1.0/24"));
    let nodes: Api<Node> = Api::all(client.clone());
    for name in ["stay-0", "stop-0"] {
        eventually(20, "nodes Ready with a podCIDR", || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get(name).await.ok()?;
                n.spec.as_ref()?.pod_cidr.as_ref()?;
                (ready(&n).as_deref() == Some("True")).then_some(())
            }
        })
        .await;
    }
    // Tolerations with a value the taint lacks match the keys (so DefaultTolerationSeconds
    // admission adds nothing) but tolerate nothing.
    let nothing = serde_json::json!([
        { "key": UNREACHABLE, "operator": "Equal", "value": "never", "effect": "NoExecute" },
        { "key": "node.kubernetes.io/not-ready", "operator": "Equal", "value": "never", "effect": "NoExecute" },
    ]);
    let two_seconds = serde_json::json!([
        { "key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2 },
    ]);
    let forever =
        serde_json::json!([{ "key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute" }]);
    for (name, tolerations) in [
        ("plain", nothing),
        ("brief", two_seconds),
        ("forever", forever),
    ] {
        create_bound(
            &client,
            &pod(serde_json::json!({
                "metadata": { "name": name },
                "spec": { "containers": [{ "name": "c", "image": "nginx" }], "tolerations": tolerations },
            })),
            "stop-0",
        )
        .await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["plain", "brief", "forever"] {
        wait_running(&pods, name).await;
    }

    // The kubelet stops: within the grace period (and a little) the node is Unknown and
    // tainted.
    drop(stopping);
    let stopped = tokio::time::Instant::now();
    let taint = eventually(20, "stop-0 Unknown with the unreachable taint", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("stop-0").await.ok()?;
            let t = n
                .spec
                .as_ref()?
                .taints
                .as_ref()?
                .iter()
                .find(|t| t.key == UNREACHABLE && t.effect == "NoExecute")?
                .clone();
            (ready(&n).as_deref() == Some("Unknown")).then_some(t)
        }
    })
    .await;
    let took = stopped.elapsed();
    assert!(
        took >= grace - Duration::from_millis(600),
        "Unknown after {took:?}"
    );
    assert!(
        took <= grace + Duration::from_secs(3),
        "Unknown only after {took:?}"
    );
    let healthy = nodes.get("stay-0").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready(&healthy).as_deref(), Some("True"));

    // The pod that tolerates nothing is marked for deletion at once, the one tolerating for
    // 2 s about 2 s after the taint, the one tolerating forever not at all.
    let marked = |name: &'static str| {
        let pods = pods.clone();
        move || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                p.metadata.deletion_timestamp.is_some().then_some(p)
            }
        }
    };
    eventually(10, "plain marked for deletion", marked("plain")).await;
    let brief = eventually(10, "brief marked for deletion", marked("brief")).await;
    let added = taint
        .time_added
        .map(|t| t.0.as_second())
        .unwrap_or_default();
    let deleted_at = brief
        .metadata
        .deletion_timestamp
        .map(|t| t.0.as_second())
        .unwrap_or_default()
        - brief
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or_default();
    assert!(
        (2..=3).contains(&(deleted_at - added)),
        "brief marked {}s after the taint",
        deleted_at - added
    );
    let plain = pods.get("plain").await.unwrap_or_else(|e| panic!("{e}"));
    let disrupted = plain
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| {
            c.type_ == "DisruptionTarget" && c.reason.as_deref() == Some("DeletionByTaintManager")
        });
    assert!(disrupted, "plain has the DisruptionTarget condition");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually(10, "the TaintManagerEviction event", || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("TaintManagerEviction")
                        && e.message.as_deref() == Some("Marking for deletion Pod default/plain")
                })
                .then_some(())
        }
    })
    .await;
    let forever = pods.get("forever").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(forever.metadata.deletion_timestamp.is_none());
    assert_eq!(pod_condition(&forever, "Ready").as_deref(), Some("False"));

    // The kubelet comes back: the node is Ready again and the taints go; the pods marked for
    // deletion are finished by it.
    let _back = hollow(&client, options("stop-", "10.200.1.0/24"));
    eventually(20, "stop-0 Ready and untainted", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("stop-0").await.ok()?;
            let tainted = n
                .spec
                .as_ref()?
                .taints
                .iter()
                .flatten()
                .any(|t| t.key == UNREACHABLE);
            (ready(&n).as_deref() == Some("True") && !tainted).then_some(())
        }
    })
    .await;
    eventually(20, "plain gone", || {
        let pods = pods.clone();
        async move { pods.get_opt("plain").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let forever = eventually(20, "forever Ready again", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("forever").await.ok()?;
            (pod_condition(&p, "Ready").as_deref() == Some("True")).then_some(p)
        }
    })
    .await;
    assert!(forever.metadata.deletion_timestamp.is_none());
}
