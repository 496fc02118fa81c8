//! `tug bench pods`: real containers on one node. It starts `tug server` (control plane and
//! kubelet, containerd started by tug) on a fresh data dir with the busybox test image placed
//! for import, and measures the time until the node is Ready, the idle memory of `tug server`
//! (and of its containerd, counted separately), then pod startup latency — creation to
//! Running seen by a watch, image present — over batches of pods (at most `batch` at a time),
//! and the memory of `tug server` while 20 pods run. Each figure sits beside its goal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::Api;

use crate::report::{Better, Row, Table};
use crate::store::{histogram, ms, record};
use crate::{invalid, Error, Result};

/// The image the measured pods run.
const IMAGE: &str = "localhost/tugboat/busybox:1";
/// Namespace of the measured pods.
const NAMESPACE: &str = "default";
/// Pods running while the busy memory is read (the figure).
const BUSY_PODS: usize = 20;

/// Settings of the run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `tug` binary.
    pub server_exe: PathBuf,
    /// Pods measured in all.
    pub pods: usize,
    /// Pods at a time.
    pub batch: usize,
    /// Where the data dir goes. Default: the temp dir.
    pub dir: Option<PathBuf>,
    /// How long anything may take.
    pub timeout: Duration,
    /// Where the server's log goes (its level from `RUST_LOG`, default warn). Default: nowhere.
    pub server_log: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            server_exe: PathBuf::from("tug"),
            pods: 100,
            batch: 20,
            dir: None,
            timeout: Duration::from_secs(120),
            server_log: None,
        }
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The server under test; stopped, with its containers, when dropped.
struct Server {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn containerd_rss(&self) -> f64 {
        let config = self.dir.path().join("agent/containerd/config.toml");
        tug_kubelet::containerd::stale(&config)
            .into_iter()
            .map(rss_mib)
            .sum()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = tug_kubelet::kill_all(&self.dir.path().join("agent")).await;
    }
}

async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| invalid("reading the kubeconfig", e))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| invalid("loading the kubeconfig", e))?;
    kube::Client::try_from(config).map_err(|e| invalid("building the client", e))
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod(name: &str) -> Result<Pod> {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "bench": "pods" } },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"] }]
        }
    }))
    .map_err(|e| invalid("the pod manifest", e))
}

/// Runs the measurement.
pub async fn run(options: &Options) -> Result<Table> {
    if tug_kubelet::containerd::which("containerd").is_none() {
        return Err(Error::Invalid(
            "containerd is not installed (scripts/install-deps.sh)".into(),
        ));
    }
    let dir = match &options.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(io("creating the data directory"))?;
    let images = dir.path().join("agent/images");
    std::fs::create_dir_all(&images).map_err(io("creating the images directory"))?;
    let busybox = tug_kubelet::image::find_busybox()
        .ok_or_else(|| Error::Invalid("busybox-static is not installed".into()))?;
    tug_kubelet::image::busybox_archive(IMAGE, &busybox)
        .and_then(|a| a.save(&images.join("busybox.tar")))
        .map_err(|e| invalid("building the busybox image", e))?;
    let port = free_port()?;
    let (log, level) = match &options.server_log {
        Some(path) => (
            Stdio::from(std::fs::File::create(path).map_err(io("creating the server log"))?),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ),
        None => (Stdio::null(), "warn".into()),
    };
    let started = Instant::now();
    let child = tokio::process::Command::new(&options.server_exe)
        .args([
            "server",
            "--bind-address",
            "127.0.0.1",
            "--node-name",
            "bench-node",
            "--node-ip",
            "127.0.0.1",
        ])
        .arg("--https-listen-port")
        .arg(port.to_string())
        .arg("--kubelet-port")
        .arg(free_port()?.to_string())
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", level)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(io("starting tug server"))?;
    let server = Server { child, dir };
    let result = measure(options, &server, started).await;
    server.stop().await;
    result
}

async fn measure(options: &Options, server: &Server, started: Instant) -> Result<Table> {
    let deadline = started + options.timeout;
    let kubeconfig = server.dir.path().join("admin.kubeconfig");
    let mut nodes: Option<Api<Node>> = None;
    let ready_after = loop {
        if Instant::now() > deadline {
            return Err(Error::Invalid("the node was not Ready in time".into()));
        }
        if nodes.is_none() && kubeconfig.exists() {
            nodes = client(&kubeconfig).await.ok().map(Api::all);
        }
        if let Some(api) = &nodes {
            if api
                .get_opt("bench-node")
                .await
                .ok()
                .flatten()
                .is_some_and(|n| ready(&n))
            {
                break started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let client = client(&kubeconfig).await?;
    // Idle: the node Ready, nothing running, a few seconds to settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss = rss_mib(server.pid());
    let idle_containerd = server.containerd_rss();

    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = running.clone();
    let mut stream = watcher(
        pods.clone(),
        watcher::Config::default().labels("bench=pods"),
    )
    .boxed();
    let watch = tokio::spawn(async move {
        while let Some(ev) = stream.next().await {
            let list = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![p],
                _ => continue,
            };
            for p in list {
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    if let Ok(mut m) = seen.lock() {
                        m.entry(name).or_insert_with(Instant::now);
                    }
                }
            }
        }
    });
    let socket = server.dir.path().join("agent/containerd/containerd.sock");
    let cri = tug_kubelet::cri::Cri::connect(&socket)
        .await
        .map_err(|e| invalid("connecting to containerd", e))?;
    let batches = Batches {
        pods: &pods,
        running: &running,
        cri: &cri,
        timeout: options.timeout,
    };
    let mut h = histogram();
    let mut created = 0;
    while created < options.pods {
        let n = options.batch.min(options.pods - created);
        let names: Vec<String> = (created..created + n)
            .map(|i| format!("bench-{i}"))
            .collect();
        for (name, start) in batches.run(&names).await? {
            let ran = running.lock().ok().and_then(|m| m.get(&name).copied());
            if let Some(r) = ran {
                record(&mut h, r.saturating_duration_since(start));
            }
        }
        batches.delete().await?;
        created += n;
    }
    // The memory with the 20 pods running, whatever the latency batches were.
    let names: Vec<String> = (0..BUSY_PODS).map(|i| format!("busy-{i}")).collect();
    batches.run(&names).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy_rss = rss_mib(server.pid());
    batches.delete().await?;
    watch.abort();
    let row = |name: String, unit: &'static str, value: f64, goal: f64| Row {
        name,
        unit,
        better: Better::Lower,
        values: vec![value, goal],
    };
    Ok(Table {
        title: format!(
            "tug bench pods: {} pods, {} at a time, busybox image present; goals from the issue",
            options.pods, options.batch
        ),
        columns: vec!["tug".into(), "goal".into()],
        rows: vec![
            row(
                "pod startup p50 (created → Running)".into(),
                "ms",
                ms(&h, 0.5),
                1000.0,
            ),
            row(
                "pod startup p99 (created → Running)".into(),
                "ms",
                ms(&h, 0.99),
                1000.0,
            ),
            row(
                "node Ready after `tug server` start".into(),
                "ms",
                ready_after.as_secs_f64() * 1000.0,
                3000.0,
            ),
            row("tug server idle RSS".into(), "MiB", idle_rss, 100.0),
            row(
                format!("tug server RSS, {BUSY_PODS} pods running"),
                "MiB",
                busy_rss,
                100.0,
            ),
            row(
                "containerd idle RSS (not in the goal)".into(),
                "MiB",
                idle_containerd,
                0.0,
            ),
        ],
    })
}

/// Runs batches of pods: all created at once, then waited for until a watch shows each
/// Running, then deleted at once — and the next batch starts only once the node has torn
/// the last one down (its sandboxes gone from containerd), so a batch's startup is measured
/// alone rather than sharing the two cores with the previous batch's teardown.
struct Batches<'a> {
    pods: &'a Api<Pod>,
    running: &'a Mutex<HashMap<String, Instant>>,
    cri: &'a tug_kubelet::cri::Cri,
    timeout: Duration,
}

impl Batches<'_> {
    /// Creates `names` and waits until all run; answers each one's creation time.
    async fn run(&self, names: &[String]) -> Result<HashMap<String, Instant>> {
        let creates = names.iter().map(|name| async move {
            let t = Instant::now();
            self.pods
                .create(&PostParams::default(), &pod(name)?)
                .await
                .map_err(|e| invalid("creating a pod", e))?;
            Ok::<_, Error>((name.clone(), t))
        });
        let mut start = HashMap::new();
        for r in futures::future::join_all(creates).await {
            let (name, t) = r?;
            start.insert(name, t);
        }
        let wait_until = Instant::now() + self.timeout;
        loop {
            let done = self
                .running
                .lock()
                .map(|m| names.iter().all(|n| m.contains_key(n)))
                .unwrap_or(false);
            if done {
                return Ok(start);
            }
            if Instant::now() > wait_until {
                return Err(Error::Invalid("pods did not all run in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deletes every bench pod at once (grace 0) and waits until they are gone.
    async fn delete(&self) -> Result<()> {
        let gone = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        let bench = ListParams::default().labels("bench=pods");
        self.pods
            .delete_collection(&gone, &bench)
            .await
            .map_err(|e| invalid("deleting the pods", e))?;
        let wait_until = Instant::now() + self.timeout;
        while !self
            .pods
            .list(&bench)
            .await
            .map_err(|e| invalid("listing pods", e))?
            .items
            .is_empty()
        {
            if Instant::now() > wait_until {
                return Err(Error::Invalid("pods were not deleted in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let sandboxes = self
                .cri
                .sandboxes()
                .await
                .map_err(|e| invalid("listing sandboxes", e))?;
            let left = sandboxes
                .iter()
                .filter(|s| {
                    s.metadata
                        .as_ref()
                        .is_some_and(|m| m.namespace == NAMESPACE)
                })
                .count();
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > wait_until {
                return Err(Error::Invalid(format!(
                    "{left} pod sandboxes were not removed in time"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
