//! NodeResourcesFit (Filter: the pod's requests fit the node's free allocatable, pod count
//! included; Score: LeastAllocated over cpu and memory) and NodeResourcesBalancedAllocation
//! (Score: nodes whose cpu and memory fractions stay close).

use std::sync::Arc;

use crate::framework::{Code, Ctx, CycleState, Plugin, Status, MAX_NODE_SCORE};
use crate::node_info::{NodeInfo, PodInfo};

/// The NodeResourcesFit plugin.
pub struct Fit;

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn pre_filter(&self, _: &mut CycleState, _: &PodInfo, _: &Ctx<'_>) -> Status {
        Status::success()
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let mut reasons = Vec::new();
        let alloc = &node.allocatable;
        if node.pods.len() as i64 + 1 > alloc.allowed_pods {
            reasons.push("Too many pods".into());
        }
        let req = &pod.requests;
        let used = &node.requested;
        if !req.is_zero() {
            if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
                reasons.push("Insufficient cpu".into());
            }
            if req.memory > 0 && req.memory > alloc.memory - used.memory {
                reasons.push("Insufficient memory".into());
            }
            if req.ephemeral_storage > 0
                && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
            {
                reasons.push("Insufficient ephemeral-storage".into());
            }
            for (name, want) in &req.scalar {
                if *want > 0 && *want > alloc.scalar(name) - used.scalar(name) {
                    reasons.push(format!("Insufficient {name}").into());
                }
            }
        }
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: Code::Unschedulable,
                reasons,
                plugin: "",
            }
        }
    }

    fn pre_score(&self, _: &mut CycleState, _: &PodInfo, _: &[Arc<NodeInfo>], _: &Ctx<'_>) -> bool {
        true
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let least = |requested: i64, capacity: i64| {
            if capacity == 0 || requested > capacity {
                0
            } else {
                (capacity - requested) * MAX_NODE_SCORE / capacity
            }
        };
        let cpu = least(
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        );
        let mem = least(
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        );
        (cpu + mem) / 2
    }
}

/// The NodeResourcesBalancedAllocation plugin.
pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn pre_score(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        _: &Ctx<'_>,
    ) -> bool {
        // A pod that requests neither cpu nor memory changes no node's balance.
        pod.requests.milli_cpu != 0 || pod.requests.memory != 0
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let frac = |requested: i64, capacity: i64| {
            if capacity == 0 {
                1.0
            } else {
                (requested as f64 / capacity as f64).min(1.0)
            }
        };
        let cpu = frac(
            node.requested.milli_cpu + pod.requests.milli_cpu,
            node.allocatable.milli_cpu,
        );
        let mem = frac(
            node.requested.memory + pod.requests.memory,
            node.allocatable.memory,
        );
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn fit_reports_every_insufficient_resource() {
        let mut n = node(
            "n",
            serde_json::json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "1", "nvidia.com/gpu": "1"}}}),
        );
        let big = pod(
            "big",
            serde_json::json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "2"}}}]}),
        );
        let s = Fit.filter(&CycleState::default(), &big, &n);
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(
            s.reasons,
            [
                "Insufficient cpu",
                "Insufficient memory",
                "Insufficient nvidia.com/gpu"
            ]
        );
        let small = pod(
            "small",
            serde_json::json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]}),
        );
        assert!(Fit.filter(&CycleState::default(), &small, &n).is_success());
        n.add_pod(Arc::new(pod(
            "other",
            serde_json::json!({"containers": []}),
        )));
        assert_eq!(
            Fit.filter(&CycleState::default(), &small, &n).reasons,
            ["Too many pods"]
        );
    }

    #[test]
    fn least_allocated_and_balanced_scores() {
        let n = node(
            "n",
            serde_json::json!({"status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"}}}),
        );
        let p = pod(
            "p",
            serde_json::json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "16Gi"}}}]}),
        );
        assert_eq!(Fit.score(&CycleState::default(), &p, &n), 50);
        assert_eq!(
            BalancedAllocation.score(&CycleState::default(), &p, &n),
            100
        );
    }
}
