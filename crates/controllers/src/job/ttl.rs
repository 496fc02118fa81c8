//! The ttl-after-finished loop, as upstream's `pkg/controller/ttlafterfinished`: a Job that
//! has finished (Complete or Failed) and sets `ttlSecondsAfterFinished` is deleted (with
//! foreground propagation, so its pods go first) that many seconds after it finished; the
//! loop wakes exactly when the next one expires. It runs inside the job controller here.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::{Api, ResourceExt};
use tug_runtime::{Informer, ObjectKey, Queue, Store};

use super::status::{true_condition, COMPLETE, FAILED};
use crate::Context;

/// When a finished Job finished (completionTime, else its terminal condition's time).
pub fn finish_time(job: &Job) -> Option<k8s_openapi::jiff::Timestamp> {
    let st = job.status.as_ref()?;
    let cond = true_condition(st, COMPLETE).or_else(|| true_condition(st, FAILED))?;
    st.completion_time
        .as_ref()
        .or(cond.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Registers the loop's handler on `jobs` and returns its worker.
pub fn start(ctx: &Context, jobs: &Informer<Job>) -> BoxFuture<'static, ()> {
    let queue: Queue<ObjectKey> = Queue::new();
    {
        let q = queue.clone();
        jobs.on_change(move |c| {
            let job = c.object();
            let ttl = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished);
            if ttl.is_some() && job.metadata.deletion_timestamp.is_none() {
                q.add(ObjectKey::of(job.as_ref()));
            }
        });
    }
    let client = ctx.client.clone();
    let store = jobs.store();
    let workers = ctx.options.workers;
    Box::pin(async move {
        tug_runtime::queue::run(
            "ttl-after-finished",
            queue,
            workers,
            move |key: ObjectKey| {
                let (client, store) = (client.clone(), store.clone());
                async move { sync(&client, &store, &key).await }
            },
        )
        .await;
    })
}

async fn sync(
    client: &kube::Client,
    store: &Store<Job>,
    key: &ObjectKey,
) -> Result<Option<Duration>, kube::Error> {
    let Some(job) = store.get(key) else {
        return Ok(None);
    };
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(None);
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let Some(finished) = finish_time(&job) else {
        return Ok(None);
    };
    let expire_ms = finished.as_millisecond() + i64::from(ttl) * 1000;
    let left = expire_ms - k8s_openapi::jiff::Timestamp::now().as_millisecond();
    if left > 0 {
        return Ok(Some(Duration::from_millis(
            u64::try_from(left).unwrap_or(0),
        )));
    }
    tracing::debug!(job = %key, "ttl after finished expired; deleting");
    let api: Api<Job> = Api::namespaced(client.clone(), &key.namespace);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: job.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}
