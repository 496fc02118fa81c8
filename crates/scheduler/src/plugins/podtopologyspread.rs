//! PodTopologySpread: Filter keeps `DoNotSchedule` constraints (the skew of matching pods
//! across the domains of `topologyKey` stays within `maxSkew`, `minDomains` counted);
//! Score prefers nodes in less crowded domains for `ScheduleAnyway` constraints.
//! Nodes count only if they pass the pod's node affinity/selector (nodeAffinityPolicy Honor)
//! and, with nodeTaintsPolicy Honor, its tolerations, and carry every constraint's key.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::nodeaffinity::RequiredNodeAffinity;
use super::tainttoleration::untolerated;
use crate::framework::{Code, Ctx, CycleState, Plugin, Status, MAX_NODE_SCORE};
use crate::labels::Selector;
use crate::node_info::{NodeInfo, PodInfo};

const NAME: &str = "PodTopologySpread";
const SCORE: &str = "PodTopologySpread/score";

/// Upstream's reasons.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// A node lacks a constraint's topology key.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    key: String,
    selector: Selector,
    min_domains: usize,
    honor_affinity: bool,
    honor_taints: bool,
}

fn constraints(pod: &PodInfo, action: &str) -> Vec<Constraint> {
    let list: &[TopologySpreadConstraint] = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[]);
    list.iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| {
            let mut selector = Selector::from_label_selector(c.label_selector.as_ref());
            for k in c.match_label_keys.iter().flatten() {
                if let Some(v) = pod.labels().and_then(|l| l.get(k)) {
                    selector.and_equals(k, v);
                }
            }
            Constraint {
                max_skew: i64::from(c.max_skew),
                key: c.topology_key.clone(),
                selector,
                min_domains: c.min_domains.map_or(1, |m| m.max(1) as usize),
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn counts_node(
    pod: &PodInfo,
    cs: &[Constraint],
    req: &RequiredNodeAffinity,
    node: &NodeInfo,
) -> bool {
    let Some(n) = node.node.as_ref() else {
        return false;
    };
    if cs.iter().any(|c| c.honor_affinity) && !req.matches(n) {
        return false;
    }
    if cs.iter().any(|c| c.honor_taints) {
        let tols = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]);
        if untolerated(node.taints(), tols).is_some() {
            return false;
        }
    }
    let labels = node.labels();
    cs.iter()
        .all(|c| labels.is_some_and(|l| l.contains_key(&c.key)))
}

fn matching_pods(pod: &PodInfo, c: &Constraint, node: &NodeInfo) -> i64 {
    node.pods
        .iter()
        .filter(|p| {
            !p.terminating && p.namespace == pod.namespace && c.selector.matches_opt(p.labels())
        })
        .count() as i64
}

/// Per constraint, the matching pods in each domain over the nodes that count, and how many
/// nodes counted.
fn count_domains(
    pod: &PodInfo,
    cs: &[Constraint],
    req: &RequiredNodeAffinity,
    nodes: &[Arc<NodeInfo>],
) -> (Vec<HashMap<String, i64>>, usize) {
    let mut counts = vec![HashMap::new(); cs.len()];
    let mut eligible = 0;
    for node in nodes {
        if !counts_node(pod, cs, req, node) {
            continue;
        }
        eligible += 1;
        for (i, c) in cs.iter().enumerate() {
            if let Some(v) = node.labels().and_then(|l| l.get(&c.key)) {
                *counts[i].entry(v.clone()).or_insert(0) += matching_pods(pod, c, node);
            }
        }
    }
    (counts, eligible)
}

#[derive(Clone)]
struct State {
    constraints: Vec<Constraint>,
    /// Per constraint: domain value → matching pods.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count over its domains (0 below minDomains), kept with
    /// the counts so Filter reads it per node instead of scanning every domain.
    min: Vec<i64>,
    req: RequiredNodeAffinity,
}

impl State {
    fn new(
        constraints: Vec<Constraint>,
        counts: Vec<HashMap<String, i64>>,
        req: RequiredNodeAffinity,
    ) -> Self {
        let mut s = State {
            min: vec![0; constraints.len()],
            constraints,
            counts,
            req,
        };
        for i in 0..s.constraints.len() {
            s.refresh_min(i);
        }
        s
    }

    fn refresh_min(&mut self, i: usize) {
        let c = &self.counts[i];
        self.min[i] = if c.len() < self.constraints[i].min_domains {
            0
        } else {
            c.values().copied().min().unwrap_or(0)
        };
    }

    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
        if other.namespace != pod.namespace || !counts_node(pod, &self.constraints, &self.req, node)
        {
            return;
        }
        for i in 0..self.constraints.len() {
            let c = &self.constraints[i];
            if c.selector.matches_opt(other.labels()) {
                if let Some(v) = node.labels().and_then(|l| l.get(&c.key)) {
                    *self.counts[i].entry(v.clone()).or_default() += by;
                    self.refresh_min(i);
                }
            }
        }
    }
}

/// The PodTopologySpread plugin.
pub struct PodTopologySpread;

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, ctx: &Ctx<'_>) -> Status {
        let cs = constraints(pod, "DoNotSchedule");
        if cs.is_empty() {
            return Status::skip();
        }
        let req = RequiredNodeAffinity::of(pod);
        let (counts, _) = count_domains(pod, &cs, &req, &ctx.snapshot.nodes);
        state.write(NAME, State::new(cs, counts, req));
        Status::success()
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.modify::<State>(NAME) {
            s.update(pod, added, node, 1);
        }
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) {
        if let Some(s) = state.modify::<State>(NAME) {
            s.update(pod, removed, node, -1);
        }
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<State>(NAME) else {
            return Status::success();
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(v) = node.labels().and_then(|l| l.get(&c.key)) else {
                return Status::new(
                    Code::UnschedulableAndUnresolvable,
                    ERR_REASON_NODE_LABEL_NOT_MATCH,
                );
            };
            let self_match = i64::from(c.selector.matches_opt(pod.labels()));
            let matched = s.counts[i].get(v).copied().unwrap_or(0);
            if matched + self_match - s.min[i] > c.max_skew {
                return Status::new(Code::Unschedulable, ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        ctx: &Ctx<'_>,
    ) -> bool {
        let cs = constraints(pod, "ScheduleAnyway");
        if cs.is_empty() {
            return false;
        }
        let req = RequiredNodeAffinity::of(pod);
        let (counts, eligible) = count_domains(pod, &cs, &req, &ctx.snapshot.nodes);
        let weights: Vec<f64> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.key == "kubernetes.io/hostname" {
                    eligible
                } else {
                    counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        state.write(SCORE, (State::new(cs, counts, req), weights));
        true
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some((s, weights)) = state.read::<(State, Vec<f64>)>(SCORE) else {
            return 0;
        };
        let Some(labels) = node.labels() else {
            return -1;
        };
        if s.constraints.iter().any(|c| !labels.contains_key(&c.key)) {
            return -1;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let v = &labels[&c.key];
            let cnt = s.counts[i].get(v).copied().unwrap_or(0);
            score += cnt as f64 * weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, _: &CycleState, scores: &mut [i64]) {
        // -1 marks nodes without the keys: they score 0.
        let valid = scores.iter().copied().filter(|s| *s >= 0);
        let (min, max) = valid.fold((i64::MAX, i64::MIN), |(a, b), s| (a.min(s), b.max(s)));
        for s in scores.iter_mut() {
            *s = if *s < 0 {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Cache, Snapshot};
    use crate::plugins::testing::pod_with;
    use k8s_openapi::api::core::v1::Node;

    #[test]
    fn skew_is_kept_within_max_skew() {
        let mut cache = Cache::default();
        for (n, z) in [("a", "z1"), ("b", "z2"), ("c", "")] {
            let mut labels = serde_json::json!({"kubernetes.io/hostname": n});
            if !z.is_empty() {
                labels["zone"] = z.into();
            }
            let node: Node = serde_json::from_value(serde_json::json!({
                "metadata": {"name": n, "labels": labels},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"}}
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            cache.set_node(Arc::new(node));
        }
        let web = |name: &str| {
            pod_with(
                name,
                serde_json::json!({"labels": {"app": "web"}}),
                serde_json::json!({"topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "web"}}
                }]}),
            )
        };
        cache.add_pod(Arc::new(web("w0")), "a");
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let namespaces = tug_runtime::Store::default();
        let ctx = Ctx {
            snapshot: &snap,
            namespaces: &namespaces,
        };
        let p = web("w1");
        let mut st = CycleState::default();
        assert!(PodTopologySpread.pre_filter(&mut st, &p, &ctx).is_success());
        let got: Vec<String> = snap
            .nodes
            .iter()
            .map(|n| PodTopologySpread.filter(&st, &p, n).message())
            .collect();
        assert_eq!(
            got,
            [
                ERR_REASON_CONSTRAINTS_NOT_MATCH,
                "",
                ERR_REASON_NODE_LABEL_NOT_MATCH
            ]
        );
    }
}
