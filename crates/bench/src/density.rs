//! `tug bench density`: the shape of upstream's density test on hollow nodes. The API server,
//! controllers, scheduler and hollow kubelets run in this process (each component on its own
//! in-process client, as `tug server --hollow-nodes` runs them, without leader election); Deployments ask for the
//! pods; a watch records when each pod is first seen and when it is first seen Running. It
//! reports pod startup latency (first seen → Running) p50/p99, the time until every pod
//! runs, and the process RSS afterwards.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::Api;

use crate::report::{Better, Row, Table};
use crate::store::{histogram, ms, record};
use crate::{invalid, Error, Result};

/// Settings of the density run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Hollow nodes.
    pub nodes: usize,
    /// Pods in all.
    pub pods: usize,
    /// Deployments the pods are split over.
    pub deployments: usize,
    /// Where the store lives. Default: a temp dir.
    pub dir: Option<PathBuf>,
    /// How long to wait for every pod to run.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 100,
            pods: 3000,
            deployments: 30,
            dir: None,
            timeout: Duration::from_secs(600),
        }
    }
}

/// Resident set size of this process in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(Default)]
struct Seen {
    first: HashMap<String, Instant>,
    running: HashMap<String, Duration>,
}

fn deployment(name: &str, replicas: usize) -> Result<Deployment> {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10",
                    "resources": { "requests": { "cpu": "10m", "memory": "10Mi" } } }] }
            }
        }
    }))
    .map_err(|e| invalid("the deployment manifest", e))
}

/// Runs the density measurement.
pub async fn run(options: &Options) -> Result<Table> {
    let base = match &options.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|source| Error::Io {
        what: "creating the data directory",
        source,
    })?;
    let store = tug_store::embedded::EmbeddedStore::open(
        &base.path().join("db"),
        tug_store::embedded::EmbeddedOptions::default(),
    )
    .await?;
    let router = tug_apiserver::local::start(Arc::new(store))
        .await
        .map_err(|e| invalid("starting the API server", e))?;
    let client = |user: &str| {
        tug_apiserver::local::client(router.clone(), tug_apiserver::local::component_user(user))
    };
    let agent = tug_apiserver::local::client(router.clone(), tug_apiserver::join::agent_user());
    let ctx = tug_controllers::Context::new(
        client("system:kube-controller-manager"),
        tug_controllers::Options::default(),
    );
    let mut tasks = vec![
        tokio::spawn(tug_controllers::run(ctx)),
        tokio::spawn(tug_scheduler::run(
            client("system:kube-scheduler"),
            tug_scheduler::Options::default(),
        )),
        tokio::spawn(tug_hollow::run(
            agent,
            tug_hollow::Options {
                count: options.nodes,
                name_prefix: "hollow-".to_owned(),
                ..tug_hollow::Options::default()
            },
        )),
    ];
    let admin = client("admin");
    let result = measure(&admin, options).await;
    for t in &mut tasks {
        t.abort();
    }
    result
}

async fn measure(admin: &kube::Client, options: &Options) -> Result<Table> {
    let nodes: Api<Node> = Api::all(admin.clone());
    let deadline = Instant::now() + options.timeout;
    loop {
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| invalid("listing nodes", e))?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some()
                    && n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
            })
            .count();
        if ready >= options.nodes {
            break;
        }
        if Instant::now() > deadline {
            return Err(invalid(
                "timed out",
                format!("{ready}/{} nodes Ready", options.nodes),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let watch = {
        let (seen, pods) = (seen.clone(), pods.clone());
        tokio::spawn(async move {
            let stream = watcher::watcher(pods, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    _ => continue,
                };
                let now = Instant::now();
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                let first = *s.first.entry(uid.clone()).or_insert(now);
                if running && !s.running.contains_key(&uid) {
                    s.running.insert(uid, now - first);
                }
            }
        })
    };

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    let per = options.pods / options.deployments.max(1);
    let start = Instant::now();
    for i in 0..options.deployments {
        let replicas = if i + 1 == options.deployments {
            options.pods - per * (options.deployments - 1)
        } else {
            per
        };
        deployments
            .create(
                &PostParams::default(),
                &deployment(&format!("density-{i}"), replicas)?,
            )
            .await
            .map_err(|e| invalid("creating a deployment", e))?;
    }
    loop {
        let done = seen.lock().unwrap_or_else(|e| e.into_inner()).running.len();
        if done >= options.pods {
            break;
        }
        if Instant::now() > deadline {
            watch.abort();
            return Err(invalid(
                "timed out",
                format!("{done}/{} pods Running", options.pods),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_running = start.elapsed();
    watch.abort();

    let mut latency = histogram();
    for d in seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .running
        .values()
    {
        record(&mut latency, *d);
    }
    let pct = |q: f64| ms(&latency, q);
    let created_within = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first
        .values()
        .max()
        .map_or(0.0, |t| t.saturating_duration_since(start).as_secs_f64());
    let row = |name: String, unit, better, v: f64| Row {
        name,
        unit,
        better,
        values: vec![v],
    };
    Ok(Table {
        title: format!(
            "Density: {} hollow nodes, {} pods in {} Deployments (apiserver, controllers, \
             scheduler and hollow kubelets in one process)",
            options.nodes, options.pods, options.deployments
        ),
        columns: vec!["tug".to_owned()],
        rows: vec![
            row(
                "pod startup p50 (seen → Running)".into(),
                "ms",
                Better::Lower,
                pct(0.50),
            ),
            row(
                "pod startup p99 (seen → Running)".into(),
                "ms",
                Better::Lower,
                pct(0.99),
            ),
            row(
                "last pod created (first seen) after".into(),
                "s",
                Better::Lower,
                created_within,
            ),
            row(
                "all pods Running after".into(),
                "s",
                Better::Lower,
                all_running.as_secs_f64(),
            ),
            row(
                "pods Running per second".into(),
                "pods/s",
                Better::Higher,
                options.pods as f64 / all_running.as_secs_f64(),
            ),
            row("process RSS after".into(), "MiB", Better::Lower, rss_mib()),
        ],
    })
}
