//! Tests of the pod status rules.

use super::*;

fn pod(containers: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web", "namespace": "default", "uid": "u1" },
        "spec": { "containers": containers },
        "status": { "phase": "Pending", "conditions": [
            { "type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z" },
            { "type": "DisruptionTarget", "status": "True", "reason": "X" },
        ]},
    }))
    .unwrap_or_else(|e| panic!("pod: {e}"))
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap_or_else(|e| panic!("{e}"))
}

fn run(stage: Stage) -> PodRun {
    PodRun {
        ip: Ipv4Addr::new(10, 42, 1, 5),
        started: at(100),
        restarts: 0,
        last: None,
        stage,
    }
}

fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t} condition"))
}

#[test]
fn a_running_pod_is_ready_with_its_ips() {
    let p = pod(
        serde_json::json!([{ "name": "b", "image": "nginx:1.27" }, { "name": "a", "image": "nginx" }]),
    );
    let s = pod_status(&p, &run(Stage::Running(at(100))), "10.200.0.1", at(101));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.42.1.5"));
    assert_eq!(s.host_ip.as_deref(), Some("10.200.0.1"));
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert_eq!(cond(&s, t).status, "True", "{t}");
    }
    // Conditions the kubelet does not own are kept, PodScheduled keeps its time.
    assert_eq!(cond(&s, "DisruptionTarget").reason.as_deref(), Some("X"));
    assert_eq!(
        cond(&s, "PodScheduled").last_transition_time,
        Some(Time(at(1_704_067_200)))
    );
    let cs = s.container_statuses.clone().unwrap_or_default();
    assert_eq!(cs[0].name, "a");
    assert!(cs[0].ready);
    assert!(cs[0]
        .container_id
        .as_deref()
        .is_some_and(|i| i.starts_with("hollow://")));
    assert!(cs[1].image_id.starts_with("nginx@sha256:"));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    // Written and read back, the same status compares equal (times to the second).
    let again = pod_status(
        &Pod {
            status: Some(s.clone()),
            ..p
        },
        &run(Stage::Running(at(100))),
        "10.200.0.1",
        at(200),
    );
    assert_eq!(again, s);
}

#[test]
fn finished_pods_report_their_exit() {
    let p = pod(serde_json::json!([{ "name": "c", "image": "busybox" }]));
    let exit = |code| Exit {
        code,
        started: at(100),
        finished: at(103),
    };
    let ok = pod_status(&p, &run(Stage::Exited(exit(0))), "10.200.0.1", at(103));
    assert_eq!(ok.phase.as_deref(), Some("Succeeded"));
    assert_eq!(cond(&ok, "Ready").reason.as_deref(), Some("PodCompleted"));
    assert_eq!(cond(&ok, "PodReadyToStartContainers").status, "False");
    let term = ok.container_statuses.clone().unwrap_or_default()[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .unwrap_or_else(|| panic!("not terminated"));
    assert_eq!(term.reason.as_deref(), Some("Completed"));
    let failed = pod_status(&p, &run(Stage::Exited(exit(3))), "10.200.0.1", at(103));
    assert_eq!(failed.phase.as_deref(), Some("Failed"));
    let term = failed.container_statuses.clone().unwrap_or_default()[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .unwrap_or_else(|| panic!("not terminated"));
    assert_eq!((term.exit_code, term.reason.as_deref()), (3, Some("Error")));
    assert_eq!(
        cond(&failed, "Ready").reason.as_deref(),
        Some("ContainersNotReady")
    );
}

#[test]
fn crash_loops_wait_and_keep_the_last_state() {
    let p = pod(serde_json::json!([{ "name": "c", "image": "busybox" }]));
    let mut r = run(Stage::BackOff { seconds: 20 });
    r.restarts = 2;
    r.last = Some(Exit {
        code: 1,
        started: at(100),
        finished: at(101),
    });
    let s = pod_status(&p, &r, "10.200.0.1", at(102));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let c = &s.container_statuses.clone().unwrap_or_default()[0];
    assert_eq!(c.restart_count, 2);
    let waiting = c.state.clone().and_then(|s| s.waiting).unwrap_or_default();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 20s restarting failed container=c pod=web_default(u1)")
    );
    assert!(c.last_state.clone().and_then(|s| s.terminated).is_some());
    assert_eq!(
        cond(&s, "Ready").message.as_deref(),
        Some("containers with unready status: [c]")
    );
}

#[test]
fn qos_classes_as_upstream() {
    let best = pod(serde_json::json!([{ "name": "c" }]));
    assert_eq!(qos_class(&best), "BestEffort");
    let guaranteed = pod(serde_json::json!([{ "name": "c", "resources": {
        "limits": { "cpu": "500m", "memory": "1Gi" },
        "requests": { "cpu": "0.5", "memory": "1024Mi" } } }]));
    assert_eq!(qos_class(&guaranteed), "Guaranteed");
    let limits_only = pod(serde_json::json!([{ "name": "c", "resources": {
        "limits": { "cpu": "1", "memory": "1Gi" } } }]));
    assert_eq!(qos_class(&limits_only), "Guaranteed");
    let burstable = pod(serde_json::json!([
        { "name": "c", "resources": { "limits": { "cpu": "1", "memory": "1Gi" } } },
        { "name": "d", "resources": { "requests": { "cpu": "100m" } } },
    ]));
    assert_eq!(qos_class(&burstable), "Burstable");
}
