//! Jobs and CronJobs: `SetDefaults_Job` / `SetDefaults_CronJob`, the job strategy's generated
//! selector (`controller-uid` and `job-name` labels), `ValidateJob(Update)` and
//! `ValidateCronJob(Create|Update)`, including the cron schedule syntax of robfig/cron.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use serde_json::Value;

use super::cron::{parse_cron, validate_time_zone};
use super::meta::{child, entry_obj, get_obj_mut, normalized, set_if_empty, set_if_unset, Obj};
use super::pod::{default_template, validate_template_spec};
use super::workloads::{labels_mismatch, selector_matches, template_labels, validate_selector};
use super::{immutable, invalid, invalid_json, nonnegative, not_supported, required, Errs};
use crate::validation::is_dns1123_label;

const LEGACY_UID: &str = "controller-uid";
const UID: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_NAME: &str = "job-name";
const NAME: &str = "batch.kubernetes.io/job-name";
/// The uid used to check a generated selector when the server has not assigned one yet.
const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

// ---------------------------------------------------------------------------------------------
// Defaults

fn default_job_spec(spec: &mut Obj) {
    if super::meta::is_unset(spec, "completions") && super::meta::is_unset(spec, "parallelism") {
        spec.insert("completions".to_owned(), Value::from(1));
    }
    set_if_unset(spec, "parallelism", 1);
    let backoff = if super::meta::is_unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i64::from(i32::MAX)
    };
    set_if_unset(spec, "backoffLimit", backoff);
    set_if_unset(spec, "completionMode", "NonIndexed");
    set_if_unset(spec, "suspend", false);
    let has_failure_policy = !super::meta::is_unset(spec, "podFailurePolicy");
    set_if_unset(
        spec,
        "podReplacementPolicy",
        if has_failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        },
    );
    set_if_unset(spec, "manualSelector", false);
    if let Some(policy) = get_obj_mut(spec, "podFailurePolicy") {
        for rule in super::meta::each_obj(policy, "rules") {
            for pattern in super::meta::each_obj(rule, "onPodConditions") {
                set_if_empty(pattern, "status", "True");
            }
        }
    }
}

/// `SetDefaults_Job`, the template's defaults, and — once the job has a uid — the selector
/// and pod labels the job strategy generates unless `manualSelector` is set.
pub(crate) fn default_job(job: &mut Obj) {
    let template_labels = super::meta::at(job, "spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    if let Some(spec) = entry_obj(job, "spec") {
        default_job_spec(spec);
        if let Some(t) = entry_obj(spec, "template") {
            default_template(t);
        }
    }
    if let (Some(labels), Some(meta)) = (template_labels, entry_obj(job, "metadata")) {
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|l| l.is_empty())
        {
            meta.insert("labels".to_owned(), labels);
        }
    }
    let name = super::meta::at(job, "metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let uid = super::meta::at(job, "metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some(spec) = get_obj_mut(job, "spec") {
        if spec.get("manualSelector") != Some(&Value::Bool(true)) && !uid.is_empty() {
            generate_selector(spec, &name, &uid);
        }
    }
}

/// The job strategy's `generateSelector`: pod labels for the job's name and uid (where the
/// user has not set them), and a selector on the uid.
fn generate_selector(spec: &mut Obj, name: &str, uid: &str) {
    if let Some(labels) = entry_obj(spec, "template")
        .and_then(|t| entry_obj(t, "metadata"))
        .and_then(|m| entry_obj(m, "labels"))
    {
        for (k, v) in [
            (LEGACY_NAME, name),
            (NAME, name),
            (LEGACY_UID, uid),
            (UID, uid),
        ] {
            labels.entry(k).or_insert_with(|| Value::from(v));
        }
    }
    if let Some(match_labels) =
        entry_obj(spec, "selector").and_then(|s| entry_obj(s, "matchLabels"))
    {
        match_labels.entry(UID).or_insert_with(|| Value::from(uid));
    }
}

/// `SetDefaults_CronJob` and the defaults of its job template's pods.
pub(crate) fn default_cron_job(cj: &mut Obj) {
    if let Some(spec) = entry_obj(cj, "spec") {
        set_if_empty(spec, "concurrencyPolicy", "Allow");
        set_if_unset(spec, "suspend", false);
        set_if_unset(spec, "successfulJobsHistoryLimit", 3);
        set_if_unset(spec, "failedJobsHistoryLimit", 1);
        if let Some(t) = entry_obj(spec, "jobTemplate")
            .and_then(|j| entry_obj(j, "spec"))
            .and_then(|s| entry_obj(s, "template"))
        {
            default_template(t);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

fn has_label(labels: &BTreeMap<String, String>, k: &str, expected: &str, errs: &mut Errs) {
    let path = format!("spec.template.metadata.labels[{k}]");
    match labels.get(k) {
        None => errs.push(required(path, &format!("must be '{expected}'"))),
        Some(v) if v != expected => {
            errs.push(invalid_json(path, labels, &format!("must be '{expected}'")))
        }
        Some(_) => {}
    }
}

/// `validateGeneratedSelector`.
fn validate_generated_selector(
    job: &Job,
    spec: &JobSpec,
    prefixed: bool,
    uid: &str,
    errs: &mut Errs,
) {
    if spec.manual_selector == Some(true) {
        return;
    }
    let Some(selector) = &spec.selector else {
        return;
    };
    let name = job.metadata.name.clone().unwrap_or_default();
    let labels = template_labels(&spec.template);
    has_label(&labels, LEGACY_UID, uid, errs);
    has_label(&labels, LEGACY_NAME, &name, errs);
    let mut expected = BTreeMap::new();
    if prefixed {
        has_label(&labels, UID, uid, errs);
        has_label(&labels, NAME, &name, errs);
        expected.insert(UID.to_owned(), uid.to_owned());
        expected.insert(NAME.to_owned(), name.clone());
    }
    expected.insert(LEGACY_UID.to_owned(), uid.to_owned());
    expected.insert(LEGACY_NAME.to_owned(), name);
    if selector_matches(Some(selector), &expected) == Ok(false) {
        errs.push(invalid_json(
            "spec.selector",
            selector,
            "`selector` not auto-generated",
        ));
    }
}

/// `validateJobSpec`: what jobs and job templates share.
fn validate_job_spec(spec: &JobSpec, path: &str, errs: &mut Errs) {
    let optional = [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
        (
            "backoffLimitPerIndex",
            spec.backoff_limit_per_index.map(i64::from),
        ),
    ];
    for (field, v) in optional {
        if let Some(v) = v {
            nonnegative(v, child(path, field), errs);
        }
    }
    if let Some(m) = spec.max_failed_indexes {
        nonnegative(i64::from(m), child(path, "maxFailedIndexes"), errs);
        if spec.backoff_limit_per_index.is_none() {
            errs.push(required(
                child(path, "backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if let Some(mode) = spec.completion_mode.as_deref() {
        if !matches!(mode, "NonIndexed" | "Indexed") {
            errs.push(not_supported(
                child(path, "completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if indexed {
            if spec.completions.is_none() {
                errs.push(required(
                    child(path, "completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec.parallelism.filter(|p| *p > 100_000) {
                errs.push(invalid(
                    child(path, "parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
    }
    if !indexed {
        if let Some(b) = spec.backoff_limit_per_index {
            errs.push(invalid(
                child(path, "backoffLimitPerIndex"),
                b,
                "requires indexed completion mode",
            ));
        }
        if let Some(m) = spec.max_failed_indexes {
            errs.push(invalid(
                child(path, "maxFailedIndexes"),
                m,
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(policy) = spec.pod_replacement_policy.as_deref() {
        let rp = child(path, "podReplacementPolicy");
        if spec.pod_failure_policy.is_some() {
            if policy != "Failed" {
                errs.push(not_supported(rp, policy, &["Failed"]));
            }
        } else if !matches!(policy, "Failed" | "TerminatingOrFailed") {
            errs.push(not_supported(
                rp,
                policy,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    if let Some(policy) = &spec.pod_failure_policy {
        let rules_path = child(&child(path, "podFailurePolicy"), "rules");
        if policy.rules.len() > 20 {
            errs.push(super::too_many(rules_path.as_str(), policy.rules.len(), 20));
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            let ap = child(&super::meta::index(&rules_path, i), "action");
            let actions = ["Count", "FailIndex", "FailJob", "Ignore"];
            if rule.action.is_empty() {
                errs.push(required(
                    ap,
                    "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
                ));
            } else if !actions.contains(&rule.action.as_str()) {
                errs.push(not_supported(ap, rule.action.as_str(), &actions));
            }
        }
    }
    let tpath = child(path, "template");
    validate_template_spec(&spec.template, &tpath, errs);
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("");
    let rpath = format!("{tpath}.spec.restartPolicy");
    match restart {
        "Always" | "" => errs.push(required(rpath, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" | "Never" => {
            if spec.pod_failure_policy.is_some() && restart != "Never" {
                errs.push(invalid(
                    rpath,
                    restart,
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => errs.push(not_supported(rpath, other, &["OnFailure", "Never"])),
    }
}

/// `ValidateJob(Update)`; on create the selector is generated first, as the strategy does.
pub(crate) fn validate_job(job: &Job, old: Option<&Job>) -> Errs {
    let mut errs = Vec::new();
    let mut spec = job.spec.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().filter(|u| !u.is_empty());
    let prefixed = match old {
        None => true,
        Some(o) => {
            let l = o
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            l.contains_key(NAME) && l.contains_key(UID)
        }
    };
    if old.is_none() && spec.manual_selector != Some(true) {
        let mut raw = serde_json::to_value(&spec).unwrap_or(Value::Null);
        if let Some(obj) = raw.as_object_mut() {
            let name = job.metadata.name.clone().unwrap_or_default();
            generate_selector(obj, &name, uid.as_deref().unwrap_or(PLACEHOLDER_UID));
        }
        if let Ok(generated) = serde_json::from_value(raw) {
            spec = generated;
        }
    }
    let uid_text = uid.clone().unwrap_or_else(|| {
        if old.is_none() {
            PLACEHOLDER_UID.to_owned()
        } else {
            String::new()
        }
    });
    if uid.is_none()
        && old.is_some()
        && spec.manual_selector != Some(true)
        && spec.selector.is_some()
    {
        errs.push(required("metadata.uid", ""));
    }
    validate_generated_selector(job, &spec, prefixed, &uid_text, &mut errs);
    validate_job_spec(&spec, "spec", &mut errs);
    validate_selector(spec.selector.as_ref(), &mut errs);
    let labels = template_labels(&spec.template);
    if spec.selector.is_some() && selector_matches(spec.selector.as_ref(), &labels) == Ok(false) {
        errs.push(labels_mismatch(&labels));
    }
    if spec.completion_mode.as_deref() == Some("Indexed") {
        if let Some(c) = spec.completions.filter(|c| *c > 0) {
            let name = job.metadata.name.clone().unwrap_or_default();
            let host = format!("{name}-{}", c - 1);
            if !is_dns1123_label(&host).is_empty() {
                errs.push(invalid(
                    "metadata.name",
                    name,
                    &format!("will not able to create pod with invalid DNS label: {host}"),
                ));
            }
        }
    }
    if let Some(old) = old {
        validate_job_update(&spec, &old.spec.clone().unwrap_or_default(), old, &mut errs);
    }
    errs
}

fn validate_job_update(spec: &JobSpec, old_spec: &JobSpec, old: &Job, errs: &mut Errs) {
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if !indexed {
        errs.extend(immutable(
            &spec.completions,
            &old_spec.completions,
            "spec.completions",
        ));
    } else if spec.completions != old_spec.completions {
        if let Some(c) = spec.completions {
            if Some(c) != spec.parallelism {
                errs.push(invalid(
                    "spec.completions",
                    c,
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        }
    }
    errs.extend(immutable(
        &spec.selector,
        &old_spec.selector,
        "spec.selector",
    ));
    let mut old_template = old_spec.template.clone();
    let suspended = old_spec.suspend == Some(true);
    let not_started = old.status.as_ref().is_none_or(|s| s.start_time.is_none());
    if suspended && not_started {
        let new_t = &spec.template;
        if let (Some(o), Some(n)) = (old_template.spec.as_mut(), new_t.spec.as_ref()) {
            let new_na = n.affinity.as_ref().and_then(|a| a.node_affinity.clone());
            match (&mut o.affinity, &n.affinity) {
                (Some(a), None) => {
                    a.node_affinity = None;
                    if a == &k8s_openapi::api::core::v1::Affinity::default() {
                        o.affinity = None;
                    }
                }
                (None, Some(_)) => {
                    o.affinity = Some(k8s_openapi::api::core::v1::Affinity {
                        node_affinity: new_na,
                        ..Default::default()
                    })
                }
                (Some(a), Some(_)) => a.node_affinity = new_na,
                (None, None) => {}
            }
            o.node_selector.clone_from(&n.node_selector);
            o.tolerations.clone_from(&n.tolerations);
            o.scheduling_gates.clone_from(&n.scheduling_gates);
        }
        if let (Some(o), Some(n)) = (old_template.metadata.as_mut(), new_t.metadata.as_ref()) {
            o.labels.clone_from(&n.labels);
            o.annotations.clone_from(&n.annotations);
        }
    }
    if normalized(serde_json::to_value(&spec.template).unwrap_or(Value::Null))
        != normalized(serde_json::to_value(&old_template).unwrap_or(Value::Null))
    {
        errs.extend(immutable(&spec.template, &old_template, "spec.template"));
    }
    errs.extend(immutable(
        &spec.completion_mode,
        &old_spec.completion_mode,
        "spec.completionMode",
    ));
    errs.extend(immutable(
        &spec.pod_failure_policy,
        &old_spec.pod_failure_policy,
        "spec.podFailurePolicy",
    ));
    errs.extend(immutable(
        &spec.backoff_limit_per_index,
        &old_spec.backoff_limit_per_index,
        "spec.backoffLimitPerIndex",
    ));
    errs.extend(immutable(
        &spec.managed_by,
        &old_spec.managed_by,
        "spec.managedBy",
    ));
    errs.extend(immutable(
        &spec.success_policy,
        &old_spec.success_policy,
        "spec.successPolicy",
    ));
}

/// `ValidateCronJobCreate` / `ValidateCronJobUpdate`.
pub(crate) fn validate_cron_job(cj: &CronJob, old: Option<&CronJob>) -> Errs {
    let mut errs = Vec::new();
    let spec = cj.spec.clone();
    let old_spec = old.map(|o| o.spec.clone());
    if spec.schedule.is_empty() {
        errs.push(required("spec.schedule", ""));
    } else {
        let allow_tz = old_spec.as_ref().is_some_and(|o| o.schedule.contains("TZ"));
        if let Err(msg) = parse_cron(&spec.schedule) {
            errs.push(invalid("spec.schedule", spec.schedule.as_str(), &msg));
        }
        if allow_tz && spec.schedule.contains("TZ") && spec.time_zone.is_some() {
            errs.push(invalid(
                "spec.schedule",
                spec.schedule.as_str(),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && spec.schedule.contains("TZ") {
            errs.push(invalid(
                "spec.schedule",
                spec.schedule.as_str(),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(s) = spec.starting_deadline_seconds {
        nonnegative(s, "spec.startingDeadlineSeconds", &mut errs);
    }
    if old_spec
        .as_ref()
        .is_none_or(|o| o.time_zone != spec.time_zone)
    {
        if let Some(tz) = &spec.time_zone {
            validate_time_zone(tz, &mut errs);
        }
    }
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(required("spec.concurrencyPolicy", "")),
        other => errs.push(not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    validate_job_spec(&job_spec, "spec.jobTemplate.spec", &mut errs);
    if let Some(s) = &job_spec.selector {
        errs.push(invalid_json(
            "spec.jobTemplate.spec.selector",
            s,
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.manual_selector == Some(true) {
        errs.push(not_supported(
            "spec.jobTemplate.spec.manualSelector",
            true,
            &["nil", "false"],
        ));
    }
    for (field, v) in [
        (
            "successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        ),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit),
    ] {
        if let Some(v) = v {
            nonnegative(i64::from(v), format!("spec.{field}"), &mut errs);
        }
    }
    let name = cj.metadata.name.as_deref().unwrap_or("");
    if old.is_none() && name.len() > 52 {
        errs.push(invalid(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{default_object, validate, FieldError};
    use serde_json::json;

    fn job(restart: Option<&str>) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "1a2b3c"},
            "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}}});
        if let Some(r) = restart {
            j["spec"]["template"]["spec"]["restartPolicy"] = json!(r);
        }
        j
    }

    #[test]
    fn job_defaults_and_selector() {
        let mut j = job(Some("Never"));
        default_object("batch", "jobs", &mut j);
        let spec = &j["spec"];
        assert_eq!(
            (
                spec["parallelism"].clone(),
                spec["completions"].clone(),
                spec["backoffLimit"].clone()
            ),
            (json!(1), json!(1), json!(6))
        );
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1a2b3c"}})
        );
        assert_eq!(spec["template"]["metadata"]["labels"]["job-name"], "pi");
        let errs = validate("batch", "jobs", &j, None);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn job_restart_policy() {
        let mut j = job(None);
        default_object("batch", "jobs", &mut j);
        let msgs: Vec<String> = validate("batch", "jobs", &j, None)
            .iter()
            .map(FieldError::message)
            .collect();
        assert_eq!(msgs, ["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]);
        let mut old = job(Some("Never"));
        default_object("batch", "jobs", &mut old);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        let errs = validate("batch", "jobs", &new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template");
        assert!(errs[0].message().ends_with(": field is immutable"));
    }

    #[test]
    fn cron_jobs() {
        let mut cj = json!({"metadata": {"name": "backup", "namespace": "d"}, "spec": {"schedule": "0 0 * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "b", "image": "b"}]}}}}}});
        default_object("batch", "cronjobs", &mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(validate("batch", "cronjobs", &cj, None).is_empty());
    }
}
