//! Printers for the batch group: jobs (status, completions, duration) and cron jobs.

use serde_json::Value;

use super::util::{
    age, at, condition_status, deleting, has, int_at, list_at, name, opt_bool, opt_int, opt_str,
    seconds_between, since_at, str_at, template_cells, time_nanos,
};
use super::{col, human_duration, wide_selector, Printer, AGE, CONTAINERS, IMAGES, NAME};

/// Jobs: Name, Status, Completions, Duration, Age; wide Containers, Images, Selector.
pub(super) const JOBS: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the job."),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded.",
        ),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide_selector("A label query over pods that should match the pod count."),
    ],
    cells: job_cells,
};

/// What the job came to, in upstream's order of precedence.
fn job_status(job: &Value) -> &'static str {
    let is = |kind: &str| condition_status(job, kind) == Some("True");
    if is("Complete") {
        "Complete"
    } else if is("Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if is("Suspended") {
        "Suspended"
    } else if is("FailureTarget") {
        "FailureTarget"
    } else if is("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// "succeeded/completions", or for jobs without completions "succeeded/1" (with
/// " of <parallelism>" when more than one pod runs at a time).
fn job_completions(job: &Value) -> String {
    let succeeded = int_at(job, &["status", "succeeded"]);
    if let Some(completions) = opt_int(job, &["spec", "completions"]) {
        return format!("{succeeded}/{completions}");
    }
    match int_at(job, &["spec", "parallelism"]) {
        p if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    }
}

/// How long the job took, or has taken so far; empty before it starts.
fn job_duration(job: &Value, now: i64) -> String {
    let start = time_nanos(str_at(job, &["status", "startTime"]));
    let end = time_nanos(str_at(job, &["status", "completionTime"]));
    match (start, end) {
        (None, _) => String::new(),
        (Some(_), None) => since_at(job, &["status", "startTime"], now),
        (Some(s), Some(e)) => human_duration(seconds_between(s, e)),
    }
}

fn job_cells(job: &Value, now: i64) -> Vec<Value> {
    let mut row = vec![
        name(job),
        Value::from(job_status(job)),
        Value::from(job_completions(job)),
        Value::from(job_duration(job, now)),
        age(job, now),
    ];
    row.extend(template_cells(at(job, &["spec"])));
    row
}

/// Cron jobs: Name, Schedule, Timezone, Suspend, Active, Last Schedule, Age; wide
/// Containers, Images, Selector.
pub(super) const CRON_JOBS: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
        col("Active", "integer", "A list of pointers to currently running jobs."),
        col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide_selector("A label query over pods that should match the pod count."),
    ],
    cells: cron_job_cells,
};

fn cron_job_cells(cj: &Value, now: i64) -> Vec<Value> {
    let suspend = match opt_bool(cj, &["spec", "suspend"]) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = if has(cj, &["status", "lastScheduleTime"]) {
        since_at(cj, &["status", "lastScheduleTime"], now)
    } else {
        "<none>".to_string()
    };
    let mut row = vec![
        name(cj),
        Value::from(str_at(cj, &["spec", "schedule"])),
        Value::from(opt_str(cj, &["spec", "timeZone"]).unwrap_or("<none>")),
        Value::from(suspend),
        Value::from(list_at(cj, &["status", "active"]).len()),
        Value::from(last),
        age(cj, now),
    ];
    row.extend(template_cells(at(cj, &["spec", "jobTemplate", "spec"])));
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

    #[test]
    fn job_status_completions_duration() {
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"completions": 1, "parallelism": 1,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 1, "startTime": "2024-01-01T00:00:00Z",
                "completionTime": "2024-01-01T00:00:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                               {"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            (JOBS.cells)(&job, T0 + 600),
            [
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("42s"),
                json!("10m"),
                json!("pi"),
                json!("perl"),
                json!("batch.kubernetes.io/controller-uid=u1")
            ]
        );
        let running = json!({"spec": {"parallelism": 3}, "status": {"succeeded": 1,
            "startTime": "2024-01-01T00:00:00Z"}});
        assert_eq!(
            (JOBS.cells)(&running, T0 + 90)[1..4],
            [json!("Running"), json!("1/1 of 3"), json!("90s")]
        );
        let failing =
            json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        assert_eq!(
            (JOBS.cells)(&failing, T0)[1..4],
            [json!("FailureTarget"), json!("0/1"), json!("")]
        );
        let suspended =
            json!({"status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!((JOBS.cells)(&suspended, T0)[1], json!("Suspended"));
        let met =
            json!({"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}});
        assert_eq!((JOBS.cells)(&met, T0)[1], json!("SuccessCriteriaMet"));
        let failed = json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!((JOBS.cells)(&failed, T0)[1], json!("Failed"));
    }

    #[test]
    fn cron_job() {
        let cj = json!({
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "suspend": false, "timeZone": "Etc/UTC",
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                    {"name": "backup", "image": "restic"}]}}}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2024-01-01T00:00:00Z"}
        });
        assert_eq!(
            (CRON_JOBS.cells)(&cj, T0 + 3 * 3600 + 600),
            [
                json!("nightly"),
                json!("0 3 * * *"),
                json!("Etc/UTC"),
                json!("False"),
                json!(1),
                json!("3h10m"),
                json!("<unknown>"),
                json!("backup"),
                json!("restic"),
                json!("<none>")
            ]
        );
        let bare = (CRON_JOBS.cells)(&json!({}), T0);
        assert_eq!(
            bare[2..6],
            [json!("<none>"), json!("<unset>"), json!(0), json!("<none>")]
        );
    }
}
