//! NodeAffinity: Filter requires the pod's nodeSelector and required node affinity; Score
//! sums the weights of the preferred terms a node matches.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::framework::{default_normalize, Code, Ctx, CycleState, Plugin, Status};
use crate::labels::NodeSelectorTerms;
use crate::node_info::{NodeInfo, PodInfo};

const NAME: &str = "NodeAffinity";

/// Upstream's reason.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

/// The pod's required node constraints, compiled.
#[derive(Clone, Debug, Default)]
pub struct RequiredNodeAffinity {
    selector: Vec<(String, String)>,
    terms: Option<NodeSelectorTerms>,
}

impl RequiredNodeAffinity {
    /// Compiles a pod's nodeSelector and required node affinity.
    pub fn of(pod: &PodInfo) -> Self {
        let spec = pod.pod.spec.as_ref();
        Self {
            selector: spec
                .and_then(|s| s.node_selector.as_ref())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            terms: spec
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(NodeSelectorTerms::compile),
        }
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.selector.is_empty() && self.terms.is_none()
    }

    /// Whether the node meets them.
    pub fn matches(&self, node: &Node) -> bool {
        let labels = node.metadata.labels.as_ref();
        let sel_ok = self
            .selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        sel_ok && self.terms.as_ref().is_none_or(|t| t.matches(node))
    }
}

struct Preferred(Vec<(NodeSelectorTerms, i64)>);

/// The NodeAffinity plugin.
pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _: &Ctx<'_>) -> Status {
        let req = RequiredNodeAffinity::of(pod);
        if req.is_empty() {
            return Status::skip();
        }
        state.write(NAME, req);
        Status::success()
    }

    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let (Some(req), Some(n)) = (state.read::<RequiredNodeAffinity>(NAME), node.node.as_ref())
        else {
            return Status::success();
        };
        if req.matches(n) {
            Status::success()
        } else {
            Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_POD)
        }
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        _: &Ctx<'_>,
    ) -> bool {
        let terms: Vec<_> = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|t| t.weight != 0)
            .map(|t| (NodeSelectorTerms::one(&t.preference), i64::from(t.weight)))
            .collect();
        if terms.is_empty() {
            return false;
        }
        state.write("NodeAffinity/preferred", Preferred(terms));
        true
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let (Some(p), Some(n)) = (
            state.read::<Preferred>("NodeAffinity/preferred"),
            node.node.as_ref(),
        ) else {
            return 0;
        };
        p.0.iter()
            .filter(|(t, _)| t.matches(n))
            .map(|(_, w)| *w)
            .sum()
    }

    fn normalize(&self, _: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}
