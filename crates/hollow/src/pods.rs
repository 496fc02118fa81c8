//! The pod worker of the hollow kubelets: every pod bound to one of this process's nodes is
//! synced here, from the shared pod informer's store.
//!
//! - A new pod gets an IP from its node's podCIDR (it waits until the nodeipam controller
//!   gave the node one) and goes Running.
//! - A pod whose restartPolicy is Never or OnFailure runs for
//!   `hollow.tugboat.dev/run-seconds` (default [`crate::Options::run_duration`]) and exits
//!   with `hollow.tugboat.dev/exit-code` (default 0): 0 makes it Succeeded; otherwise Never
//!   makes it Failed and OnFailure restarts it (the first restart at once, then after a
//!   crash-loop back-off of 10 s doubling to 5 min, as upstream's kubelet).
//! - A pod being deleted (deletionTimestamp) is deleted with gracePeriodSeconds 0, as a
//!   kubelet does once the containers are stopped; its IP is given back, as it is when the
//!   pod finishes.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use tokio::time::Instant;
use tug_runtime::ObjectKey;

use crate::ipam::{Cidr, PodIps};
use crate::status::{self, now_seconds, Exit, PodRun, Stage};
use crate::{Error, Shared};

/// How long the containers of a finishing pod run (seconds, a decimal number).
pub const RUN_SECONDS: &str = "hollow.tugboat.dev/run-seconds";
/// The exit code of a finishing pod's containers.
pub const EXIT_CODE: &str = "hollow.tugboat.dev/exit-code";
/// The first crash-loop back-off.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// The longest crash-loop back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a pod waits before looking again for its node's podCIDR (the node informer also
/// wakes it when the CIDR arrives).
const WAIT_FOR_CIDR: Duration = Duration::from_secs(5);

/// A pod this process runs.
#[derive(Debug)]
pub struct Tracked {
    uid: String,
    node: String,
    run: PodRun,
    /// When the current run (or back-off) ends; `None` for pods that run forever.
    until: Option<Instant>,
    /// The status last written and the resourceVersion of the copy it was computed from, so
    /// the informer's copy from before that write does not cause a second one.
    written: Option<(Option<String>, PodStatus)>,
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// How long this pod's containers run before they exit; `None` if they run until deleted.
pub fn run_for(pod: &Pod, default: Duration) -> Option<Duration> {
    if restart_policy(pod) == "Always" {
        return None;
    }
    Some(
        annotation(pod, RUN_SECONDS)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(default, Duration::from_secs_f64),
    )
}

/// The exit code this pod's containers end with.
pub fn exit_code(pod: &Pod) -> i32 {
    annotation(pod, EXIT_CODE)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The crash-loop back-off before restart number `restarts + 1`.
pub fn backoff(restarts: i32) -> Duration {
    let exp = (restarts - 1).clamp(0, 16) as u32;
    BACKOFF_INITIAL.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// Moves a run on to `now`: a run that is over exits (and restarts, or backs off), a
/// back-off that is over restarts.
pub fn advance(
    run: &mut PodRun,
    until: &mut Option<Instant>,
    pod: &Pod,
    default_run: Duration,
    now: Instant,
) {
    let Some(end) = *until else {
        return;
    };
    if now < end {
        return;
    }
    let wall = now_seconds();
    let run_for = run_for(pod, default_run).unwrap_or(default_run);
    match run.stage.clone() {
        Stage::Running(since) => {
            let exit = Exit {
                code: exit_code(pod),
                started: since,
                finished: wall,
            };
            if exit.code == 0 || restart_policy(pod) == "Never" {
                run.stage = Stage::Exited(exit);
                *until = None;
            } else if run.restarts == 0 {
                run.last = Some(exit);
                run.restarts += 1;
                run.stage = Stage::Running(wall);
                *until = Some(now + run_for);
            } else {
                run.last = Some(exit);
                let wait = backoff(run.restarts);
                run.stage = Stage::BackOff {
                    seconds: wait.as_secs(),
                };
                *until = Some(now + wait);
            }
        }
        Stage::BackOff { .. } => {
            run.restarts += 1;
            run.stage = Stage::Running(wall);
            *until = Some(now + run_for);
        }
        Stage::Exited(_) => *until = None,
    }
}

/// Stops tracking a pod and gives its IP back.
fn forget(shared: &Shared, key: &ObjectKey) {
    let Some(t) = shared.runs().remove(key) else {
        return;
    };
    if let Some(ips) = shared.ips().get_mut(&t.node) {
        ips.release(t.run.ip);
    }
}

/// Starts tracking a pod: adopts the IP and times of a pod already Running (this process
/// restarted), or takes a new IP.
fn start(shared: &Shared, pod: &Pod, node: &str, cidr: Cidr) -> Result<Tracked, Error> {
    let mut all = shared.ips();
    let ips = all
        .entry(node.to_owned())
        .or_insert_with(|| PodIps::new(cidr));
    if ips.cidr() != cidr {
        *ips = PodIps::new(cidr);
    }
    let status = pod.status.clone().unwrap_or_default();
    let running = status.phase.as_deref() == Some("Running");
    let adopted = status
        .pod_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .filter(|ip| running && ips.reserve(*ip));
    let ip = match adopted {
        Some(ip) => ip,
        None => ips.allocate().ok_or_else(|| Error::NoPodIp {
            node: node.to_owned(),
            cidr: cidr.to_string(),
        })?,
    };
    let now = now_seconds();
    let started = adopted
        .and(status.start_time.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let first = status.container_statuses.as_ref().and_then(|c| c.first());
    let restarts = adopted.and(first.map(|c| c.restart_count)).unwrap_or(0);
    let since = adopted
        .and(first.and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.clone()))
        .map_or(now, |t| t.0);
    let until = run_for(pod, shared.options.run_duration).map(|d| Instant::now() + d);
    Ok(Tracked {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        node: node.to_owned(),
        run: PodRun {
            ip,
            started,
            restarts,
            last: None,
            stage: Stage::Running(since),
        },
        until,
        written: None,
    })
}

/// Syncs one pod: answers when to look at it again.
pub async fn sync(shared: &Shared, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let Some(pod) = shared.pod_store.get(&key) else {
        forget(shared, &key);
        return Ok(None);
    };
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let Some(hollow) = shared.nodes.get(&node_name) else {
        forget(shared, &key);
        return Ok(None);
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if shared.runs().get(&key).is_some_and(|t| t.uid != uid) {
        forget(shared, &key);
    }
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    if pod.metadata.deletion_timestamp.is_some() {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&key.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        forget(shared, &key);
        return Ok(None);
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        forget(shared, &key);
        return Ok(None);
    }
    let cidr = shared
        .node_store
        .get(&ObjectKey::cluster(&node_name))
        .and_then(|n| n.spec.as_ref()?.pod_cidr.clone())
        .and_then(|c| Cidr::parse(&c));
    let Some(cidr) = cidr else {
        return Ok(Some(WAIT_FOR_CIDR));
    };
    let (desired, next) = {
        let tracked = match shared.runs().remove(&key) {
            Some(t) => Ok(t),
            None => start(shared, &pod, &node_name, cidr),
        };
        let mut t = tracked?;
        let now = Instant::now();
        advance(
            &mut t.run,
            &mut t.until,
            &pod,
            shared.options.run_duration,
            now,
        );
        let desired = status::pod_status(&pod, &t.run, &hollow.ip.to_string(), now_seconds());
        let next = t.until.map(|u| u.saturating_duration_since(now));
        let version = pod.metadata.resource_version.clone();
        let stale = t
            .written
            .as_ref()
            .is_some_and(|(rv, st)| *rv == version && *st == desired);
        let unchanged = stale || pod.status.as_ref() == Some(&desired);
        t.written = Some((version, desired.clone()));
        shared.runs().insert(key.clone(), t);
        (Some(desired).filter(|_| !unchanged), next)
    };
    if let Some(status) = desired {
        let patch = serde_json::json!({ "status": status });
        if let Err(e) = api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            if let Some(t) = shared.runs().get_mut(&key) {
                t.written = None;
            }
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                return Ok(None);
            }
            return Err(e.into());
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(policy: &str, annotations: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "p", "namespace": "default", "uid": "u1",
                "annotations": annotations.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            },
            "spec": { "restartPolicy": policy, "containers": [{ "name": "c", "image": "busybox" }] },
        }))
        .unwrap_or_else(|e| panic!("pod: {e}"))
    }

    fn fresh() -> PodRun {
        PodRun {
            ip: Ipv4Addr::new(10, 42, 0, 2),
            started: now_seconds(),
            restarts: 0,
            last: None,
            stage: Stage::Running(now_seconds()),
        }
    }

    #[test]
    fn annotations_steer_the_run() {
        let d = Duration::from_millis(500);
        assert_eq!(run_for(&pod("Always", &[]), d), None);
        assert_eq!(run_for(&pod("Never", &[]), d), Some(d));
        assert_eq!(
            run_for(&pod("OnFailure", &[(RUN_SECONDS, "2.5")]), d),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(exit_code(&pod("Never", &[(EXIT_CODE, "3")])), 3);
        assert_eq!(exit_code(&pod("Never", &[(EXIT_CODE, "x")])), 0);
    }

    #[test]
    fn never_fails_and_on_failure_restarts_then_backs_off() {
        let d = Duration::from_millis(10);
        let now = Instant::now();
        let never = pod("Never", &[(EXIT_CODE, "3")]);
        let (mut run, mut until) = (fresh(), Some(now));
        advance(&mut run, &mut until, &never, d, now);
        assert!(matches!(run.stage, Stage::Exited(Exit { code: 3, .. })));
        assert_eq!(until, None);

        let on_failure = pod("OnFailure", &[(EXIT_CODE, "1")]);
        let (mut run, mut until) = (fresh(), Some(now));
        advance(&mut run, &mut until, &on_failure, d, now);
        assert!(matches!(run.stage, Stage::Running(_)));
        assert_eq!(run.restarts, 1);
        assert!(run.last.as_ref().is_some_and(|e| e.code == 1));
        let later = now + d;
        advance(&mut run, &mut until, &on_failure, d, later);
        assert_eq!(run.stage, Stage::BackOff { seconds: 10 });
        assert_eq!(until, Some(later + BACKOFF_INITIAL));
        advance(
            &mut run,
            &mut until,
            &on_failure,
            d,
            later + BACKOFF_INITIAL,
        );
        assert!(matches!(run.stage, Stage::Running(_)));
        assert_eq!(run.restarts, 2);
        assert_eq!(backoff(5), Duration::from_secs(160));
        assert_eq!(backoff(9), BACKOFF_MAX);

        let ok = pod("OnFailure", &[]);
        let (mut run, mut until) = (fresh(), Some(now));
        advance(&mut run, &mut until, &ok, d, now);
        assert!(matches!(run.stage, Stage::Exited(Exit { code: 0, .. })));
    }
}
