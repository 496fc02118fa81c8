//! The job controller against an in-process apiserver; the test plays the kubelet by
//! writing pod phases.

mod ctrl_common;

use std::time::Duration;

use ctrl_common::{bind, create, node, set_pod_status, start_fns, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::json;
use tug_controllers::job::{self, Settings};

fn settings() -> Settings {
    Settings {
        pod_failure_backoff: Duration::from_millis(50),
        max_pod_failure_backoff: Duration::from_millis(200),
    }
}

fn job_json(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

async fn job_pods(api: &Api<Pod>, name: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn condition(job: &Job, type_: &str) -> Option<(String, Option<String>)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn a_job_runs_its_completions_two_at_a_time() {
    let c = start_fns(|ctx| vec![job::start_with(ctx, settings())]).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    create(
        &jobs,
        job_json("work", json!({"completions": 3, "parallelism": 2})),
    )
    .await;
    let mut done = 0;
    while done < 3 {
        // Never more than parallelism pods running; succeed one of them.
        let running = wait_for("a running pod", || async {
            let all = job_pods(&pods, "work").await;
            let running: Vec<Pod> = all
                .into_iter()
                .filter(|p| phase(p) != Some("Succeeded"))
                .collect();
            (!running.is_empty()).then_some(running)
        })
        .await;
        assert!(running.len() <= 2, "{} pods running", running.len());
        let pod = &running[0];
        assert!(pod
            .finalizers()
            .iter()
            .any(|f| f == "batch.kubernetes.io/job-tracking"));
        assert_eq!(pod.owner_references()[0].kind, "Job");
        set_pod_status(
            &c.client,
            "default",
            &pod.name_any(),
            json!({"phase": "Succeeded"}),
        )
        .await;
        done += 1;
    }
    let job = wait_for("job complete", || async {
        let j = jobs.get("work").await.ok()?;
        condition(&j, "Complete").is_some().then_some(j)
    })
    .await;
    let st = job.status.clone().unwrap_or_default();
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(st.active, Some(0));
    assert!(st.completion_time.is_some());
    assert_eq!(
        condition(&job, "SuccessCriteriaMet"),
        Some(("True".into(), Some("CompletionsReached".into())))
    );
    assert_eq!(
        condition(&job, "Complete"),
        Some(("True".into(), Some("CompletionsReached".into())))
    );
    let all = job_pods(&pods, "work").await;
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().all(|p| p.finalizers().is_empty()),
        "finalizers left"
    );
}

#[tokio::test]
async fn a_failing_job_stops_at_its_backoff_limit() {
    let c = start_fns(|ctx| vec![job::start_with(ctx, settings())]).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    create(&jobs, job_json("flaky", json!({"backoffLimit": 1}))).await;
    for round in 1..=2 {
        let pod = wait_for("a pod to fail", || async {
            job_pods(&pods, "flaky")
                .await
                .into_iter()
                .find(|p| phase(p) != Some("Failed"))
        })
        .await;
        set_pod_status(
            &c.client,
            "default",
            &pod.name_any(),
            json!({"phase": "Failed"}),
        )
        .await;
        if round == 1 {
            // A replacement comes.
            wait_for("a replacement pod", || async {
                (job_pods(&pods, "flaky").await.len() == 2).then_some(())
            })
            .await;
        }
    }
    let job = wait_for("job failed", || async {
        let j = jobs.get("flaky").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    assert_eq!(
        condition(&job, "Failed"),
        Some(("True".into(), Some("BackoffLimitExceeded".into())))
    );
    assert_eq!(
        condition(&job, "FailureTarget"),
        Some(("True".into(), Some("BackoffLimitExceeded".into())))
    );
    assert_eq!(job.status.as_ref().and_then(|s| s.failed), Some(2));
    assert_eq!(job_pods(&pods, "flaky").await.len(), 2);
}

#[tokio::test]
async fn an_indexed_job_runs_each_index_once() {
    let c = start_fns(|ctx| vec![job::start_with(ctx, settings())]).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    create(
        &jobs,
        job_json(
            "idx",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
        ),
    )
    .await;
    let all = wait_for("three indexed pods", || async {
        let all = job_pods(&pods, "idx").await;
        (all.len() == 3).then_some(all)
    })
    .await;
    let mut by_index = std::collections::BTreeMap::new();
    for p in &all {
        let i = p
            .annotations()
            .get("batch.kubernetes.io/job-completion-index")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            p.labels().get("batch.kubernetes.io/job-completion-index"),
            Some(&i)
        );
        let spec = p.spec.clone().unwrap_or_default();
        assert_eq!(spec.hostname, Some(format!("idx-{i}")));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
        by_index.insert(i, p.name_any());
    }
    assert_eq!(
        by_index.keys().cloned().collect::<Vec<_>>(),
        vec!["0", "1", "2"]
    );
    for i in ["0", "2"] {
        set_pod_status(
            &c.client,
            "default",
            &by_index[i],
            json!({"phase": "Succeeded"}),
        )
        .await;
    }
    wait_for("completed indexes 0,2", || async {
        let j = jobs.get("idx").await.ok()?;
        (j.status?.completed_indexes.as_deref() == Some("0,2")).then_some(())
    })
    .await;
    set_pod_status(
        &c.client,
        "default",
        &by_index["1"],
        json!({"phase": "Succeeded"}),
    )
    .await;
    let job = wait_for("job complete", || async {
        let j = jobs.get("idx").await.ok()?;
        condition(&j, "Complete").is_some().then_some(j)
    })
    .await;
    let st = job.status.unwrap_or_default();
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(st.succeeded, Some(3));
}

#[tokio::test]
async fn a_fail_job_rule_fails_the_job_at_once() {
    let c = start_fns(|ctx| vec![job::start_with(ctx, settings())]).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    create(&jobs, job_json("strict", json!({"podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}
    ]}}))).await;
    let pod = wait_for("a pod", || async {
        job_pods(&pods, "strict").await.into_iter().next()
    })
    .await;
    set_pod_status(&c.client, "default", &pod.name_any(), json!({
        "phase": "Failed",
        "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 42}}}]
    })).await;
    let job = wait_for("job failed", || async {
        let j = jobs.get("strict").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    assert_eq!(
        condition(&job, "Failed"),
        Some(("True".into(), Some("PodFailurePolicy".into())))
    );
    let msg = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed"))
        .and_then(|c| c.message.clone());
    assert_eq!(
        msg.as_deref(),
        Some(format!("Container main for pod default/{} failed with exit code 42 matching FailJob rule at index 0", pod.name_any()).as_str())
    );
    assert_eq!(
        job_pods(&pods, "strict").await.len(),
        1,
        "no replacement after FailJob"
    );
}

#[tokio::test]
async fn a_suspended_job_starts_nothing_until_resumed() {
    let c = start_fns(|ctx| vec![job::start_with(ctx, settings())]).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    create(&jobs, job_json("later", json!({"suspend": true}))).await;
    wait_for("Suspended condition", || async {
        let j = jobs.get("later").await.ok()?;
        (condition(&j, "Suspended") == Some(("True".into(), Some("JobSuspended".into()))))
            .then_some(())
    })
    .await;
    assert!(job_pods(&pods, "later").await.is_empty());
    jobs.patch(
        "later",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap_or_else(|e| panic!("resume: {e}"));
    wait_for("a pod after resuming", || async {
        job_pods(&pods, "later").await.into_iter().next()
    })
    .await;
    wait_for("the Suspended condition False (JobResumed)", || async {
        let j = jobs.get("later").await.ok()?;
        (condition(&j, "Suspended") == Some(("False".into(), Some("JobResumed".into()))))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_finished_job_with_a_ttl_is_deleted() {
    let c = start_fns(|ctx| vec![job::start_with(ctx, settings())]).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    create(
        &jobs,
        job_json("brief", json!({"ttlSecondsAfterFinished": 0})),
    )
    .await;
    let pod = wait_for("a pod", || async {
        job_pods(&pods, "brief").await.into_iter().next()
    })
    .await;
    set_pod_status(
        &c.client,
        "default",
        &pod.name_any(),
        json!({"phase": "Succeeded"}),
    )
    .await;
    // Deleted, or marked for foreground deletion (the garbage collector is not running here).
    wait_for("job deleted", || async {
        match jobs.get_opt("brief").await {
            Ok(None) => Some(()),
            Ok(Some(j)) => j.metadata.deletion_timestamp.map(|_| ()),
            Err(_) => None,
        }
    })
    .await;
}

#[tokio::test]
async fn on_failure_restarts_count_towards_the_backoff_limit() {
    let c = start_fns(|ctx| vec![job::start_with(ctx, settings())]).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let mut spec = job_json("restarts", json!({"backoffLimit": 2}));
    spec["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    create(&jobs, spec).await;
    let pod = wait_for("a pod", || async {
        job_pods(&pods, "restarts").await.into_iter().next()
    })
    .await;
    // A running pod is on a node (an unbound one would be removed as soon as the Job drops
    // its finalizer, with no deletion to finish).
    node(&c.client, "n1").await;
    bind(&c.client, "default", &pod.name_any(), "n1").await;
    set_pod_status(&c.client, "default", &pod.name_any(), json!({
        "phase": "Running",
        "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    })).await;
    // The Job gives up and deletes its pod; playing the kubelet, finish the deletion.
    let deleting = wait_for("the pod marked for deletion", || async {
        job_pods(&pods, "restarts")
            .await
            .into_iter()
            .find(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    let job = wait_for("FailureTarget", || async {
        let j = jobs.get("restarts").await.ok()?;
        condition(&j, "FailureTarget").is_some().then_some(j)
    })
    .await;
    assert_eq!(
        condition(&job, "FailureTarget"),
        Some(("True".into(), Some("BackoffLimitExceeded".into())))
    );
    assert_eq!(
        condition(&job, "Failed"),
        None,
        "Failed waits for the pod to go"
    );
    pods.delete(
        &deleting.name_any(),
        &kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("delete: {e}"));
    let job = wait_for("job failed", || async {
        let j = jobs.get("restarts").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    assert_eq!(
        condition(&job, "Failed"),
        Some(("True".into(), Some("BackoffLimitExceeded".into())))
    );
}
