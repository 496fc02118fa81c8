//! Ephemeral containers (`pods/<name>/ephemeralcontainers`, what `kubectl debug` writes), as
//! upstream's `ValidatePodEphemeralContainersUpdate`: the existing ones may be neither
//! changed nor removed; new ones are containers without ports, probes, lifecycle, resources
//! or a restart policy, named uniquely in the pod, targeting (if at all) one of its
//! containers.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};
use serde::Deserialize;
use serde_json::Value;

use super::meta::{child, index};
use super::{decode_error, duplicate, forbidden, not_found, Errs, FieldError};

const PATH: &str = "spec.ephemeralContainers";

/// The errors of an update of `old`'s ephemeral containers to `new`'s.
pub fn validate_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (new_pod, old_pod) = match (Pod::deserialize(new), Pod::deserialize(old)) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return vec![decode_error(&e)],
    };
    let mut errs: Errs = Vec::new();
    let spec = new_pod.spec.unwrap_or_default();
    let old_ephemeral = old_pod
        .spec
        .and_then(|s| s.ephemeral_containers)
        .unwrap_or_default();
    let ephemeral = spec.ephemeral_containers.clone().unwrap_or_default();
    for old in &old_ephemeral {
        match ephemeral.iter().find(|e| e.name == old.name) {
            None => errs.push(forbidden(
                PATH,
                &format!(
                    "existing ephemeral containers {:?} may not be removed\n",
                    old.name
                ),
            )),
            Some(new) if new != old => errs.push(forbidden(
                format!("{PATH}[{}]", old.name),
                &format!(
                    "existing ephemeral containers {:?} may not be changed\n",
                    old.name
                ),
            )),
            Some(_) => {}
        }
    }
    let targets: BTreeSet<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    let mut names = targets.clone();
    let vols = super::volumes::validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        None,
        "spec.volumes",
        &mut Vec::new(),
    );
    let claims: BTreeSet<String> = spec
        .resource_claims
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    for (i, e) in ephemeral.iter().enumerate() {
        let p = index(PATH, i);
        let Ok(c) = as_container(e) else {
            continue;
        };
        super::containers::validate_container_common(&c, &vols, &claims, &p, &mut errs);
        if !names.insert(e.name.as_str()) {
            errs.push(duplicate(child(&p, "name"), e.name.as_str()));
        }
        if let Some(t) = e.target_container_name.as_deref() {
            if !targets.contains(t) {
                errs.push(not_found(child(&p, "targetContainerName"), t));
            }
        }
        let resources = e.resources.as_ref().is_some_and(|r| {
            r.limits.as_ref().is_some_and(|l| !l.is_empty())
                || r.requests.as_ref().is_some_and(|l| !l.is_empty())
        });
        let set = [
            ("lifecycle", e.lifecycle.is_some()),
            ("livenessProbe", e.liveness_probe.is_some()),
            ("ports", e.ports.as_ref().is_some_and(|p| !p.is_empty())),
            ("readinessProbe", e.readiness_probe.is_some()),
            (
                "resizePolicy",
                e.resize_policy.as_ref().is_some_and(|p| !p.is_empty()),
            ),
            ("resources", resources),
            ("restartPolicy", e.restart_policy.is_some()),
            ("startupProbe", e.startup_probe.is_some()),
        ];
        for (field, is_set) in set {
            if is_set {
                errs.push(forbidden(
                    child(&p, field),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }
    errs
}

/// An ephemeral container as the container it runs as (its fields are a container's, plus
/// the target).
pub fn as_container(e: &EphemeralContainer) -> Result<Container, serde_json::Error> {
    let mut v = serde_json::to_value(e)?;
    if let Some(m) = v.as_object_mut() {
        m.remove("targetContainerName");
    }
    serde_json::from_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod with `ephemeral` containers, defaulted as the API server has them by now.
    fn pod(mut ephemeral: Value) -> Value {
        for e in ephemeral.as_array_mut().into_iter().flatten() {
            e["terminationMessagePolicy"] = json!("File");
            e["imagePullPolicy"] = json!("Always");
        }
        json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": "x"}],
            "ephemeralContainers": ephemeral
        }})
    }

    fn messages(new: &Value, old: &Value) -> Vec<String> {
        validate_ephemeral_containers_update(new, old)
            .iter()
            .map(FieldError::message)
            .collect()
    }

    #[test]
    fn new_ones_are_checked_and_old_ones_kept() {
        let old = pod(json!([{"name": "d1", "image": "busybox"}]));
        let added = pod(json!([
            {"name": "d1", "image": "busybox"},
            {"name": "d2", "image": "busybox", "targetContainerName": "app"}
        ]));
        assert_eq!(messages(&added, &old), Vec::<String>::new());
        let bad = pod(json!([
            {"name": "d1", "image": "busybox"},
            {"name": "app", "image": "busybox", "ports": [{"containerPort": 80, "protocol": "TCP"}],
             "readinessProbe": {"exec": {"command": ["true"]}}, "targetContainerName": "nope"}
        ]));
        assert_eq!(
            messages(&bad, &old),
            [
                "spec.ephemeralContainers[1].name: Duplicate value: \"app\"",
                "spec.ephemeralContainers[1].targetContainerName: Not found: \"nope\"",
                "spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[1].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
            ]
        );
        let changed = pod(json!([{"name": "d1", "image": "alpine"}]));
        assert_eq!(
            messages(&changed, &old),
            ["spec.ephemeralContainers[d1]: Forbidden: existing ephemeral containers \"d1\" may not be changed\n"]
        );
        let removed = pod(json!([]));
        assert_eq!(
            messages(&removed, &old),
            ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"d1\" may not be removed\n"]
        );
    }
}
