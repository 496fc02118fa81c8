//! Pods and pod templates: `SetDefaults_Pod` / `SetDefaults_PodSpec` (and the pod strategy's
//! initial status and QoS class), the pod-only rules of `ValidatePodCreate`,
//! `ValidatePodTemplateSpec`, and `ValidatePodUpdate` — a running pod's spec is immutable
//! but for images, deadlines, tolerations and scheduling gates.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Affinity, Pod, PodSpec, PodTemplateSpec};
use serde_json::Value;

use super::meta::{
    canonicalize_resources, child, each_obj, entry_obj, get_obj_mut, index, is_unset, normalized,
    parse_quantity, set_if_empty, set_if_unset, str_of, validate_annotations, validate_labels, Obj,
};
use super::podspec::validate_pod_spec;
use super::{forbidden, invalid, invalid_json, Errs};

// ---------------------------------------------------------------------------------------------
// Defaults

/// `SetDefaults_PodSpec` and everything the generated defaulter applies below a pod spec.
pub(crate) fn default_pod_spec(spec: &mut Obj) {
    set_if_empty(spec, "dnsPolicy", "ClusterFirst");
    set_if_empty(spec, "restartPolicy", "Always");
    set_if_unset(spec, "securityContext", Value::Object(Obj::new()));
    set_if_unset(spec, "terminationGracePeriodSeconds", 30);
    set_if_empty(spec, "schedulerName", "default-scheduler");
    // The v1 conversion keeps the deprecated `serviceAccount` in step with its successor.
    if str_of(spec, "serviceAccountName").is_empty() && !str_of(spec, "serviceAccount").is_empty() {
        let sa = str_of(spec, "serviceAccount").to_owned();
        spec.insert("serviceAccountName".to_owned(), Value::from(sa));
    }
    if !str_of(spec, "serviceAccountName").is_empty() {
        let sa = str_of(spec, "serviceAccountName").to_owned();
        spec.insert("serviceAccount".to_owned(), Value::from(sa));
    }
    each_obj(spec, "volumes").for_each(super::volumes::default_volume);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        each_obj(spec, list).for_each(super::containers::default_container);
    }
    canonicalize_resources(spec, "overhead");
    if let Some(res) = get_obj_mut(spec, "resources") {
        canonicalize_resources(res, "limits");
        canonicalize_resources(res, "requests");
    }
}

/// A pod template's defaults (inside pod templates, controllers, jobs).
pub(crate) fn default_template(template: &mut Obj) {
    if let Some(spec) = entry_obj(template, "spec") {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_Pod` (only for pods, not templates), the pod spec's defaults, and the initial
/// status the pod strategy sets on create (`Pending` and the QoS class) when there is none.
pub(crate) fn default_pod(pod: &mut Obj) {
    if let Some(spec) = entry_obj(pod, "spec") {
        for list in ["containers", "initContainers"] {
            for c in each_obj(spec, list) {
                let Some(res) = get_obj_mut(c, "resources") else {
                    continue;
                };
                let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
                    continue;
                };
                if let Some(requests) = entry_obj(res, "requests") {
                    for (k, v) in limits {
                        requests.entry(k).or_insert(v);
                    }
                }
            }
        }
        set_if_unset(spec, "enableServiceLinks", true);
        if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
            for list in ["containers", "initContainers"] {
                for c in each_obj(spec, list) {
                    for p in each_obj(c, "ports") {
                        if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                            let cp = p.get("containerPort").cloned().unwrap_or(Value::Null);
                            p.insert("hostPort".to_owned(), cp);
                        }
                    }
                }
            }
        }
        default_pod_spec(spec);
    }
    let qos = pod.get("spec").map_or("BestEffort", qos_class);
    if let Some(status) = entry_obj(pod, "status") {
        if is_unset(status, "phase") {
            status.insert("phase".to_owned(), Value::from("Pending"));
            set_if_unset(status, "qosClass", qos);
        }
    }
}

/// The positive cpu and memory quantities (in nano units) of one container's resource list.
fn cpu_and_memory(list: Option<&Obj>) -> BTreeMap<&'static str, i128> {
    let mut found = BTreeMap::new();
    for (name, q) in list.into_iter().flatten() {
        let Some(name) = ["cpu", "memory"].into_iter().find(|n| n == name) else {
            continue;
        };
        let v = q
            .as_str()
            .and_then(|s| parse_quantity(s).ok())
            .map_or(0, |q| q.nano);
        if v > 0 {
            found.insert(name, v);
        }
    }
    found
}

/// `qos.GetPodQOS`: Guaranteed, Burstable or BestEffort from the containers' cpu and memory.
pub(crate) fn qos_class(spec: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|l| spec.get(l).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let res = c.get("resources");
        let list = |k: &str| res.and_then(|r| r.get(k)).and_then(Value::as_object);
        for (name, v) in cpu_and_memory(list("requests")) {
            *requests.entry(name).or_insert(0) += v;
        }
        let container_limits = cpu_and_memory(list("limits"));
        if container_limits.len() < 2 {
            guaranteed = false;
        }
        for (name, v) in container_limits {
            *limits.entry(name).or_insert(0) += v;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

// ---------------------------------------------------------------------------------------------
// Validation

/// The validation of a pod, on create and on update.
pub(crate) fn validate_pod(pod: &Pod, old: Option<&Pod>) -> Errs {
    let mut errs = Vec::new();
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    validate_pod_annotations(&annotations, spec, "metadata.annotations", &mut errs);
    validate_pod_spec(spec, pod.metadata.name.as_deref(), "spec", true, &mut errs);
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        for (vi, v) in spec.volumes.iter().flatten().enumerate() {
            for (si, s) in v
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .enumerate()
            {
                if s.service_account_token.is_some() {
                    let p =
                        format!("spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken");
                    errs.push(forbidden(
                        p,
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    for (list, containers) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in containers.into_iter().flatten().enumerate() {
            let image = c.image.as_deref().unwrap_or("");
            if image.trim() != image {
                errs.push(invalid(
                    format!("spec.{list}[{i}].image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    match old {
        None => {
            if spec
                .ephemeral_containers
                .as_ref()
                .is_some_and(|e| !e.is_empty())
            {
                errs.push(forbidden(
                    "spec.ephemeralContainers",
                    "cannot be set on create",
                ));
            }
            let gated = spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty());
            if !spec.node_name.as_deref().unwrap_or("").is_empty() && gated {
                errs.push(forbidden(
                    "spec.nodeName",
                    "cannot be set until all schedulingGates have been cleared",
                ));
            }
        }
        Some(old) => validate_pod_update(pod, old, &mut errs),
    }
    errs
}

/// `ValidatePodSpecificAnnotations`: the mirror-pod and deletion-cost annotations.
fn validate_pod_annotations(
    annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
    path: &str,
    errs: &mut Errs,
) {
    if let Some(v) = annotations.get("kubernetes.io/config.mirror") {
        if spec.node_name.as_deref().unwrap_or("").is_empty() {
            errs.push(invalid(
                super::meta::key(path, "kubernetes.io/config.mirror"),
                v.as_str(),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    if let Some(v) = annotations.get("controller.kubernetes.io/pod-deletion-cost") {
        if v.parse::<i32>().is_err() {
            errs.push(invalid(
                super::meta::key(path, "controller.kubernetes.io/pod-deletion-cost"),
                v.as_str(),
                "must be a 32bit integer",
            ));
        }
    }
}

/// `ValidatePodTemplateSpec`: a template's labels, annotations and spec.
pub(crate) fn validate_template_spec(t: &PodTemplateSpec, path: &str, errs: &mut Errs) {
    let meta = t.metadata.clone().unwrap_or_default();
    let labels = meta.labels.unwrap_or_default();
    let annotations = meta.annotations.unwrap_or_default();
    validate_labels(&labels, &child(path, "labels"), errs);
    validate_annotations(&annotations, &child(path, "annotations"), errs);
    let empty = PodSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&empty);
    validate_pod_annotations(&annotations, spec, &child(path, "annotations"), errs);
    validate_pod_spec(spec, None, &child(path, "spec"), false, errs);
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(forbidden(
            child(&child(path, "spec"), "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Updates

/// The fields of a pod's spec an update may change, as upstream lists them.
const UPDATABLE: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// `ValidatePodUpdate`'s rules beyond the validation of the new pod.
fn validate_pod_update(new: &Pod, old: &Pod, errs: &mut Errs) {
    let mirror = "kubernetes.io/config.mirror";
    let new_mirror = new
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(mirror));
    let old_mirror = old
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(mirror));
    let mirror_path = super::meta::key("metadata.annotations", mirror);
    match (old_mirror, new_mirror) {
        (Some(o), n) if n != Some(o) => errs.push(forbidden(
            mirror_path,
            "may not remove or update mirror pod annotation",
        )),
        (None, Some(_)) => errs.push(forbidden(mirror_path, "may not add mirror pod annotation")),
        _ => {}
    }
    let empty = PodSpec::default();
    let spec = new.spec.as_ref().unwrap_or(&empty);
    let old_spec = old.spec.as_ref().unwrap_or(&empty);
    let lists = [
        (
            "containers",
            spec.containers.len(),
            old_spec.containers.len(),
        ),
        (
            "initContainers",
            spec.init_containers.as_ref().map_or(0, Vec::len),
            old_spec.init_containers.as_ref().map_or(0, Vec::len),
        ),
    ];
    for (field, n, o) in lists {
        if n != o {
            errs.push(forbidden(
                format!("spec.{field}"),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(0..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(invalid(
                "spec.activeDeadlineSeconds",
                ads,
                &super::meta::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return;
        }
        if old_spec.active_deadline_seconds.is_some_and(|o| o < ads) {
            errs.push(invalid(
                "spec.activeDeadlineSeconds",
                ads,
                "must be less than or equal to previous value",
            ));
            return;
        }
    } else if old_spec.active_deadline_seconds.is_some() {
        errs.push(invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        ));
    }
    let new_tol = spec.tolerations.as_deref().unwrap_or(&[]);
    for o in old_spec.tolerations.iter().flatten() {
        let kept = new_tol.iter().any(|n| {
            let mut o = o.clone();
            o.toleration_seconds = n.toleration_seconds;
            &o == n
        });
        if !kept {
            errs.push(forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    let old_gates: BTreeSet<&str> = old_spec
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            errs.push(forbidden(
                format!("spec.schedulingGates[{i}].name"),
                &format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    g.name
                ),
            ));
        }
    }
    let mut munged = spec.clone();
    for (n, o) in munged.containers.iter_mut().zip(&old_spec.containers) {
        n.image.clone_from(&o.image);
    }
    if let (Some(n), Some(o)) = (
        munged.init_containers.as_mut(),
        old_spec.init_containers.as_ref(),
    ) {
        for (n, o) in n.iter_mut().zip(o) {
            n.image.clone_from(&o.image);
        }
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    munged
        .scheduling_gates
        .clone_from(&old_spec.scheduling_gates);
    munged.tolerations.clone_from(&old_spec.tolerations);
    if old_spec
        .termination_grace_period_seconds
        .is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    if !old_gates.is_empty() {
        let old_ns = old_spec.node_selector.clone().unwrap_or_default();
        let new_ns = munged.node_selector.clone().unwrap_or_default();
        if old_ns.iter().any(|(k, v)| new_ns.get(k) != Some(v)) {
            errs.push(invalid_json(
                "spec.nodeSelector",
                &new_ns,
                "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
            ));
        }
        munged.node_selector.clone_from(&old_spec.node_selector);
        let old_na = old_spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.clone());
        match (&mut munged.affinity, old_na) {
            (Some(a), na) => a.node_affinity = na,
            (None, Some(na)) => {
                munged.affinity = Some(Affinity {
                    node_affinity: Some(na),
                    ..Default::default()
                })
            }
            (None, None) => {}
        }
        if munged
            .affinity
            .as_ref()
            .is_some_and(|a| a == &Affinity::default())
            && old_spec.affinity.is_none()
        {
            munged.affinity = None;
        }
    }
    let new_v = normalized(serde_json::to_value(&munged).unwrap_or(Value::Null));
    let old_v = normalized(serde_json::to_value(old_spec).unwrap_or(Value::Null));
    if new_v != old_v {
        let mut diff = String::new();
        json_diff("spec", &old_v, &new_v, &mut diff);
        errs.push(forbidden(
            "spec",
            &format!(
                "pod updates may not change fields other than {}\n{diff}",
                UPDATABLE.join(",")
            ),
        ));
    }
}

/// A short diff of two JSON values, one changed field per pair of lines.
fn json_diff(path: &str, old: &Value, new: &Value, out: &mut String) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                let null = Value::Null;
                json_diff(
                    &child(path, k),
                    o.get(k).unwrap_or(&null),
                    n.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => {
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                json_diff(&index(path, i), a, b, out);
            }
        }
        (o, n) if o != n => {
            out.push_str(&format!("- {path}: {o}\n+ {path}: {n}\n"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::strategy::{default_object, validate, FieldError};

    fn pod(containers: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"containers": containers}})
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn pod_defaults() {
        let mut p = pod(json!([
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
             "livenessProbe": {"httpGet": {"port": 80}}},
            {"name": "b", "image": "nginx:1.27", "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}}}
        ]));
        p["spec"]["volumes"] = json!([{"name": "cfg", "secret": {"secretName": "s"}}]);
        default_object("", "pods", &mut p);
        let spec = &p["spec"];
        let (a, b) = (&spec["containers"][0], &spec["containers"][1]);
        assert_eq!(a["imagePullPolicy"], "Always");
        assert_eq!(b["imagePullPolicy"], "IfNotPresent");
        assert_eq!(a["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(a["terminationMessagePolicy"], "File");
        assert_eq!(a["ports"][0]["protocol"], "TCP");
        assert_eq!(a["resources"], json!({}));
        assert_eq!(
            a["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            b["resources"],
            json!({"limits": {"cpu": "500m", "memory": "1Gi"},
                                          "requests": {"cpu": "500m", "memory": "1Gi"}})
        );
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["volumes"][0]["secret"]["defaultMode"], 420);
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "Burstable"})
        );
        assert!(
            validate("", "pods", &p, None).is_empty(),
            "{:?}",
            validate("", "pods", &p, None)
        );

        let mut guaranteed = pod(
            json!([{"name": "a", "image": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
        );
        default_object("", "pods", &mut guaranteed);
        assert_eq!(guaranteed["status"]["qosClass"], "Guaranteed");
        // (Moved from the apiserver, which had its own copy of the QoS rule.)
        let mut best_effort = pod(json!([{"name": "a", "image": "a"}]));
        default_object("", "pods", &mut best_effort);
        assert_eq!(best_effort["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn pod_errors() {
        let mut p = pod(json!([{"name": "web"}, {"name": "web", "image": "x"}]));
        p["spec"]["restartPolicy"] = json!("Sometimes");
        default_object("", "pods", &mut p);
        assert_eq!(messages(&validate("", "pods", &p, None)), [
            "spec.containers[0].image: Required value",
            "spec.containers[1].name: Duplicate value: \"web\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]);
        let mut empty = pod(json!([]));
        default_object("", "pods", &mut empty);
        assert_eq!(
            messages(&validate("", "pods", &empty, None)),
            ["spec.containers: Required value"]
        );
        let mut bad_name =
            pod(json!([{"name": "Web_1", "image": "x", "ports": [{"containerPort": 70000}]}]));
        default_object("", "pods", &mut bad_name);
        let msgs = messages(&validate("", "pods", &bad_name, None));
        assert!(
            msgs[0].starts_with(
                "spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label"
            ),
            "{msgs:?}"
        );
        assert_eq!(msgs[1], "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive");
    }

    #[test]
    fn pod_updates() {
        let mut old = pod(json!([{"name": "web", "image": "nginx:1.26"}]));
        default_object("", "pods", &mut old);
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        assert!(validate("", "pods", &new, Some(&old)).is_empty());
        new["spec"]["containers"][0]["command"] = json!(["sleep", "1"]);
        let errs = validate("", "pods", &new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert!(errs[0].message().starts_with(
            "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
        ), "{}", errs[0].message());
        assert!(errs[0].detail.contains("spec.containers[0].command"));
        let mut more = old.clone();
        more["spec"]["containers"] =
            json!([old["spec"]["containers"][0].clone(), {"name": "b", "image": "b"}]);
        default_object("", "pods", &mut more);
        assert_eq!(
            messages(&validate("", "pods", &more, Some(&old))),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
    }
}
