//! What a hollow kubelet reports for a pod: the status upstream's kubelet would write for the
//! same pod at the same point of its life (phase, IPs, conditions, container statuses, QoS
//! class), computed from the pod and the simulated run ([`PodRun`]). Pure functions, so the
//! rules are tested without an apiserver.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// How a finished run of the pod's containers ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code.
    pub code: i32,
    /// When that run started.
    pub started: Timestamp,
    /// When it ended.
    pub finished: Timestamp,
}

/// Where the simulated containers are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Running since the given time.
    Running(Timestamp),
    /// Waiting out a crash-loop back-off after a failed run (restartPolicy OnFailure).
    BackOff {
        /// The back-off, for the message.
        seconds: u64,
    },
    /// Finished for good (the pod is Succeeded or Failed).
    Exited(Exit),
}

/// The simulated life of one pod on a hollow node.
#[derive(Clone, Debug)]
pub struct PodRun {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// When the kubelet took the pod up (status.startTime).
    pub started: Timestamp,
    /// How many times the containers were restarted.
    pub restarts: i32,
    /// The previous run, once there was one that failed.
    pub last: Option<Exit>,
    /// Where the containers are now.
    pub stage: Stage,
}

/// The time now, to the second (what `metav1.Time` keeps), so a status written and read
/// back compares equal.
pub fn now_seconds() -> Timestamp {
    seconds(Timestamp::now())
}

/// `t` truncated to the second.
pub fn seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The status to report for `pod` given its run, on a node whose address is `host_ip`.
pub fn pod_status(pod: &Pod, run: &PodRun, host_ip: &str, now: Timestamp) -> PodStatus {
    let current = pod.status.clone().unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let who = format!(
        "{}_{}({uid})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default()
    );
    let spec = pod.spec.clone().unwrap_or_default();
    let phase = match &run.stage {
        Stage::Running(_) | Stage::BackOff { .. } => "Running",
        Stage::Exited(e) if e.code == 0 => "Succeeded",
        Stage::Exited(_) => "Failed",
    };
    let mut containers: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, uid, &who, run))
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| init_container_status(c, uid, run))
        .collect();
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let completed = phase == "Succeeded";
    let running = phase == "Running";
    let mut ours: Vec<(&str, bool, Option<String>, Option<String>)> = Vec::new();
    ours.push(("PodReadyToStartContainers", running, None, None));
    ours.push((
        "Initialized",
        true,
        completed.then(|| "PodCompleted".to_owned()),
        None,
    ));
    let containers_ready = if completed {
        (false, Some("PodCompleted".to_owned()), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady".to_owned()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let gates_unready = readiness_gates_unready(pod, &current);
    let ready = if containers_ready.0 && !gates_unready.is_empty() {
        let missing = gates_unready
            .iter()
            .map(|g| {
                format!("corresponding condition of pod readiness gate \"{g}\" does not exist.")
            })
            .collect::<Vec<_>>()
            .join(", ");
        (
            false,
            Some("ReadinessGatesNotReady".to_owned()),
            Some(missing),
        )
    } else {
        containers_ready.clone()
    };
    ours.push(("Ready", ready.0, ready.1, ready.2));
    ours.push((
        "ContainersReady",
        containers_ready.0,
        containers_ready.1,
        containers_ready.2,
    ));
    let old = current.conditions.clone().unwrap_or_default();
    let mut conditions: Vec<PodCondition> = ours
        .into_iter()
        .map(|(type_, ok, reason, message)| {
            condition(
                &old,
                type_,
                if ok { "True" } else { "False" },
                reason,
                message,
                now,
            )
        })
        .collect();
    let scheduled = old
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition(&old, "PodScheduled", "True", None, None, now));
    conditions.push(scheduled);
    let owned = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    conditions.extend(
        old.iter()
            .filter(|c| !owned.contains(&c.type_.as_str()))
            .cloned(),
    );
    let ip = run.ip.to_string();
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_owned(),
        }]),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        start_time: Some(Time(run.started)),
        container_statuses: Some(containers),
        init_container_statuses: (!init.is_empty()).then_some(init),
        qos_class: Some(qos_class(pod).to_owned()),
        ..current
    }
}

fn condition(
    old: &[PodCondition],
    type_: &str,
    status: &str,
    reason: Option<String>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let prev = old.iter().find(|c| c.type_ == type_);
    let since = prev
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason,
        message,
        last_transition_time: Some(since),
        last_probe_time: None,
        observed_generation: prev.and_then(|c| c.observed_generation),
    }
}

/// The readiness gates whose condition is not True.
fn readiness_gates_unready(pod: &Pod, status: &PodStatus) -> Vec<String> {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let conds = status.conditions.as_deref().unwrap_or_default();
    gates
        .iter()
        .filter(|g| {
            !conds
                .iter()
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
        .map(|g| g.condition_type.clone())
        .collect()
}

/// A fake 64-hex-digit id, stable for the same inputs.
pub fn fake_id(parts: &[&str]) -> String {
    (0u8..4)
        .map(|salt| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            salt.hash(&mut h);
            parts.hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect()
}

fn image_id(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    format!("{repo}@sha256:{}", fake_id(&[image]))
}

fn terminated(e: &Exit, id: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: e.code,
            reason: Some(if e.code == 0 { "Completed" } else { "Error" }.to_owned()),
            started_at: Some(Time(e.started)),
            finished_at: Some(Time(e.finished)),
            container_id: Some(id.to_owned()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

fn container_status(c: &Container, uid: &str, who: &str, run: &PodRun) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    let attempt = run.restarts.to_string();
    let id = format!("hollow://{}", fake_id(&[uid, &c.name, &attempt]));
    let (state, ready, started) = match &run.stage {
        Stage::Running(since) => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*since)),
                }),
                ..ContainerState::default()
            },
            true,
            true,
        ),
        Stage::BackOff { seconds } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".to_owned()),
                    message: Some(format!(
                        "back-off {seconds}s restarting failed container={} pod={who}",
                        c.name
                    )),
                }),
                ..ContainerState::default()
            },
            false,
            false,
        ),
        Stage::Exited(e) => (terminated(e, &id), false, false),
    };
    let last_state = run.last.as_ref().map(|e| {
        let prev = (run.restarts - 1).max(0).to_string();
        terminated(e, &format!("hollow://{}", fake_id(&[uid, &c.name, &prev])))
    });
    ContainerStatus {
        name: c.name.clone(),
        image_id: image_id(&image),
        image,
        container_id: (!matches!(run.stage, Stage::BackOff { .. })).then_some(id),
        ready,
        started: Some(started),
        restart_count: run.restarts,
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

fn init_container_status(c: &Container, uid: &str, run: &PodRun) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    let id = format!("hollow://{}", fake_id(&[uid, &c.name, "init"]));
    let sidecar = c.restart_policy.as_deref() == Some("Always");
    let state = if sidecar && matches!(run.stage, Stage::Running(_) | Stage::BackOff { .. }) {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(run.started)),
            }),
            ..ContainerState::default()
        }
    } else {
        let finished = match &run.stage {
            Stage::Exited(e) if sidecar => e.finished,
            _ => run.started,
        };
        terminated(
            &Exit {
                code: 0,
                started: run.started,
                finished,
            },
            &id,
        )
    };
    let running = state.running.is_some();
    ContainerStatus {
        name: c.name.clone(),
        image_id: image_id(&image),
        image,
        container_id: Some(id),
        ready: running || !sidecar,
        started: Some(running),
        restart_count: 0,
        state: Some(state),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    }
}

/// A quantity as a number (`100m` → 0.1, `1Gi` → 1073741824); `None` if unreadable.
pub fn quantity(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * factor)
}

/// The pod's QoS class by upstream's rules: BestEffort when no container asks for or limits
/// CPU or memory; Guaranteed when every container limits both and asks for exactly its
/// limits (a missing request defaults to the limit); Burstable otherwise.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let mut requests: BTreeMap<&str, f64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, f64> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let res = c.resources.clone().unwrap_or_default();
        let lim = res.limits.unwrap_or_default();
        let mut req = res.requests.unwrap_or_default();
        for (k, v) in &lim {
            req.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut found = 0;
        for name in ["cpu", "memory"] {
            if let Some(v) = req.get(name).and_then(quantity).filter(|v| *v > 0.0) {
                *requests.entry(name).or_default() += v;
            }
            if let Some(v) = lim.get(name).and_then(quantity).filter(|v| *v > 0.0) {
                *limits.entry(name).or_default() += v;
                found += 1;
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let equal = requests.len() == limits.len()
        && requests
            .iter()
            .all(|(k, v)| limits.get(k).is_some_and(|l| (l - v).abs() < 1e-9));
    if guaranteed && equal {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests;
