//! One pod's sync, level-triggered: tear down what belongs to other incarnations or to a pod
//! that is gone; for a pod being deleted, stop its containers within the grace period and
//! remove it from the API; otherwise set up volumes, make sure a sandbox runs, run init
//! containers in order, start or restart containers by the restart policy with back-off, kill
//! containers failing liveness, and report the status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use tug_runtime::events::EventType;
use tug_runtime::ObjectKey;

use super::config;
use super::env::Sources;
use super::hooks;
use super::runtime::{Instance, PodRuntime};
use super::start::{start_container, Failure};
use super::status::{instances_of, is_sidecar, pod_status, Observed};
use super::volumes;
use super::{Kubelet, BACKOFF_MAX, BACKOFF_START};
use crate::cri::{self, api};

/// What can stop a sync (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime failed.
    #[error(transparent)]
    Cri(#[from] cri::Error),
    /// The API failed.
    #[error("api: {0}")]
    Api(#[from] kube::Error),
    /// A volume could not be set up.
    #[error(transparent)]
    Volume(#[from] volumes::Error),
    /// A host file could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Syncs the pod `key`; returns when to look again, if a back-off or a deadline needs it.
pub async fn sync(k: &Arc<Kubelet>, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let t = Instant::now();
    let r = sync_key(k, &key).await;
    tracing::debug!(
        pod = %format_args!("{}/{}", key.namespace, key.name),
        ms = t.elapsed().as_millis(),
        ok = r.is_ok(),
        "synced"
    );
    r
}

async fn sync_key(k: &Arc<Kubelet>, key: &ObjectKey) -> Result<Option<Duration>, Error> {
    let ns = &key.namespace;
    let pod = k.pods.get(key);
    let rt = PodRuntime::list(&k.cri, ns, &key.name).await?;
    let uid = pod
        .as_ref()
        .and_then(|p| p.metadata.uid.clone())
        .unwrap_or_default();
    // Other incarnations of this name, or everything when the pod is gone.
    let stale: Vec<api::PodSandbox> = rt
        .sandboxes
        .iter()
        .filter(|s| PodRuntime::uid_of(s) != uid)
        .cloned()
        .collect();
    for s in &stale {
        let grace = s
            .annotations
            .get(config::GRACE)
            .and_then(|g| g.parse().ok())
            .unwrap_or(30);
        teardown_sandbox(k, &rt, s, grace).await?;
        let old_uid = PodRuntime::uid_of(s).to_owned();
        let _ = volumes::teardown(&k.dirs.pods, &old_uid);
        k.tokens.forget(&old_uid);
        k.state().waiting.remove(&old_uid);
        k.state().backoff.retain(|(u, _), _| *u != old_uid);
    }
    let Some(pod) = pod else {
        return Ok(None);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return terminate(k, &pod, &rt).await.map(|_| None);
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        // Finished: containers stay for their logs, the sandbox goes (its IP is released).
        for s in rt.sandboxes.iter().filter(|s| PodRuntime::uid_of(s) == uid) {
            stop_running(k, &rt, &s.id, 0).await?;
            k.cri.stop_sandbox(&s.id).await?;
        }
        return Ok(None);
    }
    run(k, &pod, &rt).await
}

async fn stop_running(
    k: &Kubelet,
    rt: &PodRuntime,
    sandbox: &str,
    grace: i64,
) -> Result<(), Error> {
    let running: Vec<&Instance> = rt
        .instances
        .iter()
        .filter(|i| i.sandbox_id == sandbox && i.running())
        .collect();
    let stops = running.iter().map(|i| k.cri.stop_container(&i.id, grace));
    for r in futures::future::join_all(stops).await {
        r?;
    }
    Ok(())
}

async fn teardown_sandbox(
    k: &Kubelet,
    rt: &PodRuntime,
    s: &api::PodSandbox,
    grace: i64,
) -> Result<(), Error> {
    stop_running(k, rt, &s.id, grace).await?;
    k.cri.stop_sandbox(&s.id).await?;
    for i in rt.instances.iter().filter(|i| i.sandbox_id == s.id) {
        k.cri.remove_container(&i.id).await?;
    }
    k.cri.remove_sandbox(&s.id).await?;
    Ok(())
}

/// A pod being deleted: preStop hooks, SIGTERM, SIGKILL after the grace period, then the
/// sandbox goes and the pod is removed from the API.
async fn terminate(k: &Arc<Kubelet>, pod: &Pod, rt: &PodRuntime) -> Result<(), Error> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    let ours: Vec<&api::PodSandbox> = rt
        .sandboxes
        .iter()
        .filter(|s| PodRuntime::uid_of(s) == uid)
        .collect();
    let running: Vec<&Instance> = rt
        .instances
        .iter()
        .filter(|i| i.uid == uid && i.running())
        .collect();
    let spec = pod.spec.clone().unwrap_or_default();
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    let ip = &ip;
    let stops = running.iter().map(|i| {
        let c = container_named(&spec, &i.name);
        let k = k.clone();
        async move {
            if let Some(c) = c {
                k.recorder.event(
                    pod,
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", c.name),
                );
                if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
                    // The hook runs within the grace period; what is left of it (at least
                    // 2 s, as upstream) is the container's to stop.
                    let started = Instant::now();
                    let limit = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
                    if let Err(msg) = hooks::run(&k, c, &i.id, ip, hook, Some(limit)).await {
                        k.recorder
                            .event(pod, EventType::Warning, "FailedPreStopHook", msg);
                    }
                    let spent = i64::try_from(started.elapsed().as_secs()).unwrap_or(grace);
                    return k.cri.stop_container(&i.id, (grace - spent).max(2)).await;
                }
            }
            k.cri.stop_container(&i.id, grace).await
        }
    });
    for r in futures::future::join_all(stops).await {
        r?;
    }
    for s in &ours {
        teardown_sandbox(k, rt, s, 0).await?;
    }
    let _ = volumes::teardown(&k.dirs.pods, &uid);
    k.tokens.forget(&uid);
    if k.state().deleted.insert(uid.clone()) {
        let api: Api<Pod> = Api::namespaced(
            k.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                k.state().deleted.remove(&uid);
                return Err(e.into());
            }
        }
    }
    Ok(())
}

pub(crate) async fn exec_sync(
    k: &Kubelet,
    id: &str,
    cmd: Vec<String>,
    timeout: i64,
) -> Result<api::ExecSyncResponse, cri::Error> {
    Ok(k.cri
        .runtime
        .clone()
        .exec_sync(api::ExecSyncRequest {
            container_id: id.to_owned(),
            cmd,
            timeout,
        })
        .await
        .map_err(cri::call("ExecSync"))?
        .into_inner())
}

/// The container (regular or init) of `spec` named `name`.
fn container_named<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// What one pass decided for a container that is not running.
enum Next {
    /// Leave it (running, done, or waiting for its turn).
    Wait,
    /// Start it now.
    Start,
    /// Start it after the first duration; the second is the back-off being served.
    After(Duration, Duration),
}

fn backoff_key(uid: &str, name: &str) -> (String, String) {
    (uid.to_owned(), name.to_owned())
}

/// Whether a container whose latest instance exited may restart now.
fn restart_delay(k: &Kubelet, uid: &str, name: &str, last: &Instance) -> Next {
    let mut state = k.state();
    let finished = last.status.finished_at;
    let key = backoff_key(uid, name);
    // The back-off entry is keyed to the exit it was computed for: a new exit doubles it.
    let entry = state.backoff.get(&key).copied();
    let now = Instant::now();
    match entry {
        None => {
            state.backoff.insert(key, (BACKOFF_START, now));
            Next::Start
        }
        Some((delay, not_before)) => {
            if now >= not_before {
                // The exit happened after the last restart: wait out the current delay.
                let since_exit = Duration::from_nanos(
                    (Timestamp::now().as_nanosecond() - i128::from(finished)).max(0) as u64,
                );
                if since_exit >= delay {
                    state
                        .backoff
                        .insert(key, ((delay * 2).min(BACKOFF_MAX), now + delay));
                    Next::Start
                } else {
                    Next::After(delay - since_exit, delay)
                }
            } else {
                Next::After(not_before - now, delay)
            }
        }
    }
}

/// A running pod's sync.
async fn run(k: &Arc<Kubelet>, pod: &Pod, rt: &PodRuntime) -> Result<Option<Duration>, Error> {
    let (name, _, uid) = config::ids(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let restart = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let host_network = spec.host_network.unwrap_or(false);
    let mut requeue: Option<Duration> = None;
    let mut soonest = |d: Duration| {
        requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    };

    // Sandbox.
    let mut instances = rt.of_uid(uid);
    let (sandbox_id, sandbox_config, new_sandbox) = match rt.ready_sandbox(uid) {
        Some(s) => {
            let attempt = s.metadata.as_ref().map_or(0, |m| m.attempt);
            let cfg = config::sandbox(pod, attempt, &k.dirs.logs, &k.dns);
            (s.id.clone(), cfg, false)
        }
        None => {
            // A pod whose containers all finished for good does not get a new sandbox.
            let done = !instances.is_empty()
                && restart != "Always"
                && spec.containers.iter().all(|c| {
                    instances_of(&instances, &c.name).last().is_some_and(|i| {
                        i.exited() && (restart == "Never" || i.status.exit_code == 0)
                    })
                });
            if done {
                return report(k, pod, rt, None).await.map(|_| None);
            }
            let attempt = rt
                .sandboxes
                .iter()
                .filter(|s| PodRuntime::uid_of(s) == uid)
                .count() as u32;
            for s in rt.sandboxes.iter().filter(|s| PodRuntime::uid_of(s) == uid) {
                teardown_sandbox(k, rt, s, 0).await?;
            }
            instances.clear();
            std::fs::create_dir_all(config::log_directory(&k.dirs.logs, pod))?;
            let cfg = config::sandbox(pod, attempt, &k.dirs.logs, &k.dns);
            let t = Instant::now();
            let id = k
                .cri
                .runtime
                .clone()
                .run_pod_sandbox(api::RunPodSandboxRequest {
                    config: Some(cfg.clone()),
                    runtime_handler: String::new(),
                })
                .await
                .map_err(cri::call("RunPodSandbox"));
            let id = match id {
                Ok(r) => {
                    tracing::debug!(pod = %key_of(pod), ms = t.elapsed().as_millis(), "sandbox created");
                    r.into_inner().pod_sandbox_id
                }
                Err(e) => {
                    k.recorder.event(
                        pod,
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                    return Err(e.into());
                }
            };
            (id, cfg, true)
        }
    };
    let ip = if host_network {
        k.node_ip.clone()
    } else {
        let status = k.cri.sandbox_status(&sandbox_id).await?;
        status.network.map(|n| n.ip).unwrap_or_default()
    };
    let pod_ips: Vec<String> = vec![ip.clone()]
        .into_iter()
        .filter(|i| !i.is_empty())
        .collect();
    let pod_dir = volumes::pod_dir(&k.dirs.pods, uid);
    let hosts = pod_dir.join("etc-hosts");
    if !host_network {
        std::fs::create_dir_all(&pod_dir)?;
        let text = config::hosts_file(pod, &ip);
        if std::fs::read_to_string(&hosts).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&hosts, text)?;
        }
    }

    // Volumes.
    let tokens = match k.tokens.for_pod(k, pod).await {
        Ok(t) => t,
        Err(e) => {
            let volume = pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .find(|v| v.projected.is_some())
                .map_or("", |v| v.name.as_str());
            let e = volumes::Error::Setup {
                volume: volume.to_owned(),
                reason: format!("failed to fetch token: {e}"),
            };
            k.recorder
                .event(pod, EventType::Warning, "FailedMount", e.to_string());
            report(k, pod, rt, Some(ip)).await?;
            return Err(e.into());
        }
    };
    let vctx = volumes::Context {
        sources: Sources {
            config_maps: &k.config_maps,
            secrets: &k.secrets,
        },
        claims: &k.claims,
        volumes: &k.volumes,
        host_ip: &k.node_ip,
        pod_ips: &pod_ips,
        tokens: &tokens,
    };
    let vols = match volumes::setup(&k.dirs.pods, pod, &vctx) {
        Ok(v) => v,
        Err(e) => {
            k.recorder
                .event(pod, EventType::Warning, "FailedMount", e.to_string());
            report(k, pod, rt, Some(ip)).await?;
            return Err(e.into());
        }
    };

    // Liveness and startup failures: kill, the restart policy decides the rest.
    let mut killed = false;
    for i in instances.iter().filter(|i| i.running()) {
        if let Some(reason) = k.probes.take_failure(&i.id) {
            k.recorder.event(
                pod,
                EventType::Normal,
                "Killing",
                format!("Container {} {reason}, will be restarted", i.name),
            );
            let grace = spec.termination_grace_period_seconds.unwrap_or(30);
            k.cri.stop_container(&i.id, grace).await?;
            killed = true;
        }
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    // What the runtime holds now: listed again only when this pass changed it.
    let instances = if killed {
        PodRuntime::list(&k.cri, namespace, name)
            .await?
            .of_uid(uid)
            .into_iter()
            .filter(|i| i.sandbox_id == sandbox_id)
            .collect::<Vec<_>>()
    } else {
        instances
            .into_iter()
            .filter(|i| i.sandbox_id == sandbox_id)
            .collect()
    };

    let plan = |c: &Container, init: bool| -> Next {
        let all = instances_of(&instances, &c.name);
        match all.last() {
            None => Next::Start,
            Some(l) if l.running() => Next::Wait,
            Some(l) if !l.exited() => Next::Wait,
            Some(l) => {
                let policy = if init && !is_sidecar(c) {
                    if restart == "Never" {
                        "Never"
                    } else {
                        "OnFailure"
                    }
                } else if init {
                    "Always"
                } else {
                    restart.as_str()
                };
                let again = match policy {
                    "Always" => true,
                    "OnFailure" => l.status.exit_code != 0,
                    _ => false,
                };
                if again {
                    restart_delay(k, uid, &c.name, l)
                } else {
                    Next::Wait
                }
            }
        }
    };
    let mut waiting: HashMap<String, (String, String)> =
        k.state().waiting.get(uid).cloned().unwrap_or_default();
    // Init containers one at a time (sidecars started and kept), then every container.
    let mut planned: Vec<(&Container, Next)> = Vec::new();
    let mut initialized = true;
    for c in spec.init_containers.iter().flatten() {
        let all = instances_of(&instances, &c.name);
        let last = all.last();
        if is_sidecar(c) {
            planned.push((c, plan(c, true)));
            if !last.is_some_and(|l| l.running() && k.probes.started(c, &l.id)) {
                initialized = false;
                break;
            }
            continue;
        }
        if last.is_some_and(|l| l.exited() && l.status.exit_code == 0) {
            continue;
        }
        initialized = false;
        planned.push((c, plan(c, true)));
        break;
    }
    if initialized {
        planned.extend(spec.containers.iter().map(|c| (c, plan(c, false))));
    }
    let mut start: Vec<&Container> = Vec::new();
    for (c, next) in planned {
        match next {
            Next::Start => start.push(c),
            Next::After(d, backoff) => {
                soonest(d);
                waiting.insert(c.name.clone(), crash_loop(c, pod, backoff));
            }
            Next::Wait => {}
        }
    }
    // Then ephemeral containers never started: once each, maybe in a target's processes.
    let ephemeral = super::ephemeral::of(pod);
    let mut starts: Vec<(&Container, u32, Option<String>)> = Vec::new();
    for c in start {
        waiting.remove(&c.name);
        let attempt = rt
            .instances
            .iter()
            .filter(|i| i.uid == uid && i.name == c.name)
            .map(|i| i.attempt + 1)
            .max()
            .unwrap_or(0);
        starts.push((c, attempt, None));
    }
    for (c, target) in super::ephemeral::to_start(&ephemeral, &instances) {
        starts.push((
            c,
            0,
            super::ephemeral::target_id(target.as_deref(), &instances),
        ));
    }
    let mut started = false;
    for (c, attempt, target) in starts {
        match start_container(
            k,
            pod,
            c,
            attempt,
            &sandbox_id,
            &sandbox_config,
            &vols,
            &pod_ips,
            (!host_network).then_some(hosts.as_path()),
            target.as_deref(),
        )
        .await
        {
            Ok(()) => started = true,
            Err(Failure::Waiting(reason, message, delay)) => {
                if let Some(d) = delay {
                    soonest(d);
                }
                waiting.insert(c.name.clone(), (reason, message));
            }
            Err(Failure::Other(e)) => return Err(e),
        }
    }
    k.state().waiting.insert(uid.to_owned(), waiting);
    prune_exited(k, &instances).await;
    let relisted;
    let now = if killed || started || new_sandbox {
        relisted = PodRuntime::list(&k.cri, namespace, name).await?;
        &relisted
    } else {
        rt
    };
    for i in now.of_uid(uid).iter().filter(|i| i.running()) {
        if let Some(c) = container_named(&spec, &i.name) {
            k.probes.ensure(k, pod, c, &i.id, &ip);
        }
    }
    report(k, pod, now, Some(ip)).await?;
    Ok(requeue)
}

/// The waiting reason and message of a container in back-off, as upstream's: the back-off
/// being served (10s, 20s, 40s, … 5m0s), not the time left.
fn crash_loop(c: &Container, pod: &Pod, backoff: Duration) -> (String, String) {
    let (name, ns, uid) = config::ids(pod);
    (
        "CrashLoopBackOff".into(),
        format!(
            "back-off {} restarting failed container={} pod={name}_{ns}({uid})",
            tug_api::go_duration(i64::try_from(backoff.as_nanos()).unwrap_or(i64::MAX)),
            c.name
        ),
    )
}

/// Removes exited instances older than the previous one of each container (the previous
/// one stays for `logs --previous`).
async fn prune_exited(k: &Kubelet, instances: &[Instance]) {
    let mut by_name: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for i in instances {
        by_name.entry(i.name.as_str()).or_default().push(i);
    }
    for (_, mut v) in by_name {
        v.sort_by_key(|i| i.attempt);
        let n = v.len();
        for i in v
            .into_iter()
            .take(n.saturating_sub(2))
            .filter(|i| i.exited())
        {
            let _ = k.cri.remove_container(&i.id).await;
        }
    }
}

/// `namespace/name` of a pod, for logs.
pub(crate) fn key_of(pod: &Pod) -> String {
    let (name, ns, _) = config::ids(pod);
    format!("{ns}/{name}")
}

/// Computes the status and writes it when it changed.
async fn report(k: &Kubelet, pod: &Pod, rt: &PodRuntime, ip: Option<String>) -> Result<(), Error> {
    let (_, ns, uid) = config::ids(pod);
    let instances = rt.of_uid(uid);
    let waiting = k.state().waiting.get(uid).cloned().unwrap_or_default();
    let ready = |c: &Container, id: &str| k.probes.ready(c, id);
    let started = |c: &Container, id: &str| k.probes.started(c, id);
    let status = pod_status(&Observed {
        pod,
        sandbox_ip: ip.filter(|i| !i.is_empty()),
        instances: &instances,
        waiting: &waiting,
        ready: &ready,
        started: &started,
        host_ip: &k.node_ip,
        now: Timestamp::now(),
    });
    if pod.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<Pod> = Api::namespaced(k.client.clone(), ns);
    tracing::debug!(pod = %key_of(pod), phase = ?status.phase, "reporting status");
    let patch = serde_json::json!({ "status": status });
    api.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn back_off_reads_as_go_durations() {
        let s = |n: i64| tug_api::go_duration(n * 1_000_000_000);
        assert_eq!(s(10), "10s");
        assert_eq!(s(80), "1m20s");
        assert_eq!(s(300), "5m0s");
        assert_eq!(s(3700), "1h1m40s");
    }
}
