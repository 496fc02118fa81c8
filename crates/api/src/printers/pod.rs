//! The pod printer: readiness, the aggregate status `kubectl get pods` shows (init progress,
//! container reasons, Terminating, ...), restarts with the time of the last one.

use serde_json::Value;

use super::util::{
    at, bool_at, condition_status, deleting, int_at, list_at, name, non_empty, since_nanos, str_at,
    time_nanos,
};
use super::{col, wide, Printer, AGE, NAME};

/// Pods: Name, Ready, Status, Restarts, Age; wide IP, Node, Nominated Node, Readiness Gates.
pub(super) const PODS: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
        wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
        wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
    ],
    cells: pod_cells,
};

/// Whether a container state (`state.terminated`, `state.waiting`, ...) is set.
fn state<'a>(status: &'a Value, which: &str) -> Option<&'a Value> {
    at(status, &["state", which]).filter(|s| s.is_object())
}

/// When the container last terminated (`lastState.terminated.finishedAt`), if known.
fn last_finished(status: &Value) -> Option<i128> {
    time_nanos(str_at(status, &["lastState", "terminated", "finishedAt"]))
}

/// Keeps the later of `slot` and `candidate`.
fn keep_latest(slot: &mut Option<i128>, candidate: Option<i128>) {
    if let Some(t) = candidate {
        if slot.is_none_or(|s| s < t) {
            *slot = Some(t);
        }
    }
}

/// The reason shown for a failed container: its reason, else the signal or exit code.
fn terminated_reason(terminated: &Value) -> String {
    if let Some(reason) = non_empty(terminated, &["reason"]) {
        return reason.to_string();
    }
    match int_at(terminated, &["signal"]) {
        0 => format!("ExitCode:{}", int_at(terminated, &["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

fn pod_cells(pod: &Value, now: i64) -> Vec<Value> {
    // The API server always sets a phase on create; an object without one is still Pending.
    let phase = non_empty(pod, &["status", "phase"]).unwrap_or("Pending");
    let mut reason = non_empty(pod, &["status", "reason"])
        .unwrap_or(phase)
        .to_string();
    let conditions = list_at(pod, &["status", "conditions"]);
    if conditions.iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    }) {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = list_at(pod, &["spec", "initContainers"]);
    let sidecar = |name: &str| {
        init_specs
            .iter()
            .rev()
            .find(|c| str_at(c, &["name"]) == name)
            .is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();
    let total = list_at(pod, &["spec", "containers"]).len() + sidecars;
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut last_restart = None;
    let mut sidecar_restarts = 0i64;
    let mut last_sidecar_restart = None;

    let mut initializing = false;
    for (i, cs) in list_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int_at(cs, &["restartCount"]);
        restarts += count;
        keep_latest(&mut last_restart, last_finished(cs));
        let is_sidecar = sidecar(str_at(cs, &["name"]));
        if is_sidecar {
            sidecar_restarts += count;
            keep_latest(&mut last_sidecar_restart, last_finished(cs));
        }
        let terminated = state(cs, "terminated");
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_sidecar && bool_at(cs, &["started"]) {
            if bool_at(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        let waiting = state(cs, "waiting")
            .and_then(|w| non_empty(w, &["reason"]))
            .filter(|r| *r != "PodInitializing");
        reason = match (terminated, waiting) {
            (Some(t), _) => format!("Init:{}", terminated_reason(t)),
            (None, Some(w)) => format!("Init:{w}"),
            (None, None) => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    if !initializing || condition_status(pod, "Initialized") == Some("True") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in list_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            keep_latest(&mut last_restart, last_finished(cs));
            let waiting = state(cs, "waiting").and_then(|w| non_empty(w, &["reason"]));
            if let Some(w) = waiting {
                reason = w.to_string();
            } else if let Some(t) = state(cs, "terminated") {
                reason = terminated_reason(t);
            } else if bool_at(cs, &["ready"]) && state(cs, "running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose first containers completed but others still run reads as running.
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    if deleting(pod) && str_at(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since_nanos(t, now)),
        _ => restarts.to_string(),
    };

    let ip = match list_at(pod, &["status", "podIPs"]).first() {
        Some(first) => str_at(first, &["ip"]),
        None => str_at(pod, &["status", "podIP"]),
    };
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    let gates = list_at(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_status(pod, str_at(g, &["conditionType"])) == Some("True"))
            .count();
        format!("{met}/{}", gates.len())
    };

    vec![
        name(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_cell),
        super::util::age(pod, now),
        Value::from(or_none(ip)),
        Value::from(or_none(str_at(pod, &["spec", "nodeName"]))),
        Value::from(or_none(str_at(pod, &["status", "nominatedNodeName"]))),
        Value::from(gates_cell),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

    fn cells(pod: &Value, now: i64) -> Vec<Value> {
        (PODS.cells)(pod, now)
    }

    fn status_of(pod: &Value) -> String {
        cells(pod, T0 + 3600)[2]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn base(status: Value) -> Value {
        json!({
            "metadata": {"name": "web-0", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "n1"},
            "status": status,
        })
    }

    #[test]
    fn running_pod() {
        let pod = base(json!({
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2024-01-01T00:00:05Z"}}
            }]
        }));
        assert_eq!(
            cells(&pod, T0 + 3600),
            [
                json!("web-0"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("60m"),
                json!("10.0.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pending_and_creating() {
        let mut pod = base(json!({"phase": "Pending"}));
        assert_eq!(status_of(&pod), "Pending");
        assert_eq!(cells(&pod, T0)[5], json!("<none>"));
        pod["status"]["containerStatuses"] = json!([{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}
        }]);
        assert_eq!(status_of(&pod), "ContainerCreating");
        assert_eq!(cells(&pod, T0)[1], json!("0/1"));
        // No phase at all still reads as Pending.
        assert_eq!(status_of(&base(json!({}))), "Pending");
    }

    #[test]
    fn crash_loop_with_restart_age() {
        let pod = base(json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": "2024-01-01T00:55:00Z"}}
            }]
        }));
        let row = cells(&pod, T0 + 3600);
        assert_eq!(row[1], json!("0/1"));
        assert_eq!(row[2], json!("CrashLoopBackOff"));
        assert_eq!(row[3], json!("4 (5m ago)"));
    }

    #[test]
    fn completed_and_exit_codes() {
        let done = base(json!({
            "phase": "Succeeded",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
        }));
        assert_eq!(status_of(&done), "Completed");
        let code = base(json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"terminated": {"exitCode": 3}}}]
        }));
        assert_eq!(status_of(&code), "ExitCode:3");
        let signal = base(json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "signal": 9}}}]
        }));
        assert_eq!(status_of(&signal), "Signal:9");
        // One container completed, another still running: Running when the pod is ready.
        let mut mixed = base(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "state": {"running": {}}}
            ]
        }));
        assert_eq!(status_of(&mixed), "Running");
        mixed["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        assert_eq!(status_of(&mixed), "NotReady");
    }

    #[test]
    fn init_containers() {
        let mut pod = base(json!({
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "i1", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
                {"name": "i2", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ]
        }));
        pod["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
        assert_eq!(status_of(&pod), "Init:0/2");
        pod["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        pod["status"]["initContainerStatuses"][1]["state"] = json!({"running": {}});
        assert_eq!(status_of(&pod), "Init:1/2");
        pod["status"]["initContainerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert_eq!(status_of(&pod), "Init:ImagePullBackOff");
        pod["status"]["initContainerStatuses"][1]["state"] =
            json!({"terminated": {"exitCode": 2, "reason": "Error"}});
        assert_eq!(status_of(&pod), "Init:Error");
        pod["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2}});
        assert_eq!(status_of(&pod), "Init:ExitCode:2");
    }

    #[test]
    fn native_sidecars_count_toward_ready() {
        let mut pod = base(json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
                "restartCount": 2, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:50:00Z"}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:40:00Z"}}}]
        }));
        pod["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        let row = cells(&pod, T0 + 3600);
        assert_eq!(row[1], json!("2/2"));
        assert_eq!(row[2], json!("Running"));
        assert_eq!(row[3], json!("3 (10m ago)"));
    }

    #[test]
    fn terminating_and_node_lost() {
        let mut pod = base(json!({"phase": "Running"}));
        pod["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:59:00Z");
        assert_eq!(status_of(&pod), "Terminating");
        pod["status"]["phase"] = json!("Succeeded");
        assert_eq!(status_of(&pod), "Succeeded");
        pod["status"] = json!({"phase": "Running", "reason": "NodeLost"});
        assert_eq!(status_of(&pod), "Unknown");
        pod["metadata"]
            .as_object_mut()
            .map(|m| m.remove("deletionTimestamp"));
        assert_eq!(status_of(&pod), "NodeLost");
        let gated = base(json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}));
        assert_eq!(status_of(&gated), "SchedulingGated");
    }

    #[test]
    fn wide_cells() {
        let mut pod = base(json!({
            "phase": "Running",
            "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
            "nominatedNodeName": "n2",
            "conditions": [{"type": "example.com/gate", "status": "True"}]
        }));
        pod["spec"]["readinessGates"] =
            json!([{"conditionType": "example.com/gate"}, {"conditionType": "example.com/other"}]);
        let row = cells(&pod, T0);
        assert_eq!(
            row[5..],
            [json!("fd00::5"), json!("n1"), json!("n2"), json!("1/2")]
        );
    }
}
