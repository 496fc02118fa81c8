//! The job controller, as upstream's `pkg/controller/job` (1.31+ behaviour): it runs a Job's
//! pods ([`pods`]) until `completions` succeed (or, without completions, until one has and
//! the rest are done), at most `parallelism` at once; Indexed Jobs get one pod per pending
//! index. Finished pods are tracked with the `batch.kubernetes.io/job-tracking` finalizer:
//! first recorded in `status.uncountedTerminatedPods` (succeeded indexes straight into
//! `completedIndexes`), then the finalizer comes off, then they move to the counters.
//! Failures are weighed by the pod failure policy and counted against `backoffLimit` (with
//! restartPolicy OnFailure, container restarts too); `activeDeadlineSeconds` bounds the
//! running time. A Job that is done first gets `SuccessCriteriaMet` or `FailureTarget`, its
//! remaining pods are deleted, and once none is left it gets `Complete` or `Failed` with the
//! same reason. `suspend` deletes the active pods. Replacement pods after failures wait out
//! an exponential back-off (10 s doubling to 6 min, as upstream). The [`ttl`] loop deletes
//! finished Jobs after `ttlSecondsAfterFinished`.

mod manage;
pub mod pods;
pub mod status;
pub mod ttl;

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::replicaset::expectations::Expectations;
use crate::replicaset::pods::pod_key;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use self::pods::{has_tracking_finalizer, is_indexed, pod_index};
use self::status::{
    format_indexes, is_finished, parse_indexes, set_condition, true_condition, Verdict,
};
use crate::util::{controller_of, is_pod_active, is_pod_ready};
use crate::Context;

/// The `spec.managedBy` value of Jobs this controller runs.
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";

/// Tunables (upstream's constants).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The first delay before replacing a failed pod.
    pub pod_failure_backoff: Duration,
    /// The longest such delay.
    pub max_pod_failure_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pod_failure_backoff: Duration::from_secs(10),
            max_pod_failure_backoff: Duration::from_secs(360),
        }
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error("job {job}: {what}: {source}")]
    Api {
        /// The Job.
        job: ObjectKey,
        /// What was being done.
        what: &'static str,
        /// The failure.
        #[source]
        source: kube::Error,
    },
}

struct Controller {
    client: kube::Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    recorder: Recorder,
    settings: Settings,
    /// Pods created or deleted but not yet seen by the informer (upstream's expectations).
    expectations: Expectations,
    /// Failures since the last success and when the last was seen, per Job uid.
    backoff: Mutex<HashMap<String, (u32, Instant)>>,
    /// Pods (uid) whose tracking finalizer this controller removed and the informer has not
    /// yet seen go (upstream's finalizer expectations): already counted, so a sync on a
    /// stale pod cache must not count them again.
    finalizer_removals: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    start_with(ctx, Settings::default())
}

/// As [`start`], with explicit tunables.
pub fn start_with(ctx: &Context, settings: Settings) -> BoxFuture<'static, ()> {
    let queue: Queue<ObjectKey> = Queue::new();
    let jobs = ctx.informers.get::<Job>();
    let pods = ctx.informers.get::<Pod>();
    let ctl = Arc::new(Controller {
        client: ctx.client.clone(),
        jobs: jobs.store(),
        pods: pods.store(),
        recorder: ctx.recorder("job-controller"),
        settings,
        expectations: Expectations::new(),
        backoff: Mutex::default(),
        finalizer_removals: Mutex::default(),
    });
    jobs.on_change(crate::util::enqueue_self(&queue));
    {
        let ctl = ctl.clone();
        jobs.on_change(move |c: &Change<'_, Job>| {
            if let Change::Deleted(job) = c {
                ctl.expectations.forget(&ObjectKey::of(job.as_ref()));
                lock(&ctl.backoff).remove(&job.uid().unwrap_or_default());
            }
        });
    }
    {
        // Expectations are lowered before the Job is queued, so its sync sees them lowered.
        let ctl = ctl.clone();
        pods.on_change(move |c: &Change<'_, Pod>| ctl.observe(c));
    }
    pods.on_change(crate::util::enqueue_controller(&queue, "Job"));
    let ttl = ttl::start(ctx, &jobs);
    let ctx = ctx.clone();
    Box::pin(async move {
        ctx.informers.synced().await;
        let ttl = tokio::spawn(ttl);
        tug_runtime::queue::run("job", queue, ctx.options.workers, move |key: ObjectKey| {
            let ctl = ctl.clone();
            async move { ctl.sync(&key).await }
        })
        .await;
        ttl.abort();
    })
}

/// What one pass over a Job's pods found.
struct Tally {
    active: Vec<Arc<Pod>>,
    terminating: usize,
    unfinalize: Vec<Arc<Pod>>,
    new_failures: u32,
    new_successes: u32,
    fail_job: Option<String>,
}

impl Controller {
    /// Lowers expectations as the informer sees pods come and go.
    fn observe(&self, c: &Change<'_, Pod>) {
        let pod = c.object();
        if matches!(c, Change::Deleted(_)) || !has_tracking_finalizer(pod) {
            lock(&self.finalizer_removals).remove(&pod.uid().unwrap_or_default());
        }
        let Some(owner) = controller_of(pod.as_ref()).filter(|r| r.kind == "Job") else {
            return;
        };
        let key = ObjectKey::new(pod.namespace().unwrap_or_default(), owner.name.clone());
        match c {
            Change::Added(_) => self.expectations.creation_observed(&key),
            Change::Deleted(_) => self.expectations.deletion_observed(&key, &pod_key(pod)),
            Change::Updated { .. } if pod.metadata.deletion_timestamp.is_some() => {
                self.expectations.deletion_observed(&key, &pod_key(pod));
            }
            Change::Updated { .. } => {}
        }
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(job) = self.jobs.get(key) else {
            return Ok(None);
        };
        let err = |what: &'static str| {
            let job = key.clone();
            move |source| Error::Api { job, what, source }
        };
        let spec = job.spec.clone().unwrap_or_default();
        if spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY) {
            return Ok(None);
        }
        let uid = job.uid().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self.pods.filter_namespace(&key.namespace, |p| {
            controller_of(p).is_some_and(|r| r.uid == uid)
        });
        let old = job.status.clone().unwrap_or_default();
        if job.metadata.deletion_timestamp.is_some() || is_finished(&old) {
            // Nothing more to count: let every pod go.
            let left: Vec<Arc<Pod>> = pods
                .into_iter()
                .filter(|p| has_tracking_finalizer(p))
                .collect();
            self.remove_finalizers(&left)
                .await
                .map_err(err("remove finalizers"))?;
            if job.metadata.deletion_timestamp.is_some() {
                self.expectations.forget(key);
                lock(&self.backoff).remove(&uid);
            }
            return Ok(None);
        }

        let now = k8s_openapi::jiff::Timestamp::now();
        let mut st = old.clone();
        let indexed = is_indexed(&job);
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let suspended = spec.suspend == Some(true);
        let uncounted = st.uncounted_terminated_pods.clone().unwrap_or_default();
        let mut unc_succ: BTreeSet<String> = uncounted
            .succeeded
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut unc_fail: BTreeSet<String> =
            uncounted.failed.unwrap_or_default().into_iter().collect();
        let mut completed = parse_indexes(st.completed_indexes.as_deref().unwrap_or_default());
        let mut failed_indexes = parse_indexes(st.failed_indexes.as_deref().unwrap_or_default());
        let never = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("Never");
        let in_range = |i: i32| i >= 0 && spec.completions.is_none_or(|c| i < c);

        let mut tally = Tally {
            active: Vec::new(),
            terminating: 0,
            unfinalize: Vec::new(),
            new_failures: 0,
            new_successes: 0,
            fail_job: None,
        };
        for pod in &pods {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            let terminal = matches!(phase, Some("Succeeded" | "Failed"));
            if is_pod_active(pod) {
                tally.active.push(pod.clone());
            } else if pod.metadata.deletion_timestamp.is_some() && !terminal {
                tally.terminating += 1;
            }
            let pod_uid = pod.uid().unwrap_or_default();
            if !has_tracking_finalizer(pod) || lock(&self.finalizer_removals).contains(&pod_uid) {
                continue;
            }
            if unc_succ.contains(&pod_uid) || unc_fail.contains(&pod_uid) {
                tally.unfinalize.push(pod.clone());
                continue;
            }
            let failed = phase == Some("Failed")
                || (pod.metadata.deletion_timestamp.is_some() && phase != Some("Succeeded"));
            if phase == Some("Succeeded") {
                match pod_index(pod).filter(|i| indexed && in_range(*i)) {
                    Some(i) => {
                        if !failed_indexes.contains(&i) {
                            completed.insert(i);
                        }
                    }
                    None if indexed => {}
                    None => {
                        unc_succ.insert(pod_uid);
                    }
                }
                tally.new_successes += 1;
                tally.unfinalize.push(pod.clone());
            } else if failed {
                let verdict = if never && phase == Some("Failed") {
                    status::failure_verdict(&spec, pod)
                } else {
                    Verdict::Count
                };
                match verdict {
                    Verdict::FailJob(msg) => {
                        tally.fail_job.get_or_insert(msg);
                        unc_fail.insert(pod_uid);
                    }
                    Verdict::Ignore => {}
                    Verdict::Count => {
                        tally.new_failures += 1;
                        unc_fail.insert(pod_uid);
                    }
                    Verdict::FailIndex => {
                        if let Some(i) = pod_index(pod).filter(|i| indexed && in_range(*i)) {
                            failed_indexes.insert(i);
                        }
                        unc_fail.insert(pod_uid);
                    }
                }
                tally.unfinalize.push(pod.clone());
            }
        }
        self.note_backoff(&uid, &tally);

        let prior_succeeded = st.succeeded.unwrap_or(0);
        let succeeded = if indexed {
            i32::try_from(completed.len()).unwrap_or(i32::MAX)
        } else {
            prior_succeeded + i32::try_from(unc_succ.len()).unwrap_or(i32::MAX)
        };
        let failed = st.failed.unwrap_or(0) + i32::try_from(unc_fail.len()).unwrap_or(i32::MAX);

        // Suspension and start time.
        let mut requeue: Option<Duration> = None;
        if suspended {
            if set_condition(
                &mut st,
                status::SUSPENDED,
                "True",
                "JobSuspended",
                "Job suspended",
            ) {
                self.recorder.event(
                    job.as_ref(),
                    EventType::Normal,
                    "Suspended",
                    "Job suspended",
                );
            }
        } else {
            if true_condition(&st, status::SUSPENDED).is_some() {
                set_condition(
                    &mut st,
                    status::SUSPENDED,
                    "False",
                    "JobResumed",
                    "Job resumed",
                );
                self.recorder
                    .event(job.as_ref(), EventType::Normal, "Resumed", "Job resumed");
                st.start_time = Some(tug_runtime::now());
            }
            st.start_time.get_or_insert_with(tug_runtime::now);
        }

        // Is the Job done?
        let mut target = true_condition(&st, status::FAILURE_TARGET)
            .or_else(|| true_condition(&st, status::SUCCESS_CRITERIA_MET))
            .map(|c| {
                (
                    c.type_.clone(),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                )
            });
        if target.is_none() {
            let fail = |(r, m): (&str, &str)| {
                Some((
                    status::FAILURE_TARGET.to_owned(),
                    r.to_owned(),
                    m.to_owned(),
                ))
            };
            let deadline = spec
                .active_deadline_seconds
                .filter(|_| !suspended)
                .and_then(|ads| {
                    let start = st.start_time.as_ref()?.0;
                    Some(start.as_second() + ads - now.as_second())
                });
            target = if let Some(msg) = tally.fail_job.clone() {
                Some((
                    status::FAILURE_TARGET.to_owned(),
                    status::POD_FAILURE_POLICY.to_owned(),
                    msg,
                ))
            } else if failed > backoff_limit
                || past_backoff_limit_on_failure(&job, &tally.active, backoff_limit)
            {
                fail(status::BACKOFF_LIMIT_EXCEEDED)
            } else if deadline.is_some_and(|left| left <= 0) {
                fail(status::DEADLINE_EXCEEDED)
            } else if indexed
                && spec
                    .max_failed_indexes
                    .is_some_and(|m| failed_indexes.len() > usize::try_from(m).unwrap_or(0))
            {
                fail(status::MAX_FAILED_INDEXES_EXCEEDED)
            } else {
                if let Some(left) = deadline {
                    requeue = Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
                }
                let done = match spec.completions {
                    Some(c) if indexed => {
                        i32::try_from(completed.len() + failed_indexes.len()).unwrap_or(i32::MAX)
                            >= c
                    }
                    Some(c) => succeeded >= c,
                    None => succeeded > 0 && tally.active.is_empty(),
                };
                match done {
                    true if indexed && !failed_indexes.is_empty() => fail(status::FAILED_INDEXES),
                    true => Some((
                        status::SUCCESS_CRITERIA_MET.to_owned(),
                        status::COMPLETIONS_REACHED.0.to_owned(),
                        status::COMPLETIONS_REACHED.1.to_owned(),
                    )),
                    false => None,
                }
            };
            if let Some((t, r, m)) = &target {
                set_condition(&mut st, t, "True", r, m);
            }
        }

        let mut active = tally.active.len();
        // The terminal condition, added once every finished pod is counted.
        let mut finish: Option<(&str, String, String)> = None;
        let satisfied = self.expectations.satisfied(key);
        if let Some((t, r, m)) = &target {
            // Finishing: no pod may keep running.
            let deleted = self.delete_pods(&job, &tally.active).await;
            active -= deleted.len();
            if active == 0 && tally.terminating + deleted.iter().filter(|b| **b).count() == 0 {
                finish = Some(if t == status::FAILURE_TARGET {
                    (status::FAILED, r.clone(), m.clone())
                } else {
                    (status::COMPLETE, r.clone(), m.clone())
                });
            }
        } else if suspended {
            active -= self.delete_pods(&job, &tally.active).await.len();
        } else if satisfied {
            let (created, deleted, wait) = self
                .manage(
                    &job,
                    &tally,
                    succeeded,
                    &completed,
                    &failed_indexes,
                    parallelism,
                )
                .await
                .map_err(err("manage pods"))?;
            active = active + created - deleted;
            if let Some(w) = wait {
                requeue = Some(requeue.map_or(w, |r| r.min(w)));
            }
        }

        // Record what was counted, then let those pods go, then fold them into the counters.
        st.active = Some(i32::try_from(active).unwrap_or(i32::MAX));
        st.ready = Some(
            i32::try_from(tally.active.iter().filter(|p| is_pod_ready(p)).count()).unwrap_or(0),
        );
        st.terminating = Some(i32::try_from(tally.terminating).unwrap_or(0));
        st.failed = Some(st.failed.unwrap_or(0));
        st.succeeded = Some(if indexed { succeeded } else { prior_succeeded });
        if indexed {
            st.completed_indexes = Some(format_indexes(&completed));
            if !failed_indexes.is_empty() || spec.backoff_limit_per_index.is_some() {
                st.failed_indexes = Some(format_indexes(&failed_indexes));
            }
        }
        set_uncounted(&mut st, &unc_succ, &unc_fail);
        let job = self
            .write_status(&job, &old, st)
            .await
            .map_err(err("update status"))?;
        let released = self
            .remove_finalizers(&tally.unfinalize)
            .await
            .map_err(err("remove finalizers"))?;
        let mut st = job.status.clone().unwrap_or_default();
        let still_held: HashSet<String> = pods
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter_map(|p| p.uid())
            .filter(|u| !released.contains(u))
            .collect();
        let moved_succ = unc_succ.iter().filter(|u| !still_held.contains(*u)).count();
        let moved_fail = unc_fail.iter().filter(|u| !still_held.contains(*u)).count();
        let before = job.status.clone().unwrap_or_default();
        if moved_succ + moved_fail > 0 {
            unc_succ.retain(|u| still_held.contains(u));
            unc_fail.retain(|u| still_held.contains(u));
            st.succeeded = Some(st.succeeded.unwrap_or(0) + i32::try_from(moved_succ).unwrap_or(0));
            st.failed = Some(st.failed.unwrap_or(0) + i32::try_from(moved_fail).unwrap_or(0));
            set_uncounted(&mut st, &unc_succ, &unc_fail);
        }
        let finished = match finish {
            Some((final_type, reason, message)) if unc_succ.is_empty() && unc_fail.is_empty() => {
                set_condition(&mut st, final_type, "True", &reason, &message);
                if final_type == status::COMPLETE {
                    st.completion_time = Some(tug_runtime::now());
                    Some((
                        EventType::Normal,
                        "Completed".to_owned(),
                        "Job completed".to_owned(),
                    ))
                } else {
                    Some((EventType::Warning, reason, message))
                }
            }
            _ => None,
        };
        self.write_status(&job, &before, st)
            .await
            .map_err(err("update status"))?;
        if let Some((kind, reason, message)) = finished {
            self.recorder.event(&job, kind, &reason, message);
        }
        Ok(requeue)
    }

    async fn write_status(
        &self,
        job: &Job,
        old: &JobStatus,
        st: JobStatus,
    ) -> Result<Job, kube::Error> {
        if &st == old {
            return Ok(job.clone());
        }
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let mut next = job.clone();
        next.status = Some(st);
        api.replace_status(&job.name_any(), &PostParams::default(), &next)
            .await
    }

    fn note_backoff(&self, uid: &str, tally: &Tally) {
        let mut b = lock(&self.backoff);
        if tally.new_successes > 0 {
            b.remove(uid);
        }
        if tally.new_failures > 0 {
            let e = b.entry(uid.to_owned()).or_insert((0, Instant::now()));
            e.0 += tally.new_failures;
            e.1 = Instant::now();
        }
    }

    /// How long until a replacement pod may be created after recent failures.
    fn backoff_remaining(&self, job: &Job) -> Option<Duration> {
        let (failures, last) = *lock(&self.backoff).get(&job.uid()?)?;
        let exp = failures.saturating_sub(1).min(16);
        let delay = self
            .settings
            .pod_failure_backoff
            .saturating_mul(1 << exp)
            .min(self.settings.max_pod_failure_backoff);
        delay.checked_sub(last.elapsed()).filter(|d| !d.is_zero())
    }
}

fn set_uncounted(st: &mut JobStatus, succ: &BTreeSet<String>, fail: &BTreeSet<String>) {
    st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: (!succ.is_empty()).then(|| succ.iter().cloned().collect()),
        failed: (!fail.is_empty()).then(|| fail.iter().cloned().collect()),
    });
}

/// With restartPolicy OnFailure, whether the container restarts of running pods reach the
/// backoff limit, as upstream's `pastBackoffLimitOnFailure`.
fn past_backoff_limit_on_failure(job: &Job, active: &[Arc<Pod>], limit: i32) -> bool {
    let on_failure = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    if !on_failure {
        return false;
    }
    let restarts: i32 = active
        .iter()
        .filter(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Running" | "Pending")
            )
        })
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}
