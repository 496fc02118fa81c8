//! Liveness, readiness and startup probes: one task per running container that has any,
//! probing by exec (CRI ExecSync), httpGet (HTTP/1.1 to the pod IP; 200–399 passes),
//! tcpSocket or grpc ([`super::grpc_probe`]), with upstream's thresholds and periods. A
//! readiness flip re-queues the pod; a liveness or startup failure is recorded for the
//! sync, which kills the container.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPHeader, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tug_runtime::events::EventType;
use tug_runtime::ObjectKey;

use super::Kubelet;

#[derive(Default)]
struct Entry {
    ready: bool,
    started: bool,
    failure: Option<String>,
    task: Option<JoinHandle<()>>,
}

/// Probe workers and their results, by container id.
#[derive(Default)]
pub struct Probes {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Probes {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether container `id` passed readiness (true when it has no readiness probe).
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        self.started(c, id)
            && (c.readiness_probe.is_none() || self.lock().get(id).is_some_and(|e| e.ready))
    }

    /// Whether container `id` passed its startup probe (true when it has none).
    pub fn started(&self, c: &Container, id: &str) -> bool {
        c.startup_probe.is_none() || self.lock().get(id).is_some_and(|e| e.started)
    }

    /// A liveness or startup failure to act on, once.
    pub fn take_failure(&self, id: &str) -> Option<String> {
        self.lock().get_mut(id).and_then(|e| e.failure.take())
    }

    /// Starts the probe task of container `id` if it has probes and none runs yet.
    pub fn ensure(&self, k: &Arc<Kubelet>, pod: &Pod, c: &Container, id: &str, pod_ip: &str) {
        if c.liveness_probe.is_none() && c.readiness_probe.is_none() && c.startup_probe.is_none() {
            return;
        }
        let mut entries = self.lock();
        let e = entries.entry(id.to_owned()).or_default();
        if e.task.is_some() {
            return;
        }
        let run = Run {
            k: k.clone(),
            pod: pod.clone(),
            c: c.clone(),
            id: id.to_owned(),
            ip: pod_ip.to_owned(),
        };
        e.task = Some(tokio::spawn(run.go()));
    }

    /// Stops the tasks of containers no longer running.
    pub fn retain(&self, running: &HashSet<String>) {
        self.lock().retain(|id, e| {
            let keep = running.contains(id);
            if !keep {
                if let Some(t) = e.task.take() {
                    t.abort();
                }
            }
            keep
        });
    }
}

struct Run {
    k: Arc<Kubelet>,
    pod: Pod,
    c: Container,
    id: String,
    ip: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0))
}

impl Run {
    fn update(&self, f: impl FnOnce(&mut Entry)) {
        let mut entries = self.k.probes.lock();
        if let Some(e) = entries.get_mut(&self.id) {
            f(e);
        }
        drop(entries);
        self.k.queue.add(ObjectKey::of(&self.pod));
    }

    async fn go(self) {
        let run = Arc::new(self);
        if let Some(p) = run.c.startup_probe.clone() {
            if !run.clone().probe_loop(Kind::Startup, p).await {
                return;
            }
            run.update(|e| e.started = true);
        }
        // Both loops run inside this task, so aborting it stops them.
        let live = run
            .c
            .liveness_probe
            .clone()
            .map(|p| run.clone().probe_loop(Kind::Liveness, p));
        let ready = run
            .c
            .readiness_probe
            .clone()
            .map(|p| run.clone().probe_loop(Kind::Readiness, p));
        match (live, ready) {
            (Some(a), Some(b)) => {
                tokio::join!(a, b);
            }
            (Some(a), None) => {
                a.await;
            }
            (None, Some(b)) => {
                b.await;
            }
            (None, None) => {}
        }
    }

    /// Probes until the result settles as a startup success (true) or a liveness/startup
    /// failure (false); readiness loops for ever.
    async fn probe_loop(self: Arc<Self>, kind: Kind, p: Probe) -> bool {
        tokio::time::sleep(secs(p.initial_delay_seconds, 0)).await;
        let period = secs(p.period_seconds, 10).max(Duration::from_secs(1));
        let success_threshold = p.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = p.failure_threshold.unwrap_or(3).max(1);
        let (mut ok_run, mut fail_run) = (0, 0);
        let mut last: Option<bool> = None;
        loop {
            let result = self.probe(&p).await;
            match &result {
                Ok(()) => {
                    ok_run += 1;
                    fail_run = 0;
                }
                Err(msg) => {
                    fail_run += 1;
                    ok_run = 0;
                    self.k.recorder.event(
                        &self.pod,
                        EventType::Warning,
                        "Unhealthy",
                        format!("{} probe failed: {msg}", kind.name()),
                    );
                }
            }
            if ok_run >= success_threshold && last != Some(true) {
                last = Some(true);
                match kind {
                    Kind::Startup => return true,
                    Kind::Readiness => self.update(|e| e.ready = true),
                    Kind::Liveness => {}
                }
            }
            if fail_run >= failure_threshold && last != Some(false) {
                last = Some(false);
                match kind {
                    Kind::Readiness => self.update(|e| e.ready = false),
                    Kind::Liveness | Kind::Startup => {
                        let why = format!("failed {} probe", kind.name().to_lowercase());
                        self.update(|e| e.failure = Some(why));
                        return false;
                    }
                }
            }
            tokio::time::sleep(period).await;
        }
    }

    async fn probe(&self, p: &Probe) -> Result<(), String> {
        let timeout = secs(p.timeout_seconds, 1).max(Duration::from_secs(1));
        if let Some(e) = &p.exec {
            let cmd = e.command.clone().unwrap_or_default();
            let r = super::sync::exec_sync(&self.k, &self.id, cmd, timeout.as_secs() as i64)
                .await
                .map_err(|e| e.to_string())?;
            return if r.exit_code == 0 {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&[r.stdout, r.stderr].concat())
                    .trim()
                    .to_owned())
            };
        }
        if let Some(h) = &p.http_get {
            let (host, port) = self.target(h.host.as_deref(), &h.port)?;
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            let code =
                http_get(&host, port, &path, h.http_headers.iter().flatten(), timeout).await?;
            return if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            };
        }
        if let Some(t) = &p.tcp_socket {
            let (host, port) = self.target(t.host.as_deref(), &t.port)?;
            return match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
                Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            };
        }
        if let Some(g) = &p.grpc {
            let port = u16::try_from(g.port).map_err(|_| format!("invalid port {}", g.port))?;
            let service = g.service.as_deref().unwrap_or_default();
            return super::grpc_probe::check(&self.ip, port, service, timeout).await;
        }
        Ok(())
    }

    /// The probe's host (the pod IP unless given) and port (a number or a port name).
    fn target(&self, host: Option<&str>, port: &IntOrString) -> Result<(String, u16), String> {
        let host = host.filter(|h| !h.is_empty()).unwrap_or(&self.ip);
        Ok((host.to_owned(), self.port(port)?))
    }

    fn port(&self, p: &IntOrString) -> Result<u16, String> {
        container_port(&self.c, p)
    }
}

/// A port given as a number or as the name of one of the container's ports.
pub(crate) fn container_port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| format!("port {name} not found in container {}", c.name)),
    }
}

/// `GET http://host:port/path` with the kubelet's User-Agent and the given headers; the
/// status code, or upstream's wording of why there was none.
pub(crate) async fn http_get<'a>(
    host: &str,
    port: u16,
    path: &str,
    headers: impl Iterator<Item = &'a HTTPHeader>,
    timeout: Duration,
) -> Result<u16, String> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.37\r\n\
         Accept: */*\r\nConnection: close\r\n"
    );
    for hdr in headers {
        req.push_str(&format!("{}: {}\r\n", hdr.name, hdr.value));
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await?;
        s.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; 256];
        let n = s.read(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let head = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("Get \"http://{host}:{port}{path}\": context deadline exceeded"))?
        .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
    Ok(head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}
