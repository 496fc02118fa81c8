//! Pod controllers of the core and apps groups — ReplicationControllers, PodTemplates,
//! Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions: their defaults
//! (`pkg/apis/apps/v1/defaults.go`), their validation (`pkg/apis/apps/validation`) and the
//! update rules of their registry strategies (selectors are immutable in apps/v1).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{PodTemplate, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::meta::{
    child, entry_obj, get_obj_mut, is_valid_percent, selector_is_empty, set_if_empty, set_if_unset,
    validate_label_selector, Obj,
};
use super::pod::{default_template, validate_template_spec};
use super::{
    forbidden, immutable, invalid, invalid_json, nonnegative, not_supported, not_supported_json,
    required, Errs, FieldError,
};

// ---------------------------------------------------------------------------------------------
// Defaults

fn template_of(obj: &mut Obj) -> Option<&mut Obj> {
    entry_obj(obj, "spec").and_then(|s| entry_obj(s, "template"))
}

/// `SetDefaults_ReplicationController`: selector and labels from the template's labels.
pub(crate) fn default_replication_controller(rc: &mut Obj) {
    let labels = rc
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(spec) = entry_obj(rc, "spec") {
        set_if_unset(spec, "replicas", 1);
        if let Some(labels) = &labels {
            if spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(|s| s.is_empty())
            {
                spec.insert("selector".to_owned(), labels.clone());
            }
        }
        if let Some(t) = get_obj_mut(spec, "template") {
            default_template(t);
        }
    }
    if let (Some(labels), Some(meta)) = (labels, entry_obj(rc, "metadata")) {
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|l| l.is_empty())
        {
            meta.insert("labels".to_owned(), labels);
        }
    }
}

/// `SetDefaults_Deployment`.
pub(crate) fn default_deployment(d: &mut Obj) {
    if let Some(spec) = entry_obj(d, "spec") {
        set_if_unset(spec, "replicas", 1);
        if let Some(strategy) = entry_obj(spec, "strategy") {
            set_if_empty(strategy, "type", "RollingUpdate");
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                if let Some(ru) = entry_obj(strategy, "rollingUpdate") {
                    set_if_unset(ru, "maxUnavailable", "25%");
                    set_if_unset(ru, "maxSurge", "25%");
                }
            }
        }
        set_if_unset(spec, "revisionHistoryLimit", 10);
        set_if_unset(spec, "progressDeadlineSeconds", 600);
    }
    if let Some(t) = template_of(d) {
        default_template(t);
    }
}

/// `SetDefaults_ReplicaSet`.
pub(crate) fn default_replica_set(rs: &mut Obj) {
    if let Some(spec) = entry_obj(rs, "spec") {
        set_if_unset(spec, "replicas", 1);
    }
    if let Some(t) = template_of(rs) {
        default_template(t);
    }
}

/// `SetDefaults_StatefulSet`, and the claim defaults of its volume claim templates.
pub(crate) fn default_stateful_set(sts: &mut Obj) {
    if let Some(spec) = entry_obj(sts, "spec") {
        set_if_empty(spec, "podManagementPolicy", "OrderedReady");
        if let Some(us) = entry_obj(spec, "updateStrategy") {
            if super::meta::str_of(us, "type").is_empty() {
                us.insert("type".to_owned(), Value::from("RollingUpdate"));
                set_if_unset(us, "rollingUpdate", Value::Object(Obj::new()));
            }
            if super::meta::str_of(us, "type") == "RollingUpdate" {
                if let Some(ru) = get_obj_mut(us, "rollingUpdate") {
                    set_if_unset(ru, "partition", 0);
                }
            }
        }
        if let Some(policy) = entry_obj(spec, "persistentVolumeClaimRetentionPolicy") {
            set_if_empty(policy, "whenDeleted", "Retain");
            set_if_empty(policy, "whenScaled", "Retain");
        }
        set_if_unset(spec, "replicas", 1);
        set_if_unset(spec, "revisionHistoryLimit", 10);
        for claim in super::meta::each_obj(spec, "volumeClaimTemplates") {
            super::core::default_claim(claim);
        }
    }
    if let Some(t) = template_of(sts) {
        default_template(t);
    }
}

/// `SetDefaults_DaemonSet`.
pub(crate) fn default_daemon_set(ds: &mut Obj) {
    if let Some(spec) = entry_obj(ds, "spec") {
        if let Some(us) = entry_obj(spec, "updateStrategy") {
            set_if_empty(us, "type", "RollingUpdate");
            if super::meta::str_of(us, "type") == "RollingUpdate" {
                if let Some(ru) = entry_obj(us, "rollingUpdate") {
                    set_if_unset(ru, "maxUnavailable", 1);
                    set_if_unset(ru, "maxSurge", 0);
                }
            }
        }
        set_if_unset(spec, "revisionHistoryLimit", 10);
    }
    if let Some(t) = template_of(ds) {
        default_template(t);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared validation

/// The error for template labels the selector does not match.
pub(crate) fn labels_mismatch(labels: &BTreeMap<String, String>) -> FieldError {
    invalid_json(
        "spec.template.metadata.labels",
        labels,
        "`selector` does not match template `labels`",
    )
}

/// `spec.replicas` (1 when unset) must not be negative.
pub(crate) fn validate_replicas(replicas: Option<i32>, errs: &mut Errs) {
    nonnegative(i64::from(replicas.unwrap_or(1)), "spec.replicas", errs);
}

/// `spec.minReadySeconds` (0 when unset) must not be negative.
pub(crate) fn validate_min_ready_seconds(min_ready_seconds: Option<i32>, errs: &mut Errs) {
    nonnegative(
        i64::from(min_ready_seconds.unwrap_or(0)),
        "spec.minReadySeconds",
        errs,
    );
}

/// On update, apps/v1's selector may not change.
pub(crate) fn immutable_selector(
    selector: &LabelSelector,
    old: Option<&LabelSelector>,
    errs: &mut Errs,
) {
    if let Some(old) = old {
        errs.extend(immutable(selector, old, "spec.selector"));
    }
}

/// The labels of a pod template.
pub(crate) fn template_labels(t: &PodTemplateSpec) -> BTreeMap<String, String> {
    t.metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// `LabelSelectorAsSelector(selector).Matches(labels)`; an absent selector matches nothing.
pub(crate) fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, ()> {
    match selector {
        None => Ok(false),
        Some(s) => super::meta::selector_matches(s, labels),
    }
}

/// A required selector: `{}` after the typed round trip means it was left out.
pub(crate) fn required_selector(s: &LabelSelector) -> Option<&LabelSelector> {
    (!selector_is_empty(s)).then_some(s)
}

/// The selector checks of Deployments, ReplicaSets, StatefulSets and Jobs: required and well
/// formed.
pub(crate) fn validate_selector(selector: Option<&LabelSelector>, errs: &mut Errs) {
    match selector {
        None => errs.push(required("spec.selector", "")),
        Some(s) => validate_label_selector(s, "spec.selector", errs),
    }
}

/// `ValidatePodTemplateSpecForReplicaSet` (Deployments, ReplicaSets), also the template checks
/// of DaemonSets: labels the selector matches, a valid pod template that always restarts.
pub(crate) fn validate_controller_template(
    t: &PodTemplateSpec,
    selector: Option<&LabelSelector>,
    kind: &str,
    errs: &mut Errs,
) {
    let path = "spec.template";
    let labels = template_labels(t);
    if selector_matches(selector, &labels) == Ok(false) {
        errs.push(labels_mismatch(&labels));
    }
    validate_template_spec(t, path, errs);
    validate_always_restarts(t, kind, path, errs);
}

/// The selector and template checks of Deployments and ReplicaSets: the selector required and
/// well formed, then, when it can be used at all, [`validate_controller_template`].
fn validate_selector_and_template(
    raw: &LabelSelector,
    template: &PodTemplateSpec,
    errs: &mut Errs,
) {
    let selector = required_selector(raw);
    validate_selector(selector, errs);
    let usable = selector.map_or(Ok(false), |s| {
        super::meta::selector_matches(s, &BTreeMap::new())
    });
    if usable.is_err() {
        errs.push(invalid_json("spec.selector", raw, "invalid label selector"));
    } else {
        validate_controller_template(template, selector, "ReplicaSet", errs);
    }
}

/// Controllers run their pods forever: restart policy `Always`, no active deadline.
pub(crate) fn validate_always_restarts(
    t: &PodTemplateSpec,
    kind: &str,
    path: &str,
    errs: &mut Errs,
) {
    let spec = t.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("");
    if policy != "Always" {
        errs.push(not_supported(
            format!("{path}.spec.restartPolicy"),
            policy,
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(forbidden(
            format!("{path}.spec.activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// The number an int-or-percent holds: the integer, or the percentage without its `%` (a
/// string that is no valid percentage parses as a plain number, else 0).
pub(crate) fn int_or_percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::Int(i) => Some(i64::from(*i)),
        IntOrString::String(s) if is_valid_percent(s).is_empty() => {
            s.trim_end_matches('%').parse().ok()
        }
        IntOrString::String(s) => Some(s.parse().unwrap_or(0)),
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
pub(crate) fn validate_int_or_percent(
    v: &IntOrString,
    path: &str,
    at_most_100: bool,
    errs: &mut Errs,
) {
    match v {
        IntOrString::String(s) => {
            for msg in is_valid_percent(s) {
                errs.push(invalid(path, s.as_str(), &msg));
            }
            if at_most_100 {
                not_more_than_100_percent(v, path, errs);
            }
        }
        IntOrString::Int(i) => nonnegative(i64::from(*i), path, errs),
    }
}

/// `IsNotMoreThan100Percent`: a valid percentage may not exceed 100%.
fn not_more_than_100_percent(v: &IntOrString, path: &str, errs: &mut Errs) {
    if let IntOrString::String(s) = v {
        let over = is_valid_percent(s).is_empty()
            && s.trim_end_matches('%')
                .parse::<i64>()
                .is_ok_and(|p| p > 100);
        if over {
            errs.push(invalid(path, s.as_str(), "must not be greater than 100%"));
        }
    }
}

/// An int-or-string as the JSON value an error reports.
pub(crate) fn int_or_string_value(v: &IntOrString) -> Value {
    match v {
        IntOrString::Int(i) => Value::from(*i),
        IntOrString::String(s) => Value::from(s.as_str()),
    }
}

// ---------------------------------------------------------------------------------------------
// Kinds

/// PodTemplates: the template is a pod template spec.
pub(crate) fn validate_pod_template(t: &PodTemplate, _old: Option<&PodTemplate>) -> Errs {
    let mut errs = Vec::new();
    validate_template_spec(
        &t.template.clone().unwrap_or_default(),
        "template",
        &mut errs,
    );
    errs
}

/// `ValidateReplicationController(Update)`.
pub(crate) fn validate_replication_controller(
    rc: &ReplicationController,
    _old: Option<&ReplicationController>,
) -> Errs {
    let mut errs = Vec::new();
    let spec = rc.spec.clone().unwrap_or_default();
    validate_min_ready_seconds(spec.min_ready_seconds, &mut errs);
    let selector = spec.selector.clone().unwrap_or_default();
    if selector.is_empty() {
        errs.push(required("spec.selector", ""));
    }
    validate_replicas(spec.replicas, &mut errs);
    match &spec.template {
        None => errs.push(required("spec.template", "")),
        Some(t) => {
            let labels = template_labels(t);
            if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                errs.push(labels_mismatch(&labels));
            }
            validate_template_spec(t, "spec.template", &mut errs);
            validate_always_restarts(t, "ReplicationController", "spec.template", &mut errs);
        }
    }
    errs
}

/// `ValidateDeployment(Update)`, with apps/v1's immutable selector.
pub(crate) fn validate_deployment(d: &Deployment, old: Option<&Deployment>) -> Errs {
    let mut errs = Vec::new();
    let spec = d.spec.clone();
    validate_replicas(spec.replicas, &mut errs);
    validate_selector_and_template(&spec.selector, &spec.template, &mut errs);
    let strategy = spec.strategy.clone().unwrap_or_default();
    match strategy.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => errs.push(required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let unavailable = ru.max_unavailable.clone().unwrap_or(IntOrString::Int(0));
                let surge = ru.max_surge.clone().unwrap_or(IntOrString::Int(0));
                let p = "spec.strategy.rollingUpdate";
                validate_int_or_percent(
                    &unavailable,
                    &child(p, "maxUnavailable"),
                    false,
                    &mut errs,
                );
                validate_int_or_percent(&surge, &child(p, "maxSurge"), false, &mut errs);
                if int_or_percent_value(&unavailable) == Some(0)
                    && int_or_percent_value(&surge) == Some(0)
                {
                    errs.push(invalid(
                        child(p, "maxUnavailable"),
                        int_or_string_value(&unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(&unavailable, &child(p, "maxUnavailable"), &mut errs);
            }
        },
        _ => errs.push(not_supported_json(
            "spec.strategy",
            &strategy,
            &["Recreate", "RollingUpdate"],
        )),
    }
    validate_min_ready_seconds(spec.min_ready_seconds, &mut errs);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if let Some(limit) = spec.revision_history_limit {
        nonnegative(i64::from(limit), "spec.revisionHistoryLimit", &mut errs);
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        nonnegative(
            i64::from(deadline),
            "spec.progressDeadlineSeconds",
            &mut errs,
        );
        if deadline <= min_ready {
            errs.push(invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    immutable_selector(&spec.selector, old.map(|o| &o.spec.selector), &mut errs);
    errs
}

/// `ValidateReplicaSet(Update)`, with apps/v1's immutable selector.
pub(crate) fn validate_replica_set(rs: &ReplicaSet, old: Option<&ReplicaSet>) -> Errs {
    let mut errs = Vec::new();
    let spec = rs.spec.clone();
    validate_replicas(spec.replicas, &mut errs);
    validate_min_ready_seconds(spec.min_ready_seconds, &mut errs);
    validate_selector_and_template(
        &spec.selector,
        &spec.template.clone().unwrap_or_default(),
        &mut errs,
    );
    immutable_selector(&spec.selector, old.map(|o| &o.spec.selector), &mut errs);
    errs
}

/// `ValidateControllerRevision(Update)`.
pub(crate) fn validate_controller_revision(
    cr: &ControllerRevision,
    old: Option<&ControllerRevision>,
) -> Errs {
    let mut errs = Vec::new();
    if cr.data.0.is_null() {
        errs.push(required("data", "data is mandatory"));
    }
    nonnegative(cr.revision.unwrap_or(0), "revision", &mut errs);
    if let Some(old) = old {
        errs.extend(immutable(&cr.data, &old.data, "data"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::strategy::{default_object, validate, FieldError};

    fn deployment(selector: serde_json::Value, labels: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": selector,
                "template": {"metadata": {"labels": labels},
                             "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
            }
        })
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn deployment_defaults() {
        let mut d = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        default_object("apps", "deployments", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["securityContext"], json!({}));
        assert!(pod.get("enableServiceLinks").is_none());
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert!(
            validate("apps", "deployments", &d, None).is_empty(),
            "{:?}",
            validate("apps", "deployments", &d, None)
        );
    }

    #[test]
    fn deployment_selector_rules() {
        let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "db"}));
        default_object("apps", "deployments", &mut d);
        assert_eq!(messages(&validate("apps", "deployments", &d, None)), [
            "spec.template.metadata.labels: Invalid value: {\"app\":\"db\"}: `selector` does not match template `labels`"
        ]);
        let mut missing = deployment(json!({}), json!({"app": "web"}));
        default_object("apps", "deployments", &mut missing);
        assert_eq!(messages(&validate("apps", "deployments", &missing, None)), [
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
        ]);
        let mut old = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web", "v": "1"}),
        );
        default_object("apps", "deployments", &mut old);
        let mut new = deployment(
            json!({"matchLabels": {"app": "web", "v": "1"}}),
            json!({"app": "web", "v": "1"}),
        );
        default_object("apps", "deployments", &mut new);
        assert_eq!(messages(&validate("apps", "deployments", &new, Some(&old))), [
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"v\":\"1\"}}: field is immutable"
        ]);
    }

    #[test]
    fn controllers_require_always() {
        let mut d = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["replicas"] = json!(-1);
        default_object("apps", "deployments", &mut d);
        assert_eq!(messages(&validate("apps", "deployments", &d, None)), [
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ]);
    }

    #[test]
    fn other_controller_defaults() {
        let mut sts = json!({"metadata": {"name": "db", "namespace": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
        default_object("apps", "statefulsets", &mut sts);
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        assert!(validate("apps", "statefulsets", &sts, None).is_empty());

        let mut ds = json!({"metadata": {"name": "agent", "namespace": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}}}});
        default_object("apps", "daemonsets", &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert!(validate("apps", "daemonsets", &ds, None).is_empty());

        let mut rc = json!({"metadata": {"name": "rc", "namespace": "d"}, "spec": {
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}}}});
        default_object("", "replicationcontrollers", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "a"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert!(validate("", "replicationcontrollers", &rc, None).is_empty());
    }
}
