//! The deployment controller's arithmetic, as upstream's `pkg/controller/deployment/util`:
//! the pod-template hash, the revision and replica annotations a Deployment writes on its
//! ReplicaSets, maxSurge/maxUnavailable fenceposts, conditions and the rollout predicates.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// A ReplicaSet's revision (and a Deployment's latest).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had (when a rollback made it new again).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// How long revision-history may grow (upstream's `maxRevHistoryLengthInChars`).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Condition reasons, as upstream.
pub mod reason {
    /// A ReplicaSet could not be created.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    /// The new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// The new ReplicaSet already existed.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// The rollout moved.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// The rollout is complete.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// The rollout did not move within progressDeadlineSeconds.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// The Deployment is paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// The Deployment was resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// Enough pods are available.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Too few pods are available.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// Annotations never copied from a Deployment to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// FNV-32a.
fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream's `rand.SafeEncodeString`: each byte mapped onto consonants and digits that
/// cannot spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The pod-template hash, as upstream's `controller.ComputeHash`: FNV-32a over the template
/// (here its JSON) and the collision count, rendered with [`safe_encode`].
pub fn compute_hash<T: serde::Serialize>(template: &T, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(&json, 0x811c_9dc5);
    if let Some(c) = collision_count {
        h = fnv32a(&c.to_le_bytes(), h);
    }
    safe_encode(&h.to_string())
}

/// Whether two templates are equal once the pod-template-hash label is ignored.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                if let Some(m) = t.metadata.as_mut() {
                    m.labels = None;
                }
            }
        }
        t
    };
    strip(a) == strip(b)
}

/// `spec.replicas` of a Deployment (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(0)
}

/// A ReplicaSet's revision (0 when unset or unparsable).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The value of an integer annotation.
pub fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key)?.parse().ok()
}

/// Whether the Deployment rolls out with RollingUpdate (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// Upstream's `GetScaledValueFromIntOrPercent`: an int, or a percentage of `total` rounded
/// up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let Some(pct) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse().unwrap_or(0);
            };
            let prod = pct * i64::from(total);
            let v = if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            };
            i32::try_from(v).unwrap_or(i32::MAX)
        }
    }
}

/// maxSurge and maxUnavailable resolved against `desired`; both zero makes maxUnavailable 1
/// (upstream's `ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&quarter);
    let unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let desired = replicas(d);
    let surge = scaled_value(surge, desired, true);
    let unavailable = scaled_value(unavailable, desired, false);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// How many pods above `replicas` a rollout may run.
pub fn max_surge(d: &Deployment) -> i32 {
    if is_rolling(d) {
        fenceposts(d).0
    } else {
        0
    }
}

/// How many of `replicas` may be unavailable during a rollout.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// Sets desired-replicas and max-replicas; answers whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_owned(), v);
            changed = true;
        }
    }
    changed
}

/// Copies the Deployment's annotations (but its own bookkeeping) onto the ReplicaSet, sets
/// the revision (keeping earlier ones in revision-history) and, for a ReplicaSet about to be
/// created, the replica annotations; answers whether anything changed (upstream's
/// `SetNewReplicaSetAnnotations`).
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.annotations() {
        if NOT_COPIED.contains(&k.as_str()) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = a.get(REVISION).cloned().unwrap_or_default();
    let old_int: i64 = if old.is_empty() {
        0
    } else {
        match old.parse() {
            Ok(v) => v,
            Err(_) => return changed,
        }
    };
    if old_int < new_revision {
        a.insert(REVISION.to_owned(), new_revision.to_string());
        changed = true;
        if !old.is_empty() {
            let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            if history.is_empty() {
                a.insert(REVISION_HISTORY.to_owned(), old);
            } else {
                let mut parts: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < parts.len() {
                    total -= parts[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REVISION_HISTORY_CHARS {
                    parts.drain(..start);
                    parts.push(&old);
                    let joined = parts.join(",");
                    a.insert(REVISION_HISTORY.to_owned(), joined);
                }
            }
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// Now, to the second (what the API keeps).
pub fn now() -> Time {
    let t = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// A condition stamped now.
pub fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.to_owned()),
        status: Some(status.to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

/// The condition of a type.
pub fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// Sets a condition, as upstream's `SetDeploymentCondition`: unchanged if status and reason
/// are; the transition time kept if only the reason changed.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(s, c.type_.as_deref().unwrap_or_default()) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(s, c.type_.as_deref().unwrap_or_default());
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Removes the condition of a type.
pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

/// Whether progressDeadlineSeconds is set (and not "forever").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// Sum of spec.replicas.
pub fn spec_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|r| rs_replicas(r)).sum()
}

/// Sum of status.replicas.
pub fn actual_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|r| r.status.as_ref().map_or(0, |s| s.replicas))
        .sum()
}

/// Sum of status.readyReplicas.
pub fn ready_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Sum of status.availableReplicas.
pub fn available_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Whether the rollout is complete: every replica updated and available, status current.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas == Some(r)
        && s.replicas == Some(r)
        && s.available_replicas == Some(r)
        && s.observed_generation >= d.metadata.generation
}

/// Whether the rollout moved since the status `d` carries.
pub fn is_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(s.replicas) - n(s.updated_replicas);
    n(s.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(s.ready_replicas) > n(old.ready_replicas)
        || n(s.available_replicas) > n(old.available_replicas)
}

/// Seconds until the Progressing condition's deadline passes (negative when past), if it
/// counts down at all.
pub fn deadline_left(d: &Deployment, s: &DeploymentStatus) -> Option<i64> {
    if !has_progress_deadline(d) {
        return None;
    }
    let c = get_condition(s, "Progressing")?;
    let r = c.reason.as_deref();
    if r == Some(reason::NEW_RS_AVAILABLE) || r == Some(reason::TIMED_OUT) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0.as_second();
    let deadline = i64::from(d.spec.progress_deadline_seconds.unwrap_or(600));
    Some(from + deadline - k8s_openapi::jiff::Timestamp::now().as_second())
}

/// Whether the rollout has not moved within progressDeadlineSeconds.
pub fn timed_out(d: &Deployment, s: &DeploymentStatus) -> bool {
    if get_condition(s, "Progressing").and_then(|c| c.reason.as_deref()) == Some(reason::TIMED_OUT)
    {
        return true;
    }
    deadline_left(d, s).is_some_and(|left| left < 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_encoding_and_fnv_as_upstream() {
        // FNV-32a of "" is the offset basis; of "a" a known constant.
        assert_eq!(fnv32a(b"a", 0x811c_9dc5), 0xe40c_292c);
        // rand.SafeEncodeString: '1' is 49, 49 % 27 = 22, the 23rd of the alphabet is '5'.
        assert_eq!(safe_encode("12345"), "56789");
    }

    #[test]
    fn percentages_round_as_upstream() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled_value(&pct, 10, true), 3);
        assert_eq!(scaled_value(&pct, 10, false), 2);
        assert_eq!(scaled_value(&IntOrString::Int(4), 10, false), 4);
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "spec": {
                "replicas": 1,
                "selector": {},
                "template": {},
                "strategy": { "rollingUpdate": { "maxSurge": "0%", "maxUnavailable": "10%" } },
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fenceposts(&d), (0, 1));
    }

    #[test]
    fn a_rollback_keeps_revision_history() {
        let d = Deployment::default();
        let mut rs = ReplicaSet::default();
        rs.metadata.annotations = Some(BTreeMap::from([(REVISION.to_owned(), "1".to_owned())]));
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true));
        assert_eq!(
            rs.annotations().get(REVISION).map(String::as_str),
            Some("3")
        );
        assert_eq!(
            rs.annotations().get(REVISION_HISTORY).map(String::as_str),
            Some("1")
        );
        assert!(set_new_rs_annotations(&d, &mut rs, 5, true));
        assert_eq!(
            rs.annotations().get(REVISION_HISTORY).map(String::as_str),
            Some("1,3")
        );
        assert!(!set_new_rs_annotations(&d, &mut rs, 5, true));
    }
}
