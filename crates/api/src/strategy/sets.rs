//! StatefulSets and DaemonSets: `ValidateStatefulSet(Update)` (a stable spec where only
//! replicas, template, update strategy, ordinals, claim retention and readiness may change)
//! and `ValidateDaemonSet(Update)` (rolling updates move by unavailability or surge, not both).

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::meta::{child, normalized, validate_label_selector, validate_labels};
use super::workloads::{
    immutable_selector, int_or_percent_value, int_or_string_value, labels_mismatch,
    required_selector, selector_matches, template_labels, validate_always_restarts,
    validate_controller_template, validate_int_or_percent, validate_min_ready_seconds,
    validate_replicas, validate_selector,
};
use super::{
    forbidden, invalid, invalid_json, nonnegative, not_supported, not_supported_json, required,
    Errs,
};

/// `ValidateStatefulSet(Update)`.
pub(crate) fn validate_stateful_set(sts: &StatefulSet, old: Option<&StatefulSet>) -> Errs {
    let mut errs = Vec::new();
    let spec = sts.spec.clone();
    match spec.pod_management_policy.as_deref().unwrap_or("") {
        "" => errs.push(required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    match strategy.type_.as_deref().unwrap_or("") {
        "" => errs.push(required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(ru) = &strategy.rolling_update {
                errs.push(invalid_json(
                    "spec.updateStrategy.rollingUpdate",
                    ru,
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = &strategy.rolling_update {
                let p = "spec.updateStrategy.rollingUpdate";
                nonnegative(
                    i64::from(ru.partition.unwrap_or(0)),
                    child(p, "partition"),
                    &mut errs,
                );
                if let Some(mu) = &ru.max_unavailable {
                    validate_int_or_percent(mu, &child(p, "maxUnavailable"), true, &mut errs);
                    if int_or_percent_value(mu) == Some(0) {
                        errs.push(invalid(
                            child(p, "maxUnavailable"),
                            int_or_string_value(mu),
                            "cannot be 0",
                        ));
                    }
                }
            }
        }
        _ => errs.push(invalid_json(
            "spec.updateStrategy",
            &strategy,
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        let p = "spec.persistentVolumeClaimRetentionPolicy";
        for (field, v) in [
            ("whenDeleted", &policy.when_deleted),
            ("whenScaled", &policy.when_scaled),
        ] {
            let v = v.as_deref().unwrap_or("");
            if !matches!(v, "Retain" | "Delete") {
                errs.push(not_supported(child(p, field), v, &["Retain", "Delete"]));
            }
        }
    }
    validate_replicas(spec.replicas, &mut errs);
    validate_min_ready_seconds(spec.min_ready_seconds, &mut errs);
    if let Some(ordinals) = &spec.ordinals {
        nonnegative(
            i64::from(ordinals.start.unwrap_or(0)),
            "spec.ordinals.start",
            &mut errs,
        );
    }
    let selector = required_selector(&spec.selector);
    validate_selector(selector, &mut errs);
    let labels = template_labels(&spec.template);
    match selector_matches(selector, &labels) {
        Err(()) => errs.push(invalid_json("spec.selector", &spec.selector, "")),
        Ok(matched) => {
            if !matched {
                errs.push(labels_mismatch(&labels));
            }
            let meta = spec.template.metadata.clone().unwrap_or_default();
            validate_labels(
                &meta.labels.unwrap_or_default(),
                "spec.template.labels",
                &mut errs,
            );
            super::meta::validate_annotations(
                &meta.annotations.unwrap_or_default(),
                "spec.template.annotations",
                &mut errs,
            );
        }
    }
    validate_always_restarts(&spec.template, "StatefulSet", "spec.template", &mut errs);
    if let Some(old) = old {
        let old_spec = old.spec.clone();
        let mut munged = spec.clone();
        munged.replicas = old_spec.replicas;
        munged.template = old_spec.template.clone();
        munged.update_strategy = old_spec.update_strategy.clone();
        munged.min_ready_seconds = old_spec.min_ready_seconds;
        munged.ordinals = old_spec.ordinals.clone();
        munged.persistent_volume_claim_retention_policy =
            old_spec.persistent_volume_claim_retention_policy.clone();
        let a = normalized(serde_json::to_value(&munged).unwrap_or(Value::Null));
        let b = normalized(serde_json::to_value(&old_spec).unwrap_or(Value::Null));
        if a != b {
            errs.push(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
        }
    }
    errs
}

/// `ValidateDaemonSet(Update)`, with apps/v1's immutable selector.
pub(crate) fn validate_daemon_set(ds: &DaemonSet, old: Option<&DaemonSet>) -> Errs {
    let mut errs = Vec::new();
    let spec = ds.spec.clone();
    let selector = required_selector(&spec.selector);
    if let Some(s) = selector {
        validate_label_selector(s, "spec.selector", &mut errs);
    }
    validate_controller_template(&spec.template, selector, "DaemonSet", &mut errs);
    validate_min_ready_seconds(spec.min_ready_seconds, &mut errs);
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    match strategy.type_.as_deref().unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => match &strategy.rolling_update {
            None => errs.push(required("spec.updateStrategy.rollingUpdate", "")),
            Some(ru) => {
                let p = "spec.updateStrategy.rollingUpdate";
                let unavailable = ru.max_unavailable.clone().unwrap_or(IntOrString::Int(0));
                let surge = ru.max_surge.clone().unwrap_or(IntOrString::Int(0));
                validate_int_or_percent(&unavailable, &child(p, "maxUnavailable"), true, &mut errs);
                validate_int_or_percent(&surge, &child(p, "maxSurge"), true, &mut errs);
                let has_unavailable = int_or_percent_value(&unavailable).unwrap_or(0) != 0;
                let has_surge = int_or_percent_value(&surge).unwrap_or(0) != 0;
                if has_unavailable && has_surge {
                    errs.push(invalid(
                        child(p, "maxSurge"),
                        int_or_string_value(&surge),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_unavailable && !has_surge {
                    errs.push(required(
                        child(p, "maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        },
        _ => errs.push(not_supported_json(
            "spec.updateStrategy",
            &strategy,
            &["RollingUpdate", "OnDelete"],
        )),
    }
    if let Some(limit) = spec.revision_history_limit {
        nonnegative(i64::from(limit), "spec.revisionHistoryLimit", &mut errs);
    }
    immutable_selector(&spec.selector, old.map(|o| &o.spec.selector), &mut errs);
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::strategy::{default_object, validate, FieldError};

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    fn sts() -> serde_json::Value {
        let mut s = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "d"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}}}});
        default_object("apps", "statefulsets", &mut s);
        s
    }

    #[test]
    fn stateful_set_updates() {
        let old = sts();
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("pg:17");
        assert!(validate("apps", "statefulsets", &new, Some(&old)).is_empty());
        new["spec"]["serviceName"] = json!("other");
        assert_eq!(messages(&validate("apps", "statefulsets", &new, Some(&old))), [
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]);
    }

    #[test]
    fn daemon_set_rolling_update() {
        let mut ds = json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}}}});
        default_object("apps", "daemonsets", &mut ds);
        assert_eq!(messages(&validate("apps", "daemonsets", &ds, None)), [
            "spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`",
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: \"10%\": may not be set when maxUnavailable is non-zero",
        ]);
    }
}
