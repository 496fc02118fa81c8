//! Taint rules the node lifecycle controller and its taint eviction share: which taints a
//! node's conditions call for, whether a toleration tolerates a taint, and when a pod on a
//! node with NoExecute taints must go.

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `node.kubernetes.io/not-ready`: the node's Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable`: the node's Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `node.kubernetes.io/unschedulable`: spec.unschedulable.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Condition-driven NoSchedule taints: (condition type, status, taint key).
const NO_SCHEDULE: &[(&str, &str, &str)] = &[
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
];

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// Whether a taint is one this controller manages.
fn managed(t: &Taint) -> bool {
    let key_managed = NO_SCHEDULE.iter().any(|(_, _, k)| *k == t.key) || t.key == UNSCHEDULABLE;
    match t.effect.as_str() {
        "NoSchedule" => key_managed,
        "NoExecute" => t.key == NOT_READY || t.key == UNREACHABLE,
        _ => false,
    }
}

/// The taints the node should carry given its conditions: the node's own taints, less the
/// managed ones its conditions no longer call for, plus the ones they call for that it lacks
/// (NoExecute ones stamped with `now`). `None` when nothing changes.
pub fn desired_taints(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let mut want: Vec<(&str, &str)> = NO_SCHEDULE
        .iter()
        .filter(|(t, s, _)| condition(node, t) == Some(*s))
        .map(|(_, _, k)| (*k, "NoSchedule"))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want.push((UNSCHEDULABLE, "NoSchedule"));
    }
    match condition(node, "Ready") {
        Some("False") => want.push((NOT_READY, "NoExecute")),
        Some("Unknown") => want.push((UNREACHABLE, "NoExecute")),
        _ => {}
    }
    let have = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut out: Vec<Taint> = have
        .iter()
        .filter(|t| !managed(t) || want.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (key, effect) in want {
        if !out.iter().any(|t| t.key == key && t.effect == effect) {
            out.push(Taint {
                key: key.to_owned(),
                effect: effect.to_owned(),
                time_added: (effect == "NoExecute").then_some(Time(now)),
                value: None,
            });
        }
    }
    (out != have).then_some(out)
}

/// Whether `toleration` tolerates `taint`, as upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The node's NoExecute taints.
pub fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

/// What to do with a pod on a node with NoExecute taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do: no NoExecute taints, or every one tolerated forever.
    Stay,
    /// Delete it now.
    Evict,
    /// Delete it at this time (seconds since the epoch) unless the taints go first.
    EvictAt(i64),
}

/// The verdict for `pod` under `taints`: evicted at once when some taint is not tolerated;
/// otherwise at the earliest taint `timeAdded` (or `now`, when absent) plus the
/// `tolerationSeconds` of a toleration tolerating it (0 or less: at once); a pod whose
/// tolerations have no seconds stays.
pub fn verdict(pod: &Pod, taints: &[Taint], now: Timestamp) -> Verdict {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut at: Option<i64> = None;
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Verdict::Evict;
        }
        let since = taint.time_added.as_ref().map_or(now, |t| t.0).as_second();
        for t in matching {
            if let Some(secs) = t.toleration_seconds {
                if secs <= 0 {
                    return Verdict::Evict;
                }
                let when = since.saturating_add(secs);
                at = Some(at.map_or(when, |a| a.min(when)));
            }
        }
    }
    match at {
        None => Verdict::Stay,
        Some(when) if when <= now.as_second() => Verdict::Evict,
        Some(when) => Verdict::EvictAt(when),
    }
}
