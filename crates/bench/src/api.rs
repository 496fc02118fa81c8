//! `tug bench api`: the API server over HTTPS, with the embedded store against etcd, in one
//! run. Both contenders are real `tug server --disable-agent` processes on loopback; the
//! load is N concurrent clients, each on its own connection with the admin certificate.
//!
//! Measures idle memory (RSS of the server process), mutating requests (create then
//! replace of ConfigMaps) throughput and latency, GET latency, LIST of many pods (served
//! from the watch cache), and watch delivery latency (from the start of a create to the
//! event's arrival at a watcher).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use serde_json::json;
use tug_store::etcd_process::EtcdProcess;

use crate::http::{tls_config, Conn};
use crate::report::{Better, Row, Table};
use crate::store::{histogram, ms, record};
use crate::{Error, Result};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `tug` binary to start as the server.
    pub server_exe: PathBuf,
    /// Concurrent clients in the mutating and GET cases.
    pub clients: usize,
    /// How long the mutating and GET cases run per contender.
    pub case_duration: Duration,
    /// Pods in the LIST case.
    pub list_pods: usize,
    /// How many times the LIST is timed.
    pub list_rounds: usize,
    /// Events in the watch case.
    pub watch_events: usize,
    /// Where both servers keep their data; a temp dir if `None`.
    pub dir: Option<PathBuf>,
    /// Deployments in the server-side apply case.
    pub apply_objects: usize,
    /// Concurrent clients in the server-side apply case.
    pub apply_clients: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server_exe: PathBuf::from("tug"),
            clients: 64,
            case_duration: Duration::from_secs(5),
            list_pods: 10_000,
            list_rounds: 20,
            watch_events: 500,
            dir: None,
            apply_objects: 1000,
            apply_clients: 16,
        }
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// A running server under test.
struct Server {
    child: tokio::process::Child,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    _etcd: Option<EtcdProcess>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

impl Server {
    async fn start(options: &Options, dir: &Path, etcd: Option<EtcdProcess>) -> Result<Server> {
        let port = free_port()?;
        let mut cmd = tokio::process::Command::new(&options.server_exe);
        cmd.args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            .arg("--https-listen-port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(e) = &etcd {
            cmd.arg("--datastore-endpoint").arg(e.endpoint());
        }
        let child = cmd.spawn().map_err(io("starting tug server"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let tls_dir = dir.join("server/tls");
        loop {
            if Instant::now() > deadline {
                return Err(Error::Invalid(
                    "the server did not become ready in 60 s".into(),
                ));
            }
            if tls_dir.join("admin.key").exists() {
                if let Ok(tls) = tls_config(&tls_dir) {
                    if let Ok(mut c) = Conn::open(port, tls.clone()).await {
                        let ready = c.call("GET", "/api/v1/namespaces/default", None).await;
                        if ready.is_ok_and(|r| r.status == 200) {
                            return Ok(Server {
                                child,
                                port,
                                tls,
                                _etcd: etcd,
                            });
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn conn(&self) -> Result<Conn> {
        Conn::open(self.port, self.tls.clone()).await
    }

    /// Resident memory of the server process, MiB.
    fn rss_mib(&self) -> f64 {
        let Some(pid) = self.child.id() else {
            return 0.0;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn expect(reply: &crate::http::Reply, code: u16, what: &str) -> Result<()> {
    if reply.status != code {
        return Err(Error::Invalid(format!(
            "{what}: HTTP {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )));
    }
    Ok(())
}

fn body(v: &serde_json::Value) -> Option<Bytes> {
    Some(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
}

async fn create_namespace(c: &mut Conn, name: &str) -> Result<()> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let r = c.call("POST", "/api/v1/namespaces", body(&ns)).await?;
    expect(&r, 201, "creating a namespace")
}

/// Create-then-replace loops from every client for the case duration.
async fn mutating(s: &Server, o: &Options) -> Result<(f64, Histogram<u64>)> {
    let mut c = s.conn().await?;
    create_namespace(&mut c, "mutate").await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let mut conn = s.conn().await?;
        let until = start + o.case_duration;
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut i = 0u64;
            while Instant::now() < until {
                let name = format!("c{client}-{i}");
                let mut cm = json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name}, "data": {"k": "v".repeat(512)},
                });
                let t = Instant::now();
                let r = conn
                    .call("POST", "/api/v1/namespaces/mutate/configmaps", body(&cm))
                    .await?;
                record(&mut h, t.elapsed());
                expect(&r, 201, "create")?;
                cm["data"]["k"] = json!("w".repeat(512));
                let t = Instant::now();
                let r = conn
                    .call(
                        "PUT",
                        &format!("/api/v1/namespaces/mutate/configmaps/{name}"),
                        body(&cm),
                    )
                    .await?;
                record(&mut h, t.elapsed());
                expect(&r, 200, "replace")?;
                i += 1;
            }
            Ok::<_, Error>(h)
        }));
    }
    let mut all = histogram();
    for t in tasks {
        let h = t.await.map_err(|e| Error::Invalid(e.to_string()))??;
        let _ = all.add(&h);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((all.len() as f64 / secs, all))
}

/// A Deployment as an apply configuration.
fn deployment_config(name: &str, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "web", "image": image,
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "MODE", "value": "bench"}],
                }]},
            },
        },
    })
}

/// Server-side apply of `apply_objects` Deployments from `apply_clients` clients: each is
/// applied once (a create) and once more with a new image (an update).
async fn applies(s: &Server, o: &Options) -> Result<(f64, Histogram<u64>)> {
    let mut c = s.conn().await?;
    create_namespace(&mut c, "apply").await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    let clients = o.apply_clients.max(1);
    for client in 0..clients {
        let mut conn = s.conn().await?;
        let mine: Vec<usize> = (client..o.apply_objects).step_by(clients).collect();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            for (image, code) in [("busybox:1.36", 201), ("busybox:1.37", 200)] {
                for i in &mine {
                    let name = format!("d{i}");
                    let path = format!(
                        "/apis/apps/v1/namespaces/apply/deployments/{name}?fieldManager=bench&force=true"
                    );
                    let config = deployment_config(&name, image);
                    let t = Instant::now();
                    let r = conn
                        .call_as("PATCH", &path, body(&config), "application/apply-patch+yaml")
                        .await?;
                    record(&mut h, t.elapsed());
                    expect(&r, code, "server-side apply")?;
                }
            }
            Ok::<_, Error>(h)
        }));
    }
    let mut all = histogram();
    for t in tasks {
        let h = t.await.map_err(|e| Error::Invalid(e.to_string()))??;
        let _ = all.add(&h);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((all.len() as f64 / secs, all))
}

/// GETs of existing objects from every client.
async fn gets(s: &Server, o: &Options) -> Result<Histogram<u64>> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let mut conn = s.conn().await?;
        let until = start + o.case_duration / 2;
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            while Instant::now() < until {
                let t = Instant::now();
                let r = conn
                    .call(
                        "GET",
                        &format!("/api/v1/namespaces/mutate/configmaps/c{client}-0"),
                        None,
                    )
                    .await?;
                record(&mut h, t.elapsed());
                expect(&r, 200, "get")?;
            }
            Ok::<_, Error>(h)
        }));
    }
    let mut all = histogram();
    for t in tasks {
        let h = t.await.map_err(|e| Error::Invalid(e.to_string()))??;
        let _ = all.add(&h);
    }
    Ok(all)
}

/// Creates `list_pods` pods, then times LISTs of all of them.
async fn lists(s: &Server, o: &Options) -> Result<Histogram<u64>> {
    let mut c = s.conn().await?;
    create_namespace(&mut c, "list").await?;
    let workers = o.clients.max(1);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mut conn = s.conn().await?;
        let count = o.list_pods;
        tasks.push(tokio::spawn(async move {
            for i in (w..count).step_by(workers) {
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
                });
                let r = conn
                    .call("POST", "/api/v1/namespaces/list/pods", body(&pod))
                    .await?;
                expect(&r, 201, "creating a pod")?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Invalid(e.to_string()))??;
    }
    let mut h = histogram();
    for _ in 0..o.list_rounds {
        let t = Instant::now();
        let r = c.call("GET", "/api/v1/namespaces/list/pods", None).await?;
        record(&mut h, t.elapsed());
        expect(&r, 200, "list")?;
        let n = r
            .body
            .windows(12)
            .filter(|w| w == b"\"kind\":\"Pod\"")
            .count();
        if n < o.list_pods {
            return Err(Error::Invalid(format!(
                "the list had {n} pods, not {}",
                o.list_pods
            )));
        }
    }
    Ok(h)
}

/// Watch delivery: time from the start of each create to its event at a watcher.
async fn watch_delivery(s: &Server, o: &Options) -> Result<Histogram<u64>> {
    let mut c = s.conn().await?;
    create_namespace(&mut c, "watch").await?;
    let mut w = s.conn().await?;
    let mut stream = w
        .stream("/api/v1/namespaces/watch/configmaps?watch=true&resourceVersion=0")
        .await?;
    let mut h = histogram();
    let mut pending = Vec::new();
    for i in 0..o.watch_events {
        let cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("w{i}")}});
        let t = Instant::now();
        let r = c
            .call("POST", "/api/v1/namespaces/watch/configmaps", body(&cm))
            .await?;
        expect(&r, 201, "create")?;
        // Read until this object's event has arrived.
        let needle = format!("\"name\":\"w{i}\"");
        loop {
            if String::from_utf8_lossy(&pending).contains(&needle) {
                record(&mut h, t.elapsed());
                pending.clear();
                break;
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), stream.frame())
                .await
                .map_err(|_| Error::Invalid(format!("no watch event for w{i} in 10 s")))?;
            match frame {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        pending.extend_from_slice(&data);
                    }
                }
                _ => return Err(Error::Invalid("the watch ended".into())),
            }
        }
    }
    Ok(h)
}

struct Results {
    idle_rss: f64,
    ops: f64,
    mutate: Histogram<u64>,
    get: Histogram<u64>,
    list: Histogram<u64>,
    watch: Histogram<u64>,
    apply_ops: f64,
    apply: Histogram<u64>,
    loaded_rss: f64,
}

async fn measure(s: &Server, o: &Options) -> Result<Results> {
    // Let start-up work settle before reading idle memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = s.rss_mib();
    let (ops, mutate) = mutating(s, o).await?;
    let get = gets(s, o).await?;
    let list = lists(s, o).await?;
    let watch = watch_delivery(s, o).await?;
    let (apply_ops, apply) = applies(s, o).await?;
    Ok(Results {
        apply_ops,
        apply,
        idle_rss,
        ops,
        mutate,
        get,
        list,
        watch,
        loaded_rss: s.rss_mib(),
    })
}

/// Runs the benchmark and returns the side-by-side table.
pub async fn run(options: &Options) -> Result<Table> {
    let base = match &options.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(io("making a temp dir"))?;
    let embedded = {
        let server = Server::start(options, &base.path().join("embedded"), None).await?;
        measure(&server, options).await?
    };
    let etcd_results = {
        let etcd = EtcdProcess::start_in(base.path()).await?;
        let server = Server::start(options, &base.path().join("etcd"), Some(etcd)).await?;
        measure(&server, options).await?
    };
    let r = [&embedded, &etcd_results];
    let n = options.clients;
    let row = |name: String, unit, better, f: &dyn Fn(&Results) -> f64| Row {
        name,
        unit,
        better,
        values: r.iter().map(|x| f(x)).collect(),
    };
    let pods = options.list_pods;
    Ok(Table {
        title: format!(
            "tug bench api: tug server over HTTPS, embedded store vs etcd ({n} clients)"
        ),
        columns: vec!["embedded".into(), "etcd".into()],
        rows: vec![
            row("idle RSS".into(), "MiB", Better::Lower, &|x| x.idle_rss),
            row(
                format!("mutating requests, {n} clients"),
                "req/s",
                Better::Higher,
                &|x| x.ops,
            ),
            row("mutating p50".into(), "ms", Better::Lower, &|x| {
                ms(&x.mutate, 0.5)
            }),
            row("mutating p99".into(), "ms", Better::Lower, &|x| {
                ms(&x.mutate, 0.99)
            }),
            row(format!("GET p99, {n} clients"), "ms", Better::Lower, &|x| {
                ms(&x.get, 0.99)
            }),
            row(format!("LIST {pods} pods p50"), "ms", Better::Lower, &|x| {
                ms(&x.list, 0.5)
            }),
            row(format!("LIST {pods} pods p99"), "ms", Better::Lower, &|x| {
                ms(&x.list, 0.99)
            }),
            row("watch delivery p50".into(), "ms", Better::Lower, &|x| {
                ms(&x.watch, 0.5)
            }),
            row("watch delivery p99".into(), "ms", Better::Lower, &|x| {
                ms(&x.watch, 0.99)
            }),
            row(
                format!(
                    "server-side apply, {} deployments, {} clients",
                    options.apply_objects, options.apply_clients
                ),
                "req/s",
                Better::Higher,
                &|x| x.apply_ops,
            ),
            row("apply p50".into(), "ms", Better::Lower, &|x| {
                ms(&x.apply, 0.5)
            }),
            row("apply p99".into(), "ms", Better::Lower, &|x| {
                ms(&x.apply, 0.99)
            }),
            row(
                format!("RSS after the run ({pods} pods)"),
                "MiB",
                Better::Lower,
                &|x| x.loaded_rss,
            ),
        ],
    })
}
