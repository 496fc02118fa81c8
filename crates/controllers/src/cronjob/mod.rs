//! The cronjob controller, as upstream's `pkg/controller/cronjob` (v2): for each CronJob it
//! finds the most recent unmet [`schedule`] time since the last run (or creation), bounded
//! by `startingDeadlineSeconds`, and creates the Job `<cronjob>-<minutes since epoch>` from
//! the template with the `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation,
//! honouring `concurrencyPolicy` (Allow, Forbid, Replace) and `suspend`; it keeps
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, deletes finished Jobs beyond
//! the history limits, and wakes exactly at the next schedule time (no polling). `timeZone`
//! names an IANA zone; without one the process's local zone applies, as upstream. The clock
//! is injectable ([`Settings::clock`]) so tests need not wait for minutes to pass.

pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::{ObjectKey, Queue, Store};

use self::schedule::Schedule;
use crate::job::status::{true_condition, COMPLETE, FAILED};
use crate::util::{controller_of, controller_ref};
use crate::Context;

/// The annotation on a Job holding the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Most missed start times looked at before giving up, as upstream.
const MAX_MISSED: usize = 100;

/// What the controller reads the time from.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Tunables.
#[derive(Clone)]
pub struct Settings {
    /// The clock (the system's by default).
    pub clock: Clock,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            clock: Arc::new(Timestamp::now),
        }
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error("cronjob {cronjob}: {what}: {source}")]
    Api {
        /// The CronJob.
        cronjob: ObjectKey,
        /// What was being done.
        what: &'static str,
        /// The failure.
        #[source]
        source: kube::Error,
    },
}

struct Controller {
    client: kube::Client,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    recorder: Recorder,
    clock: Clock,
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    start_with(ctx, Settings::default())
}

/// As [`start`], with explicit tunables (a test clock).
pub fn start_with(ctx: &Context, settings: Settings) -> BoxFuture<'static, ()> {
    let queue: Queue<ObjectKey> = Queue::new();
    let cronjobs = ctx.informers.get::<CronJob>();
    let jobs = ctx.informers.get::<Job>();
    cronjobs.on_change(crate::util::enqueue_self(&queue));
    jobs.on_change(crate::util::enqueue_controller(&queue, "CronJob"));
    let ctl = Arc::new(Controller {
        client: ctx.client.clone(),
        cronjobs: cronjobs.store(),
        jobs: jobs.store(),
        recorder: ctx.recorder("cronjob-controller"),
        clock: settings.clock,
    });
    ctx.run_workers("cronjob", queue, move |key: ObjectKey| {
        let ctl = ctl.clone();
        async move { ctl.sync(&key).await }
    })
}

fn job_finished(job: &Job) -> Option<&'static str> {
    let st = job.status.as_ref()?;
    if true_condition(st, COMPLETE).is_some() {
        Some(COMPLETE)
    } else if true_condition(st, FAILED).is_some() {
        Some(FAILED)
    } else {
        None
    }
}

/// The Job name for a scheduled time: minutes since the epoch, as upstream.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The most recent schedule time in (`earliest`, `now`], and about how many there were
/// (estimated from the gap between the first two, as upstream, so that a long-missed
/// schedule costs no long walk).
fn most_recent(
    sched: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let Some(t1) = sched.next_after(earliest, tz).filter(|t| *t <= now) else {
        return (None, 0);
    };
    let Some(t2) = sched.next_after(t1, tz).filter(|t| *t <= now) else {
        return (Some(t1), 1);
    };
    let gap = (t2.as_second() - t1.as_second()).max(1);
    let missed =
        usize::try_from((now.as_second() - t1.as_second()) / gap + 1).unwrap_or(usize::MAX);
    let mut t = t1;
    if missed > MAX_MISSED {
        let estimate = (now.as_second() - 2 * gap).max(t1.as_second());
        t = Timestamp::from_second(estimate).unwrap_or(t1);
    }
    let mut last = t1;
    while let Some(n) = sched.next_after(t, tz).filter(|n| *n <= now) {
        last = n;
        t = n;
    }
    (Some(last), missed)
}

fn delay_until(now: Timestamp, at: Timestamp) -> Duration {
    let ms = at.as_millisecond() - now.as_millisecond();
    // A little past the minute, so the time has surely come.
    Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 100)
}

impl Controller {
    async fn sync(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(cj) = self.cronjobs.get(key) else {
            return Ok(None);
        };
        let err = |what: &'static str| {
            let cronjob = key.clone();
            move |source| Error::Api {
                cronjob,
                what,
                source,
            }
        };
        let uid = cj.uid().unwrap_or_default();
        let mut owned: Vec<Arc<Job>> = self.jobs.filter_namespace(&key.namespace, |j| {
            controller_of(j).is_some_and(|r| r.uid == uid)
        });
        let old = cj.status.clone().unwrap_or_default();
        let mut st = old.clone();

        // Reconcile status.active with the Jobs there are.
        let mut active: Vec<ObjectReference> = Vec::new();
        for r in st.active.iter().flatten() {
            let job = owned
                .iter()
                .find(|j| Some(j.name_any()) == r.name && j.uid() == r.uid);
            match job {
                Some(j) if job_finished(j).is_none() => active.push(r.clone()),
                Some(_) => {}
                None => self.recorder.event(
                    cj.as_ref(),
                    EventType::Normal,
                    "MissingJob",
                    format!(
                        "Active job went missing: {}",
                        r.name.clone().unwrap_or_default()
                    ),
                ),
            }
        }
        for j in &owned {
            let listed = active.iter().any(|r| r.uid == j.uid());
            match job_finished(j) {
                None if !listed => active.push(tug_runtime::events::reference(j.as_ref())),
                Some(how) => {
                    let was_active = st.active.iter().flatten().any(|r| r.uid == j.uid());
                    if was_active {
                        self.recorder.event(
                            cj.as_ref(),
                            EventType::Normal,
                            "SawCompletedJob",
                            format!("Saw completed job: {}, condition: {how}", j.name_any()),
                        );
                    }
                    if how == COMPLETE {
                        let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                        if let Some(done) = done {
                            if st
                                .last_successful_time
                                .as_ref()
                                .is_none_or(|t| t.0 < done.0)
                            {
                                st.last_successful_time = Some(done);
                            }
                        }
                    }
                }
                None => {}
            }
        }
        st.active = (!active.is_empty()).then_some(active);
        if cj.metadata.deletion_timestamp.is_some() {
            self.write_status(&cj, &old, st)
                .await
                .map_err(err("update status"))?;
            return Ok(None);
        }

        let spec = cj.spec.clone();
        self.clean_history(&cj, &mut owned).await;
        let tz = match spec.time_zone.as_deref() {
            None => schedule::local_time_zone(),
            Some(name) => match schedule::time_zone(name) {
                Ok(tz) => tz,
                Err(e) => {
                    self.recorder.event(
                        cj.as_ref(),
                        EventType::Warning,
                        "UnknownTimeZone",
                        format!("invalid timeZone: {name:?}: {e}"),
                    );
                    self.write_status(&cj, &old, st)
                        .await
                        .map_err(err("update status"))?;
                    return Ok(None);
                }
            },
        };
        let sched: Schedule = match spec.schedule.parse() {
            Ok(s) => s,
            Err(e) => {
                self.recorder.event(
                    cj.as_ref(),
                    EventType::Warning,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                self.write_status(&cj, &old, st)
                    .await
                    .map_err(err("update status"))?;
                return Ok(None);
            }
        };
        if spec.suspend == Some(true) {
            self.write_status(&cj, &old, st)
                .await
                .map_err(err("update status"))?;
            return Ok(None);
        }

        let now = (self.clock)();
        let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        let mut earliest = st.last_schedule_time.as_ref().map_or(created, |t| t.0);
        if let Some(sds) = spec.starting_deadline_seconds {
            let bound = Timestamp::from_second(now.as_second() - sds).unwrap_or(earliest);
            if bound > earliest {
                earliest = bound;
            }
        }
        let next_wake = sched.next_after(now, &tz).map(|t| delay_until(now, t));
        let (scheduled, missed) = most_recent(&sched, &tz, earliest, now);
        if missed > MAX_MISSED {
            self.recorder.event(
                cj.as_ref(),
                EventType::Warning,
                "TooManyMissedTimes",
                format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
            );
        }
        let Some(scheduled) = scheduled else {
            self.write_status(&cj, &old, st)
                .await
                .map_err(err("update status"))?;
            return Ok(next_wake);
        };
        if let Some(sds) = spec.starting_deadline_seconds {
            if scheduled.as_second() + sds < now.as_second() {
                self.recorder.event(
                    cj.as_ref(),
                    EventType::Warning,
                    "MissSchedule",
                    format!(
                        "Missed scheduled time to start a job: {}",
                        scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
                    ),
                );
                self.write_status(&cj, &old, st)
                    .await
                    .map_err(err("update status"))?;
                return Ok(next_wake);
            }
        }
        let name = job_name(&key.name, scheduled);
        if owned.iter().any(|j| j.name_any() == name) {
            // Already started (a status write may have been lost): record it.
            if st
                .last_schedule_time
                .as_ref()
                .is_none_or(|t| t.0 < scheduled)
            {
                st.last_schedule_time = Some(Time(scheduled));
            }
            self.write_status(&cj, &old, st)
                .await
                .map_err(err("update status"))?;
            return Ok(next_wake);
        }
        let running: Vec<ObjectReference> = st.active.clone().unwrap_or_default();
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !running.is_empty() => {
                self.recorder.event(
                    cj.as_ref(),
                    EventType::Normal,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                );
                self.write_status(&cj, &old, st)
                    .await
                    .map_err(err("update status"))?;
                return Ok(next_wake);
            }
            Some("Replace") => {
                let api: Api<Job> = Api::namespaced(self.client.clone(), &key.namespace);
                for r in &running {
                    let n = r.name.clone().unwrap_or_default();
                    match api.delete(&n, &DeleteParams::background()).await {
                        Ok(_) => self.recorder.event(
                            cj.as_ref(),
                            EventType::Normal,
                            "SuccessfulDelete",
                            format!("Deleted job {n}"),
                        ),
                        // Gone already counts as deleted; any other refusal retries the sync.
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => return Err(err("delete active job")(e)),
                    }
                }
                st.active = None;
            }
            _ => {}
        }

        let job = self.new_job(&cj, &name, scheduled, &tz);
        let api: Api<Job> = Api::namespaced(self.client.clone(), &key.namespace);
        let job = match api.create(&PostParams::default(), &job).await {
            Ok(j) => {
                self.recorder.event(
                    cj.as_ref(),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {name}"),
                );
                j
            }
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get(&name).await {
                Ok(j) if controller_of(&j).is_some_and(|r| r.uid == uid) => j,
                Ok(_) => {
                    self.write_status(&cj, &old, st)
                        .await
                        .map_err(err("update status"))?;
                    return Ok(next_wake);
                }
                Err(e) => return Err(err("get existing job")(e)),
            },
            Err(e) => {
                self.recorder.event(
                    cj.as_ref(),
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                );
                return Err(err("create job")(e));
            }
        };
        let mut refs = st.active.clone().unwrap_or_default();
        if !refs.iter().any(|r| r.uid == job.uid()) {
            refs.push(tug_runtime::events::reference(&job));
        }
        st.active = Some(refs);
        st.last_schedule_time = Some(Time(scheduled));
        self.write_status(&cj, &old, st)
            .await
            .map_err(err("update status"))?;
        Ok(next_wake)
    }

    fn new_job(&self, cj: &CronJob, name: &str, scheduled: Timestamp, tz: &TimeZone) -> Job {
        let template = cj.spec.job_template.clone();
        let tmeta = template.metadata.unwrap_or_default();
        let mut annotations = tmeta.annotations.unwrap_or_default();
        annotations.insert(
            SCHEDULED_TIMESTAMP.to_owned(),
            scheduled
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
                .replace("+00:00", "Z"),
        );
        Job {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: cj.namespace(),
                labels: tmeta.labels,
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref(cj)]),
                ..ObjectMeta::default()
            },
            spec: template.spec,
            status: None,
        }
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn clean_history(&self, cj: &CronJob, owned: &mut Vec<Arc<Job>>) {
        let spec = cj.spec.clone();
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &cj.namespace().unwrap_or_default());
        for (how, limit) in [
            (COMPLETE, spec.successful_jobs_history_limit.unwrap_or(3)),
            (FAILED, spec.failed_jobs_history_limit.unwrap_or(1)),
        ] {
            let mut done: Vec<Arc<Job>> = owned
                .iter()
                .filter(|j| job_finished(j) == Some(how) && j.metadata.deletion_timestamp.is_none())
                .cloned()
                .collect();
            let limit = usize::try_from(limit.max(0)).unwrap_or(0);
            if done.len() <= limit {
                continue;
            }
            done.sort_by_key(|j| {
                (
                    j.status
                        .as_ref()
                        .and_then(|s| s.start_time.clone())
                        .map(|t| t.0),
                    j.metadata.creation_timestamp.clone().map(|t| t.0),
                )
            });
            let excess = done.len() - limit;
            for j in done.into_iter().take(excess) {
                match api.delete(&j.name_any(), &DeleteParams::background()).await {
                    Ok(_) => {
                        self.recorder.event(
                            cj,
                            EventType::Normal,
                            "SuccessfulDelete",
                            format!("Deleted job {}", j.name_any()),
                        );
                        owned.retain(|o| o.uid() != j.uid());
                    }
                    Err(e) => {
                        tracing::debug!(job = %j.name_any(), error = %e, "cronjob: history delete failed")
                    }
                }
            }
        }
    }

    async fn write_status(
        &self,
        cj: &CronJob,
        old: &CronJobStatus,
        st: CronJobStatus,
    ) -> Result<(), kube::Error> {
        if &st == old {
            return Ok(());
        }
        let api: Api<CronJob> =
            Api::namespaced(self.client.clone(), &cj.namespace().unwrap_or_default());
        let mut next = cj.clone();
        next.status = Some(st);
        api.replace_status(&cj.name_any(), &PostParams::default(), &next)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_most_recent_missed_time_wins() {
        let every_minute: Schedule = "* * * * *".parse().unwrap_or_else(|e| panic!("{e}"));
        let (last, n) = most_recent(
            &every_minute,
            &TimeZone::UTC,
            ts("2024-01-01T00:00:30Z"),
            ts("2024-01-01T00:03:10Z"),
        );
        assert_eq!((last, n), (Some(ts("2024-01-01T00:03:00Z")), 3));
        // Far behind: counted by estimate, still the right most recent time.
        let (last, n) = most_recent(
            &every_minute,
            &TimeZone::UTC,
            ts("2024-01-01T00:00:00Z"),
            ts("2024-01-02T00:00:30Z"),
        );
        assert_eq!(last, Some(ts("2024-01-02T00:00:00Z")));
        assert!(n > MAX_MISSED);
        let none = most_recent(
            &every_minute,
            &TimeZone::UTC,
            ts("2024-01-01T00:00:00Z"),
            ts("2024-01-01T00:00:59Z"),
        );
        assert_eq!(none, (None, 0));
        assert_eq!(
            job_name("hello", ts("2024-01-01T00:01:00Z")),
            "hello-28401121"
        );
    }
}
