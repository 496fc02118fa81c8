//! `tug bench scheduler`: the shape of upstream scheduler_perf's "SchedulingBasic". An
//! in-process API server (the embedded store on disk in a temp dir, opened as `tug server`
//! opens it) and the scheduler in the same process over the local client; N nodes from
//! scheduler_perf's node template (4 cpu, 32 GiB, 110 pods), initial pods scheduled before
//! measuring, then the measured pods (scheduler_perf's pod-default: 100m cpu / 500Mi memory)
//! created by several concurrent clients. Reports scheduled pods per second (from the first
//! measured pod's creation to the last bind seen by a watch) and each pod's latency from
//! creation to its bind seen by the watch. Pods are created as upstream's test/utils
//! `CreatePod` does for scheduler_perf: 30 concurrent workers on one client whose requests
//! pass client-go's token bucket at scheduler_perf's 5,000 QPS (burst 5,000).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde::Deserialize;
use tug_store::embedded::{EmbeddedOptions, EmbeddedStore};

use crate::report::{Better, Row, Table};
use crate::store::{histogram, ms, record};
use crate::{invalid, Error, Result};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Nodes.
    pub nodes: usize,
    /// Pods scheduled before measuring.
    pub init_pods: usize,
    /// Measured pods.
    pub pods: usize,
    /// Concurrent clients creating pods (upstream's `CreatePod` uses 30 workers).
    pub clients: usize,
    /// Requests per second the creating clients share (scheduler_perf's client: 5,000 QPS,
    /// burst 5,000); 0 = unlimited.
    pub qps: f64,
    /// Where the store keeps its data; a temp dir if `None`.
    pub dir: Option<PathBuf>,
    /// How long to wait for the measured pods at most.
    pub timeout: Duration,
    /// Keep the store in memory instead of on disk.
    pub in_memory: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 5000,
            init_pods: 1000,
            pods: 10_000,
            clients: 30,
            qps: 5000.0,
            dir: None,
            timeout: Duration::from_secs(600),
            in_memory: false,
        }
    }
}

fn node_object(name: &str) -> Result<Node> {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }))
    .map_err(|e| invalid("node template", e))
}

fn node_status() -> serde_json::Value {
    serde_json::json!({"status": {
        "capacity": {"pods": "110", "cpu": "4", "memory": "32Gi"},
        "allocatable": {"pods": "110", "cpu": "4", "memory": "32Gi"},
        "conditions": [{"type": "Ready", "status": "True"}],
        "phase": "Running"
    }})
}

/// The body of a measured pod's create: scheduler_perf's pod-default, encoded once as the
/// request body (what a typed client's encoding of the same Pod sends).
fn pod_body(name: &str) -> Result<Vec<u8>> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{
            "name": "pause",
            "image": "registry.k8s.io/pause:3.10",
            "ports": [{"containerPort": 80}],
            "resources": {
                "limits": {"cpu": "100m", "memory": "500Mi"},
                "requests": {"cpu": "100m", "memory": "500Mi"}
            }
        }]}
    }))
    .map_err(|e| invalid("pod template", e))
}

/// What the bench's own watch decodes of a Pod: its name and resourceVersion (the watcher
/// resumes from it) and `spec.nodeName`. The watch is a real watch of Pods; decoding whole
/// Pods (managedFields, containers) made the bench's observation a tenth of the run's CPU.
#[derive(Clone, Debug, Default, Deserialize)]
struct BoundPod {
    #[serde(default, deserialize_with = "slim_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<BoundSpec>,
}

/// The part of a Pod's spec the bench reads.
#[derive(Clone, Debug, Default, Deserialize)]
struct BoundSpec {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
}

/// The metadata fields a watcher needs; the others are skipped without being decoded.
fn slim_meta<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    struct Slim {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default, rename = "resourceVersion")]
        resource_version: Option<String>,
    }
    let m = Slim::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        resource_version: m.resource_version,
        ..ObjectMeta::default()
    })
}

impl kube::Resource for BoundPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Pod name → when the watch saw it bound.
#[derive(Default)]
struct Bound {
    at: Mutex<HashMap<String, Instant>>,
    /// How many bound pods were seen per name prefix ("init-", "pod-").
    counts: Mutex<HashMap<String, usize>>,
    notify: tokio::sync::Notify,
}

impl Bound {
    fn count_with_prefix(&self, prefix: &str) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(prefix)
            .copied()
            .unwrap_or(0)
    }

    fn saw(&self, name: String) {
        let prefix = match name.find('-') {
            Some(i) => name[..=i].to_owned(),
            None => String::new(),
        };
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        if at.contains_key(&name) {
            return;
        }
        at.insert(name, Instant::now());
        drop(at);
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(prefix)
            .or_default() += 1;
        self.notify.notify_waiters();
    }

    async fn wait_for(&self, prefix: &str, n: usize, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.count_with_prefix(prefix) >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::Invalid(format!(
                    "only {} of {n} {prefix}* pods were scheduled in {timeout:?}",
                    self.count_with_prefix(prefix)
                )));
            }
        }
    }
}

/// client-go's token bucket rate limiter (`flowcontrol.NewTokenBucketRateLimiter`, over
/// golang.org/x/time/rate): `qps` tokens a second, at most `burst` saved, each request
/// takes one and waits until it is due when none is left.
struct Limiter {
    qps: f64,
    burst: f64,
    /// Tokens left (negative: reserved ahead) as of the instant.
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    fn new(qps: f64, burst: f64) -> Self {
        Limiter {
            qps,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token at `now`: how long the request must wait for it, if at all.
    fn reserve(&self, now: Instant) -> Option<Duration> {
        if self.qps <= 0.0 {
            return None;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.qps;
        s.0 = (s.0 + refill).min(self.burst) - 1.0;
        s.1 = now;
        (s.0 < 0.0).then(|| {
            Duration::try_from_secs_f64(-s.0 / self.qps).unwrap_or(Duration::from_secs(3600))
        })
    }

    async fn wait(&self) {
        if let Some(d) = self.reserve(Instant::now()) {
            tokio::time::sleep(d).await;
        }
    }
}

async fn create_pods(
    client: &kube::Client,
    limiter: &Arc<Limiter>,
    prefix: &str,
    n: usize,
    clients: usize,
) -> Result<HashMap<String, Instant>> {
    let next = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(Mutex::new(HashMap::with_capacity(n)));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (next, created, client) = (next.clone(), created.clone(), client.clone());
        let limiter = limiter.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let pods = kube::core::Request::new("/api/v1/namespaces/default/pods");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), Error>(());
                }
                let name = format!("{prefix}{i}");
                let req = pods
                    .create(&PostParams::default(), pod_body(&name)?)
                    .map_err(|e| invalid("creating a pod", e))?;
                limiter.wait().await;
                let t = Instant::now();
                // The answer is checked (a created Pod of that name), not decoded whole: the
                // bench's own decoding competed with the server and scheduler for the CPU.
                let made: BoundPod = client
                    .request(req)
                    .await
                    .map_err(|e| invalid("creating a pod", e))?;
                if made.metadata.name.as_deref() != Some(name.as_str()) {
                    return Err(invalid(
                        "creating a pod",
                        format!("answered {:?}", made.metadata.name),
                    ));
                }
                created
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name, t);
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| invalid("pod creator", e))??;
    }
    let map = std::mem::take(&mut *created.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(map)
}

/// Runs the benchmark and returns its table.
pub async fn run(options: &Options) -> Result<Table> {
    let base = match &options.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|source| Error::Io {
        what: "creating the data directory",
        source,
    })?;
    let store = if options.in_memory {
        EmbeddedStore::in_memory()?
    } else {
        EmbeddedStore::open(&base.path().join("db"), EmbeddedOptions::default()).await?
    };
    let router = tug_apiserver::local::start(Arc::new(store))
        .await
        .map_err(|e| invalid("starting the API server", e))?;
    let client = tug_apiserver::local::client(
        router.clone(),
        tug_apiserver::local::component_user("bench"),
    );
    let scheduler_client = tug_apiserver::local::client(
        router,
        tug_apiserver::local::component_user("system:kube-scheduler"),
    );

    // Nodes, created by several clients.
    let t = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (next, client, n) = (next.clone(), client.clone(), options.nodes);
        tasks.push(tokio::spawn(async move {
            let api: Api<Node> = Api::all(client);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), Error>(());
                }
                let name = format!("node-{i}");
                api.create(&PostParams::default(), &node_object(&name)?)
                    .await
                    .map_err(|e| invalid("creating a node", e))?;
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(node_status()))
                    .await
                    .map_err(|e| invalid("setting a node's status", e))?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| invalid("node creator", e))??;
    }
    tracing::info!(nodes = options.nodes, took = ?t.elapsed(), "nodes created");

    // The watch that sees binds.
    let bound = Arc::new(Bound::default());
    let watch = {
        let bound = bound.clone();
        let api: Api<BoundPod> = Api::namespaced(client.clone(), "default");
        tokio::spawn(async move {
            let stream = watcher::watcher(api, watcher::Config::default());
            futures::pin_mut!(stream);
            loop {
                match stream.try_next().await {
                    Ok(Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                        if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                            bound.saw(p.metadata.name.unwrap_or_default());
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return,
                    Err(e) => tracing::debug!(error = %e, "bench watch failed; retrying"),
                }
            }
        })
    };

    let scheduler = tokio::spawn(tug_scheduler::run(
        scheduler_client,
        tug_scheduler::Options::default(),
    ));

    // Initial pods, scheduled before measuring. The creating client's rate limiter is shared
    // by both phases, as scheduler_perf's one client.
    let limiter = Arc::new(Limiter::new(options.qps, options.qps));
    create_pods(
        &client,
        &limiter,
        "init-",
        options.init_pods,
        options.clients,
    )
    .await?;
    bound
        .wait_for("init-", options.init_pods, options.timeout)
        .await?;
    tracing::info!(pods = options.init_pods, "initial pods scheduled");

    // Measured pods.
    let t = Instant::now();
    let created = create_pods(&client, &limiter, "pod-", options.pods, options.clients).await?;
    tracing::info!(
        pods = options.pods,
        took = ?t.elapsed(),
        bound = bound.count_with_prefix("pod-"),
        "measured pods created"
    );
    bound
        .wait_for("pod-", options.pods, options.timeout)
        .await?;
    scheduler.abort();
    watch.abort();

    let at = bound.at.lock().unwrap_or_else(|e| e.into_inner());
    let first = created
        .values()
        .min()
        .copied()
        .ok_or_else(|| Error::Invalid("no pods".into()))?;
    let mut last = first;
    let mut lat = histogram();
    for (name, c) in &created {
        let b = at
            .get(name)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("{name} was not seen bound")))?;
        last = last.max(b);
        record(&mut lat, b.saturating_duration_since(*c));
    }
    let secs = last.duration_since(first).as_secs_f64().max(1e-9);
    // The scheduler alone: pods bound after the last creation, over the time that took
    // (creation and binding share the two cores while both run).
    let created_by = created.values().max().copied().unwrap_or(first);
    let after = at.values().filter(|b| **b > created_by).count();
    let after_secs = last.saturating_duration_since(created_by).as_secs_f64();
    let mut rows = vec![
        Row {
            name: "scheduling throughput".into(),
            unit: "pods/s",
            better: Better::Higher,
            values: vec![options.pods as f64 / secs],
        },
        Row {
            name: "create → bound seen by watch, p50".into(),
            unit: "ms",
            better: Better::Lower,
            values: vec![ms(&lat, 0.5)],
        },
        Row {
            name: "create → bound seen by watch, p99".into(),
            unit: "ms",
            better: Better::Lower,
            values: vec![ms(&lat, 0.99)],
        },
    ];
    if after > 0 && after_secs > 0.0 {
        rows.push(Row {
            name: format!("throughput after creation ended ({after} pods)"),
            unit: "pods/s",
            better: Better::Higher,
            values: vec![after as f64 / after_secs],
        });
    }
    rows.push(Row {
        name: "creation rate of the measured pods".into(),
        unit: "pods/s",
        better: Better::Higher,
        values: vec![
            options.pods as f64 / created_by.duration_since(first).as_secs_f64().max(1e-9),
        ],
    });
    Ok(Table {
        title: format!(
            "SchedulingBasic: {} nodes, {} initial pods, {} measured pods from {} clients at \
             {} QPS (in-process API server on the embedded store, {})",
            options.nodes,
            options.init_pods,
            options.pods,
            options.clients,
            options.qps,
            if options.in_memory {
                "in memory"
            } else {
                "on disk in a temp dir"
            }
        ),
        columns: vec!["tug".into()],
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_decodes_name_revision_and_node_only() {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-1", "namespace": "default", "resourceVersion": "42",
                "uid": "u", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "node-3", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending"}
        });
        let p: BoundPod = serde_json::from_value(pod).unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("pod-1"));
        assert_eq!(p.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(p.spec.and_then(|s| s.node_name).as_deref(), Some("node-3"));
        let unbound: BoundPod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}, "spec": {}}))
                .unwrap();
        assert!(unbound.spec.and_then(|s| s.node_name).is_none());
    }

    #[test]
    fn the_limiter_lets_a_burst_through_then_spaces_requests() {
        let l = Limiter::new(100.0, 2.0);
        let t = *l.state.lock().unwrap();
        assert_eq!(l.reserve(t.1), None);
        assert_eq!(l.reserve(t.1), None);
        // The third and fourth wait for 10 and 20 ms of refill.
        let d = l.reserve(t.1).unwrap().as_secs_f64();
        assert!((d - 0.01).abs() < 1e-9, "{d}");
        let d = l.reserve(t.1).unwrap().as_secs_f64();
        assert!((d - 0.02).abs() < 1e-9, "{d}");
        // Unlimited never waits.
        let u = Limiter::new(0.0, 0.0);
        assert!((0..10).all(|_| u.reserve(Instant::now()).is_none()));
    }
}
