//! Helpers every controller shares: label selectors, controller references, pod states,
//! and the adapter that turns informer changes into queue keys.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::{Resource, ResourceExt};
use tug_runtime::{Change, ObjectKey, Queue};

/// Whether `labels` match a LabelSelector. A missing selector matches nothing, an empty one
/// everything, as upstream's `metav1.LabelSelectorAsSelector`.
pub fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(sel) = selector else {
        return false;
    };
    if let Some(want) = &sel.match_labels {
        if !want.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    for expr in sel.match_expressions.iter().flatten() {
        let have = labels.get(&expr.key);
        let values = expr.values.as_deref().unwrap_or_default();
        let ok = match expr.operator.as_str() {
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => have.is_none_or(|h| !values.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `labels` match a map selector (ReplicationController, Service): every pair
/// present. An empty or missing map matches nothing.
pub fn map_selector_matches(
    selector: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> bool {
    match selector {
        Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of<K: Resource>(obj: &K) -> Option<&OwnerReference> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller owner reference to `owner` (controller and blockOwnerDeletion set).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether an object is being deleted.
pub fn is_deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// A pod neither finished nor being deleted, as upstream's `controller.IsPodActive`.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Whether a pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// When a pod's Ready condition last turned True.
pub fn pod_ready_since(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Whether a pod has been Ready for at least `min_ready_seconds` at `now`, as upstream's
/// `podutil.IsPodAvailable`.
pub fn is_pod_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    pod_ready_since(pod)
        .is_some_and(|since| now.as_second() - since.as_second() >= i64::from(min_ready_seconds))
}

/// An informer handler that queues the key of every changed object.
pub fn enqueue_self<K: Resource>(
    queue: &Queue<ObjectKey>,
) -> impl Fn(&Change<'_, K>) + Send + Sync + 'static {
    let queue = queue.clone();
    move |c| queue.add(ObjectKey::of(c.object().as_ref()))
}

/// An informer handler that queues the controlling owner of every changed object, if its
/// kind is `kind` (for an update, both the old and the new owner).
pub fn enqueue_controller<K: Resource>(
    queue: &Queue<ObjectKey>,
    kind: &'static str,
) -> impl Fn(&Change<'_, K>) + Send + Sync + 'static {
    let queue = queue.clone();
    move |c| {
        let add = |obj: &K| {
            if let Some(r) = controller_of(obj).filter(|r| r.kind == kind) {
                queue.add(ObjectKey::new(
                    obj.namespace().unwrap_or_default(),
                    r.name.clone(),
                ));
            }
        };
        if let Some(old) = c.old() {
            add(old);
        }
        add(c.object());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors_as_upstream() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(!selector_matches(None, &l));
        assert!(selector_matches(Some(&LabelSelector::default()), &l));
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["front".into(), "back".into()]),
            }]),
        };
        assert!(selector_matches(Some(&sel), &l));
        assert!(!selector_matches(Some(&sel), &labels(&[("app", "web")])));
        assert!(map_selector_matches(Some(&labels(&[("app", "web")])), &l));
        assert!(!map_selector_matches(Some(&BTreeMap::new()), &l));
    }
}
