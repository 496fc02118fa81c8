//! TaintToleration: Filter rejects nodes with a NoSchedule or NoExecute taint the pod does
//! not tolerate; Score prefers nodes with fewer untolerated PreferNoSchedule taints.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{default_normalize, Code, Ctx, CycleState, Plugin, Status};
use crate::node_info::{NodeInfo, PodInfo};

const NAME: &str = "TaintToleration";

/// Whether a toleration tolerates a taint (upstream's `Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// The first NoSchedule/NoExecute taint of `taints` the tolerations do not tolerate.
pub fn untolerated<'a>(taints: &'a [Taint], tols: &[Toleration]) -> Option<&'a Taint> {
    taints.iter().find(|taint| {
        (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !tols.iter().any(|t| tolerates(t, taint))
    })
}

/// The TaintToleration plugin.
pub struct TaintToleration;

struct PreferTolerations(Vec<Toleration>);

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, _: &mut CycleState, _: &PodInfo, _: &Ctx<'_>) -> Status {
        Status::success()
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let taints = node.taints();
        if taints.is_empty() {
            return Status::success();
        }
        match untolerated(taints, tolerations(pod)) {
            None => Status::success(),
            Some(t) => Status::new(
                Code::UnschedulableAndUnresolvable,
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key,
                    t.value.as_deref().unwrap_or("")
                ),
            ),
        }
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        _: &Ctx<'_>,
    ) -> bool {
        if nodes.iter().all(|n| n.taints().is_empty()) {
            return false;
        }
        let prefer = tolerations(pod)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .cloned()
            .collect();
        state.write(NAME, PreferTolerations(prefer));
        true
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let tols = state
            .read::<PreferTolerations>(NAME)
            .map_or(&[][..], |p| &p.0[..]);
        node.taints()
            .iter()
            .filter(|taint| {
                taint.effect == "PreferNoSchedule" && !tols.iter().any(|t| tolerates(t, taint))
            })
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn untolerated_taints_reject_and_tolerations_admit() {
        let n = node(
            "n",
            serde_json::json!({"spec": {"taints": [{"key": "node-role", "value": "x", "effect": "NoSchedule"}]}}),
        );
        let p = pod("p", serde_json::json!({}));
        let s = TaintToleration.filter(&CycleState::default(), &p, &n);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.reasons, ["node(s) had untolerated taint {node-role: x}"]);
        let ok = pod(
            "p",
            serde_json::json!({"tolerations": [{"key": "node-role", "operator": "Exists"}]}),
        );
        assert!(TaintToleration
            .filter(&CycleState::default(), &ok, &n)
            .is_success());
        let wrong_value = pod(
            "p",
            serde_json::json!({"tolerations": [{"key": "node-role", "value": "y"}]}),
        );
        assert!(!TaintToleration
            .filter(&CycleState::default(), &wrong_value, &n)
            .is_success());
    }
}
