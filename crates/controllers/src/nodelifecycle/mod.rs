//! The node lifecycle controller, as upstream's with taint-based eviction.
//!
//! Node health ([`health`]): the controller watches Nodes and the Leases in
//! `kube-node-lease`; each renewal it sees (a new `renewTime`, or a new heartbeat on the
//! node's Ready condition) is stamped with this controller's own clock, so clocks need not
//! agree. A node not heard from for `--node-monitor-grace-period` gets every condition set
//! Unknown ("Kubelet stopped posting node status."), and its pods' Ready condition False.
//! The node's conditions then drive its taints: `node.kubernetes.io/unreachable` (Ready
//! Unknown) or `node.kubernetes.io/not-ready` (Ready False), NoSchedule and NoExecute, and
//! the NoSchedule taints of memory, disk and PID pressure; they go when the kubelet reports
//! Ready again.
//!
//! Taint eviction ([`eviction`], upstream's taint eviction controller): pods on a node with
//! NoExecute taints they do not tolerate are deleted at once; pods tolerating them for
//! `tolerationSeconds` are deleted that long after the taint was added; pods tolerating them
//! forever stay. The timers are work-queue delays, not polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use tokio::time::Instant;
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::Context;

pub mod eviction;
pub mod health;
pub mod taints;

/// The namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// What this controller last heard from a node, by its own clock.
#[derive(Debug)]
struct Heard {
    /// When it last saw a renewal.
    at: Instant,
    /// The lease's renewTime then.
    renew: Option<String>,
    /// The Ready condition's heartbeat then.
    heartbeat: Option<String>,
    /// When the pending health timer fires, if one is pending.
    timer: Option<Instant>,
}

/// What the controller's workers share.
struct Shared {
    client: kube::Client,
    grace: std::time::Duration,
    nodes: Store<Node>,
    pods: Store<Pod>,
    heard: Mutex<HashMap<String, Heard>>,
    node_queue: Queue<ObjectKey>,
    pod_queue: Queue<ObjectKey>,
    /// Pods with an eviction timer pending, and when it fires.
    evictions: Mutex<HashMap<ObjectKey, Instant>>,
    node_events: Recorder,
    eviction_events: Recorder,
}

impl Shared {
    fn heard(&self) -> MutexGuard<'_, HashMap<String, Heard>> {
        self.heard.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn evictions(&self) -> MutexGuard<'_, HashMap<ObjectKey, Instant>> {
        self.evictions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stamps a renewal of `node` now if `renew`/`heartbeat` moved; the first sighting
    /// counts as one.
    fn observe(&self, node: &str, renew: Option<String>, heartbeat: Option<String>) {
        let mut heard = self.heard();
        let entry = heard.entry(node.to_owned()).or_insert_with(|| Heard {
            at: Instant::now(),
            renew: renew.clone(),
            heartbeat: heartbeat.clone(),
            timer: None,
        });
        let renewed = renew.is_some() && renew != entry.renew;
        let beat = heartbeat.is_some() && heartbeat != entry.heartbeat;
        if renewed || beat {
            entry.at = Instant::now();
        }
        if renew.is_some() {
            entry.renew = renew;
        }
        if heartbeat.is_some() {
            entry.heartbeat = heartbeat;
        }
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
    }
}

fn ready_heartbeat(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_heartbeat_time
        .as_ref()
        .map(|t| t.0.to_string())
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let nodes = ctx.informers.get::<Node>();
    let pods = ctx.informers.get::<Pod>();
    let leases = ctx.informers.get::<Lease>();
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        grace: ctx.options.node_monitor_grace_period,
        nodes: nodes.store(),
        pods: pods.store(),
        heard: Mutex::default(),
        node_queue: Queue::new(),
        pod_queue: Queue::new(),
        evictions: Mutex::default(),
        node_events: ctx.recorder("node-controller"),
        eviction_events: ctx.recorder("taint-eviction-controller"),
    });
    let s = shared.clone();
    leases.on_change(move |c: &Change<'_, Lease>| {
        let lease = c.object();
        if lease.namespace().as_deref() != Some(LEASE_NAMESPACE) || matches!(c, Change::Deleted(_))
        {
            return;
        }
        let renew = lease
            .spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0.to_string());
        s.observe(&lease.name_any(), renew, None);
    });
    let s = shared.clone();
    nodes.on_change(move |c: &Change<'_, Node>| {
        let node = c.object();
        let name = node.name_any();
        match c {
            Change::Deleted(_) => {
                s.heard().remove(&name);
                return;
            }
            Change::Added(_) => {
                s.node_events.event(
                    node.as_ref(),
                    EventType::Normal,
                    "RegisteredNode",
                    format!("Node {name} event: Registered Node {name} in Controller"),
                );
            }
            Change::Updated { .. } => {}
        }
        s.observe(&name, None, ready_heartbeat(node));
        s.node_queue.add(ObjectKey::cluster(&name));
        let before = c.old().map(|o| taints::no_execute(o)).unwrap_or_default();
        let now = taints::no_execute(node);
        if before != now {
            for pod in s.pods_on(&name) {
                s.pod_queue.add(ObjectKey::of(pod.as_ref()));
            }
        }
    });
    let s = shared.clone();
    pods.on_change(move |c: &Change<'_, Pod>| {
        let pod = c.object();
        if matches!(c, Change::Deleted(_)) {
            s.evictions().remove(&ObjectKey::of(pod.as_ref()));
            return;
        }
        let on_node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let moved = c.old().is_none_or(|o| {
            o.spec.as_ref().map(|s| (&s.node_name, &s.tolerations))
                != pod.spec.as_ref().map(|s| (&s.node_name, &s.tolerations))
        });
        if on_node && moved {
            s.pod_queue.add(ObjectKey::of(pod.as_ref()));
        }
    });
    let informers = ctx.informers.clone();
    let workers = ctx.options.workers;
    Box::pin(async move {
        informers.synced().await;
        let (a, b) = (shared.clone(), shared.clone());
        let node_workers = tug_runtime::queue::run(
            "nodelifecycle",
            shared.node_queue.clone(),
            workers,
            move |key: ObjectKey| {
                let s = a.clone();
                async move { health::sync(&s, key).await }
            },
        );
        let pod_workers = tug_runtime::queue::run(
            "taint-eviction",
            shared.pod_queue.clone(),
            workers,
            move |key: ObjectKey| {
                let s = b.clone();
                async move { eviction::sync(&s, key).await }
            },
        );
        futures::future::join(node_workers, pod_workers).await;
    })
}

#[cfg(test)]
mod tests;
