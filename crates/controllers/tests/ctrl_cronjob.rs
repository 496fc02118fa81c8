//! The cronjob controller against an in-process apiserver, with a test clock the test moves
//! forward instead of waiting for minutes to pass.

mod ctrl_common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ctrl_common::{create, start_fns, wait_for};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tug_controllers::cronjob::{self, Settings};

/// A clock standing still at the test's start plus `offset` seconds: time moves only when
/// the test moves it.
fn clock(offset: Arc<AtomicI64>) -> Settings {
    let base = Timestamp::now();
    Settings {
        clock: Arc::new(move || {
            base.checked_add(SignedDuration::from_secs(offset.load(Ordering::SeqCst)))
                .unwrap_or(base)
        }),
    }
}

async fn jobs_of(api: &Api<Job>) -> Vec<Job> {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_cronjob_fires_on_schedule_and_keeps_its_history() {
    let offset = Arc::new(AtomicI64::new(0));
    let settings = clock(offset.clone());
    let c = start_fns(move |ctx| vec![cronjob::start_with(ctx, settings)]).await;
    let cjs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    create(&cjs, json!({
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "timeZone": "UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"app": "tick"}}, "spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}
        }
    })).await;
    // Nothing before the first minute boundary; a minute later the first Job appears.
    offset.store(61, Ordering::SeqCst);
    cjs.patch(
        "tick",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"poke": "1"}}})),
    )
    .await
    .unwrap_or_else(|e| panic!("poke: {e}"));
    let first = wait_for("the first job", || async {
        jobs_of(&jobs).await.into_iter().next()
    })
    .await;
    let scheduled = first
        .annotations()
        .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
        .cloned()
        .unwrap_or_else(|| panic!("no scheduled-timestamp annotation"));
    let at: Timestamp = scheduled
        .parse()
        .unwrap_or_else(|e| panic!("{scheduled}: {e}"));
    assert_eq!(first.name_any(), format!("tick-{}", at.as_second() / 60));
    assert_eq!(first.labels().get("app").map(String::as_str), Some("tick"));
    assert_eq!(first.owner_references()[0].kind, "CronJob");
    let cj = wait_for("status.active", || async {
        let cj = cjs.get("tick").await.ok()?;
        let st = cj.status.clone()?;
        (st.active.as_ref()?.len() == 1 && st.last_schedule_time.is_some()).then_some(cj)
    })
    .await;
    assert_eq!(
        cj.status.and_then(|s| s.last_schedule_time).map(|t| t.0),
        Some(at)
    );

    // Forbid: the next minute passes while the first still runs; no second Job.
    offset.store(121, Ordering::SeqCst);
    cjs.patch(
        "tick",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"poke": "2"}}})),
    )
    .await
    .unwrap_or_else(|e| panic!("poke: {e}"));
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(c.client.clone(), "default");
    wait_for("JobAlreadyActive event", || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        l.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("JobAlreadyActive"))
            .then_some(())
    })
    .await;
    assert_eq!(jobs_of(&jobs).await.len(), 1);
    // Finish the first Job: the CronJob records it and starts the missed run.
    let now = Timestamp::now().to_string();
    jobs.patch_status(
        &first.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {
            "startTime": now, "completionTime": now, "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
            ]
        }})),
    )
    .await
    .unwrap_or_else(|e| panic!("complete job: {e}"));
    let cj = wait_for("lastSuccessfulTime and a second job", || async {
        let cj = cjs.get("tick").await.ok()?;
        let st = cj.status.clone()?;
        let js = jobs_of(&jobs).await;
        (st.last_successful_time.is_some() && js.iter().any(|j| j.name_any() != first.name_any()))
            .then_some(cj)
    })
    .await;
    let st = cj.status.unwrap_or_default();
    assert!(st.last_schedule_time.map(|t| t.0) > Some(at));
    // Complete the second one too: history keeps one successful Job.
    let second = jobs_of(&jobs)
        .await
        .into_iter()
        .find(|j| j.name_any() != first.name_any())
        .unwrap_or_else(|| panic!("no second job"));
    jobs.patch_status(&second.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": {
        "startTime": Timestamp::now().to_string(), "completionTime": Timestamp::now().to_string(), "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}]
    }})))
    .await
    .unwrap_or_else(|e| panic!("complete job: {e}"));
    wait_for("the oldest job deleted", || async {
        let js = jobs_of(&jobs).await;
        (js.len() == 1 && js[0].name_any() == second.name_any()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_unknown_time_zone_starts_nothing() {
    let offset = Arc::new(AtomicI64::new(120));
    let settings = clock(offset);
    let c = start_fns(move |ctx| vec![cronjob::start_with(ctx, settings)]).await;
    let cjs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
    create(
        &cjs,
        json!({
            "metadata": {"name": "lost"},
            "spec": {"schedule": "* * * * *", "timeZone": "Mars/Olympus",
                "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}
        }),
    )
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(c.client.clone(), "default");
    wait_for("UnknownTimeZone event", || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        l.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("UnknownTimeZone"))
            .then_some(())
    })
    .await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    assert!(jobs_of(&jobs).await.is_empty());
}
