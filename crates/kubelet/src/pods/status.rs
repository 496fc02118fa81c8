//! The pod status a kubelet reports, computed from what the runtime shows: phase by
//! upstream's rules, the kubelet's conditions (PodReadyToStartContainers, Initialized,
//! ContainersReady, Ready), IPs, and a status per container (state, last state, restarts,
//! readiness) — waiting reasons such as CrashLoopBackOff or ErrImagePull come from the sync.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::runtime::Instance;

/// The conditions the kubelet owns; others (PodScheduled, DisruptionTarget) are kept.
pub const OWNED: &[&str] = &[
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// What the status is computed from.
pub struct Observed<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The pod's IP when its sandbox is ready (the node's for host-network pods).
    pub sandbox_ip: Option<String>,
    /// Every container instance of this pod uid, newest attempt last per name.
    pub instances: &'a [Instance],
    /// Waiting reasons and messages set by the sync, by container name.
    pub waiting: &'a HashMap<String, (String, String)>,
    /// Whether a container (by id) passed its readiness probe (true without one).
    pub ready: &'a dyn Fn(&Container, &str) -> bool,
    /// Whether a container (by id) passed its startup probe (true without one).
    pub started: &'a dyn Fn(&Container, &str) -> bool,
    /// The node's IP.
    pub host_ip: &'a str,
    /// Now.
    pub now: Timestamp,
}

/// Nanoseconds since the epoch as an API time (seconds precision, as the API keeps).
pub fn time(nanos: i64) -> Option<Time> {
    if nanos <= 0 {
        return None;
    }
    Timestamp::from_second(nanos / 1_000_000_000).ok().map(Time)
}

/// The instances of container `name`, oldest first.
pub fn instances_of<'a>(all: &'a [Instance], name: &str) -> Vec<&'a Instance> {
    let mut v: Vec<&Instance> = all.iter().filter(|i| i.name == name).collect();
    v.sort_by_key(|i| (i.attempt, i.status.created_at));
    v
}

fn terminated(i: &Instance) -> ContainerStateTerminated {
    let s = &i.status;
    let reason = if !s.reason.is_empty() {
        s.reason.clone()
    } else if s.exit_code == 0 {
        "Completed".to_owned()
    } else {
        "Error".to_owned()
    };
    let message = s
        .annotations
        .get(super::config::TERMINATION_MESSAGE)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .filter(|m| !m.is_empty())
        .or_else(|| Some(s.message.clone()).filter(|m| !m.is_empty()));
    ContainerStateTerminated {
        exit_code: s.exit_code,
        reason: Some(reason),
        message,
        started_at: time(s.started_at),
        finished_at: time(s.finished_at),
        container_id: Some(format!("containerd://{}", i.id)),
        signal: None,
    }
}

fn container_status(o: &Observed<'_>, c: &Container, default_waiting: &str) -> ContainerStatus {
    let all = instances_of(o.instances, &c.name);
    let latest = all.last().copied();
    let previous = all.iter().rev().nth(1).copied();
    let waiting = o.waiting.get(&c.name);
    let mut last_state = previous.filter(|p| p.exited()).map(|p| ContainerState {
        terminated: Some(terminated(p)),
        ..ContainerState::default()
    });
    let state = match (latest, waiting) {
        (Some(l), _) if l.running() => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(l.status.started_at),
            }),
            ..ContainerState::default()
        },
        (Some(l), Some((reason, message))) if l.exited() => {
            // Exited and waiting to be restarted: the exit becomes the last state.
            last_state = Some(ContainerState {
                terminated: Some(terminated(l)),
                ..ContainerState::default()
            });
            waiting_state(reason, message)
        }
        (Some(l), _) if l.exited() => ContainerState {
            terminated: Some(terminated(l)),
            ..ContainerState::default()
        },
        (_, Some((reason, message))) => waiting_state(reason, message),
        _ => waiting_state(default_waiting, ""),
    };
    let ready = latest.is_some_and(|l| l.running() && (o.ready)(c, &l.id));
    let started = latest.map(|l| l.running() && (o.started)(c, &l.id));
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest
            .map(|l| l.status.image_ref.clone())
            .unwrap_or_default(),
        container_id: latest.map(|l| format!("containerd://{}", l.id)),
        ready,
        started,
        restart_count: latest.map_or(0, |l| l.attempt as i32),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

fn waiting_state(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()).filter(|m| !m.is_empty()),
        }),
        ..ContainerState::default()
    }
}

/// Whether an init container is a native sidecar.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Computes the status to report.
pub fn pod_status(o: &Observed<'_>) -> PodStatus {
    let pod = o.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let restart = spec.restart_policy.as_deref().unwrap_or("Always");
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(o, c, "PodInitializing"))
        .collect();
    let init_pending: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&init)
        .filter(|(c, s)| {
            let st = s.state.as_ref();
            if is_sidecar(c) {
                !s.started.unwrap_or(false)
            } else {
                st.and_then(|s| s.terminated.as_ref())
                    .is_none_or(|t| t.exit_code != 0)
            }
        })
        .map(|(c, _)| c.name.as_str())
        .collect();
    let initialized = init_pending.is_empty();
    let main_default = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let main: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(o, c, main_default))
        .collect();
    // Ephemeral containers are never ready, as upstream reports them.
    let ephemeral: Vec<ContainerStatus> = super::ephemeral::of(pod)
        .iter()
        .map(|(c, _)| ContainerStatus {
            ready: false,
            ..container_status(o, c, "ContainerCreating")
        })
        .collect();
    let init_failed = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&init)
        .any(|(c, s)| {
            !is_sidecar(c)
                && s.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some_and(|t| t.exit_code != 0)
        });
    let phase = if !initialized {
        if init_failed && restart == "Never" {
            "Failed"
        } else {
            "Pending"
        }
    } else {
        phase(&main, restart)
    };
    let unready: Vec<&str> = main
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let sidecars_unready = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&init)
        .any(|(c, s)| is_sidecar(c) && !s.ready);
    let all_ready = unready.is_empty() && !sidecars_unready && initialized;
    let completed = matches!(phase, "Succeeded" | "Failed");
    let mut conditions: Vec<PodCondition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !OWNED.contains(&c.type_.as_str()))
        .collect();
    let mut cond = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let prev = old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == status);
        conditions.push(PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: if ok { None } else { reason.map(str::to_owned) },
            message: if ok { None } else { message },
            last_transition_time: Some(
                prev.and_then(|c| c.last_transition_time.clone())
                    .unwrap_or(Time(o.now)),
            ),
            ..PodCondition::default()
        });
    };
    cond(
        "PodReadyToStartContainers",
        o.sandbox_ip.is_some() || completed,
        None,
        None,
    );
    let incomplete = format!(
        "containers with incomplete status: [{}]",
        init_pending.join(" ")
    );
    cond(
        "Initialized",
        initialized || (completed && init_pending.is_empty()),
        Some("ContainersNotInitialized"),
        Some(incomplete),
    );
    let (reason, message) = if completed {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    cond(
        "ContainersReady",
        all_ready && !completed,
        Some(reason),
        message.clone(),
    );
    cond("Ready", all_ready && !completed, Some(reason), message);
    conditions.sort_by_key(|c| order(&c.type_));
    let pod_ip = o.sandbox_ip.clone().or(old.pod_ip.clone());
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(o.host_ip.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: o.host_ip.to_owned(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.start_time.clone().or(Some(Time(o.now))),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(main),
        ephemeral_container_statuses: (!ephemeral.is_empty()).then_some(ephemeral),
        qos_class: old.qos_class.clone(),
        ..old
    }
}

fn order(type_: &str) -> usize {
    match type_ {
        "PodReadyToStartContainers" => 0,
        "Initialized" => 1,
        "Ready" => 2,
        "ContainersReady" => 3,
        "PodScheduled" => 4,
        _ => 5,
    }
}

/// The phase from the main containers' statuses, as upstream's getPhase.
pub fn phase(statuses: &[ContainerStatus], restart: &str) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == statuses.len() && stopped > 0 {
        match restart {
            "Always" => "Running",
            _ if succeeded == stopped => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}
