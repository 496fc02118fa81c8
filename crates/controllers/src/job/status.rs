//! The pieces of a Job's status the controller computes: completion-index interval strings
//! (`"0-2,4"`), conditions with upstream's types, reasons and messages, and the pod failure
//! policy's verdict on a failed pod.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;

/// Condition types.
pub const COMPLETE: &str = "Complete";
/// The Job failed.
pub const FAILED: &str = "Failed";
/// The Job will fail once its pods are gone.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// The Job will complete once its pods are gone.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// The Job is suspended.
pub const SUSPENDED: &str = "Suspended";

/// Reason and message of a Job that reached its completions.
pub const COMPLETIONS_REACHED: (&str, &str) = (
    "CompletionsReached",
    "Reached expected number of succeeded pods",
);
/// Reason and message of a Job past its backoffLimit.
pub const BACKOFF_LIMIT_EXCEEDED: (&str, &str) = (
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
);
/// Reason and message of a Job past its activeDeadlineSeconds.
pub const DEADLINE_EXCEEDED: (&str, &str) = (
    "DeadlineExceeded",
    "Job was active longer than specified deadline",
);
/// Reason and message of an Indexed Job with failed indexes.
pub const FAILED_INDEXES: (&str, &str) = ("FailedIndexes", "Job has failed indexes");
/// Reason and message of an Indexed Job past maxFailedIndexes.
pub const MAX_FAILED_INDEXES_EXCEEDED: (&str, &str) = (
    "MaxFailedIndexesExceeded",
    "Job has exceeded the specified maximal number of failed indexes",
);
/// The reason of a failure a FailJob rule decided.
pub const POD_FAILURE_POLICY: &str = "PodFailurePolicy";

/// Parses `"0-2,4"` into indexes (bad pieces skipped).
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// Formats indexes as upstream's interval string: runs of two or more as `a-b`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
    }
    parts.join(",")
}

/// The condition of `type_` when it is True.
pub fn true_condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job is finished (Complete or Failed True).
pub fn is_finished(status: &JobStatus) -> bool {
    true_condition(status, COMPLETE).is_some() || true_condition(status, FAILED).is_some()
}

/// Sets a condition (changing only what differs); whether anything changed.
pub fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    state: &str,
    reason: &str,
    message: &str,
) -> bool {
    let now = tug_runtime::now();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == state
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
        {
            return false;
        }
        if c.status != state {
            c.last_transition_time = Some(now.clone());
        }
        c.status = state.to_owned();
        c.reason = Some(reason.to_owned());
        c.message = Some(message.to_owned());
        c.last_probe_time = Some(now);
        return true;
    }
    conditions.push(JobCondition {
        type_: type_.to_owned(),
        status: state.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
    true
}

/// What the pod failure policy makes of a failed pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fail the Job, with this message.
    FailJob(String),
    /// Do not count the failure.
    Ignore,
    /// Count it (the default).
    Count,
    /// Fail the pod's index.
    FailIndex,
}

/// Applies the rules of `spec.podFailurePolicy` to a failed pod, first match wins; `Count`
/// when no rule matches or there is no policy.
pub fn failure_verdict(spec: &JobSpec, pod: &Pod) -> Verdict {
    let Some(policy) = &spec.pod_failure_policy else {
        return Verdict::Count;
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let Some(why) = rule_matches(rule, pod) else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Verdict::FailJob(match why {
                Match::ExitCode(container, code) => format!(
                    "Container {container} for pod {ns}/{name} failed with exit code {code} matching FailJob rule at index {i}"
                ),
                Match::Condition(type_) => format!(
                    "Pod {ns}/{name} has condition {type_} matching FailJob rule at index {i}"
                ),
            }),
            "Ignore" => Verdict::Ignore,
            "FailIndex" => Verdict::FailIndex,
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

enum Match {
    ExitCode(String, i32),
    Condition(String),
}

fn rule_matches(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<Match> {
    let status = pod.status.as_ref()?;
    if let Some(req) = &rule.on_exit_codes {
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in containers {
            if req.container_name.as_ref().is_some_and(|n| n != &cs.name) {
                continue;
            }
            let Some(code) = cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code)
            else {
                continue;
            };
            let hit = match req.operator.as_str() {
                "In" => req.values.contains(&code),
                "NotIn" => code != 0 && !req.values.contains(&code),
                _ => false,
            };
            if hit {
                return Some(Match::ExitCode(cs.name.clone(), code));
            }
        }
        return None;
    }
    for pattern in rule.on_pod_conditions.iter().flatten() {
        let want = pattern.status.as_deref().unwrap_or("True");
        if status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == pattern.type_ && c.status == want)
        {
            return Some(Match::Condition(pattern.type_.clone()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_round_trip_as_upstream_intervals() {
        let set = parse_indexes("0-2,4,6-7");
        assert_eq!(
            set.iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 4, 6, 7]
        );
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert_eq!(format_indexes(&[3].into_iter().collect()), "3");
    }

    #[test]
    fn exit_code_rules_pick_the_first_match() {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "template": {},
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}
            ]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "containerStatuses": [{
                "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 42}}
            }]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            failure_verdict(&spec, &pod),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into()
            )
        );
    }
}
