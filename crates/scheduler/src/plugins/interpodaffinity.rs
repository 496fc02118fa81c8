//! InterPodAffinity: Filter enforces the pod's required affinity and anti-affinity and the
//! required anti-affinity of pods already running; Score follows preferred terms (the pod's
//! and, symmetrically, the running pods'). Counts are per topology pair (label key, value).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use tug_runtime::Store;

use crate::framework::{namespace_labels, Code, Ctx, CycleState, Plugin, Status, MAX_NODE_SCORE};
use crate::labels::Labels;
use crate::node_info::{AffinityTerm, NodeInfo, PodInfo};

const NAME: &str = "InterPodAffinity";
const SCORE: &str = "InterPodAffinity/score";

/// Upstream's reasons.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// The pod's affinity is not met.
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// The pod's anti-affinity is not met.
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

/// The weight a running pod's required affinity term gives a matching incoming pod.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type Counts = HashMap<(String, String), i64>;

#[derive(Clone, Default)]
struct State {
    existing_anti_affinity: Counts,
    affinity: Counts,
    anti_affinity: Counts,
    ns_labels: Option<Labels>,
    /// The namespaces, for terms with a namespaceSelector when AddPod/RemovePod (which get
    /// no context) count a pod.
    namespaces: Store<Namespace>,
}

fn pair(node: &NodeInfo, key: &str) -> Option<(String, String)> {
    node.labels()
        .and_then(|l| l.get(key))
        .map(|v| (key.to_owned(), v.clone()))
}

fn bump(counts: &mut Counts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(p) = pair(node, key) {
        let c = counts.entry(p.clone()).or_default();
        *c += by;
        if *c == 0 {
            counts.remove(&p);
        }
    }
}

fn matches_all(
    terms: &[AffinityTerm],
    pod: &PodInfo,
    ctx_labels: &dyn Fn(&str) -> Option<Labels>,
) -> bool {
    !terms.is_empty()
        && terms
            .iter()
            .all(|t| t.matches(pod, ns_labels_for(t, pod, ctx_labels).as_ref()))
}

fn ns_labels_for(
    t: &AffinityTerm,
    pod: &PodInfo,
    lookup: &dyn Fn(&str) -> Option<Labels>,
) -> Option<Labels> {
    // Only namespace selectors need the labels; skip the lookup otherwise.
    match &t.namespace_selector {
        Some(s) if !s.is_everything() => lookup(&pod.namespace),
        _ => None,
    }
}

impl State {
    fn update(
        &mut self,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        by: i64,
        lookup: &dyn Fn(&str) -> Option<Labels>,
    ) {
        for t in &existing.required_anti_affinity {
            if t.matches(pod, self.ns_labels.as_ref()) {
                bump(&mut self.existing_anti_affinity, node, &t.topology_key, by);
            }
        }
        if matches_all(&pod.required_affinity, existing, lookup) {
            for t in &pod.required_affinity {
                bump(&mut self.affinity, node, &t.topology_key, by);
            }
        }
        for t in &pod.required_anti_affinity {
            if t.matches(existing, ns_labels_for(t, existing, lookup).as_ref()) {
                bump(&mut self.anti_affinity, node, &t.topology_key, by);
            }
        }
    }
}

/// The InterPodAffinity plugin.
pub struct InterPodAffinity;

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, ctx: &Ctx<'_>) -> Status {
        let snap = ctx.snapshot;
        let own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        if !own && snap.with_required_anti_affinity.is_empty() {
            return Status::skip();
        }
        let lookup = |ns: &str| ctx.ns_labels(ns);
        let mut s = State {
            ns_labels: ctx.ns_labels(&pod.namespace),
            namespaces: ctx.namespaces.clone(),
            ..Default::default()
        };
        for &i in &snap.with_required_anti_affinity {
            let node = &snap.nodes[i];
            for existing in &node.pods {
                for t in &existing.required_anti_affinity {
                    if t.matches(pod, s.ns_labels.as_ref()) {
                        bump(&mut s.existing_anti_affinity, node, &t.topology_key, 1);
                    }
                }
            }
        }
        if own {
            for node in &snap.nodes {
                for existing in &node.pods {
                    if matches_all(&pod.required_affinity, existing, &lookup) {
                        for t in &pod.required_affinity {
                            bump(&mut s.affinity, node, &t.topology_key, 1);
                        }
                    }
                    for t in &pod.required_anti_affinity {
                        if t.matches(existing, ns_labels_for(t, existing, &lookup).as_ref()) {
                            bump(&mut s.anti_affinity, node, &t.topology_key, 1);
                        }
                    }
                }
            }
        }
        state.write(NAME, s);
        Status::success()
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.modify::<State>(NAME) {
            let namespaces = s.namespaces.clone();
            s.update(pod, added, node, 1, &|ns| namespace_labels(&namespaces, ns));
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
            let namespaces = s.namespaces.clone();
            s.update(pod, removed, node, -1, &|ns| {
                namespace_labels(&namespaces, ns)
            });
        }
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<State>(NAME) else {
            return Status::success();
        };
        // Required affinity.
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match pair(node, &t.topology_key) {
                Some(p) => {
                    if s.affinity.get(&p).copied().unwrap_or(0) <= 0 {
                        pods_exist = false;
                    }
                }
                None => {
                    return Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY)
                }
            }
        }
        if !pods_exist {
            // The first pod of a group that selects itself may go anywhere.
            let self_match = s.affinity.is_empty()
                && pod
                    .required_affinity
                    .iter()
                    .all(|t| t.matches(pod, s.ns_labels.as_ref()));
            if !self_match {
                return Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY);
            }
        }
        // The pod's anti-affinity.
        if !s.anti_affinity.is_empty() {
            for t in &pod.required_anti_affinity {
                if pair(node, &t.topology_key)
                    .is_some_and(|p| s.anti_affinity.get(&p).copied().unwrap_or(0) > 0)
                {
                    return Status::new(Code::Unschedulable, ERR_REASON_ANTI_AFFINITY);
                }
            }
        }
        // Running pods' anti-affinity.
        if !s.existing_anti_affinity.is_empty() {
            if let Some(labels) = node.labels() {
                for (k, v) in labels {
                    if s.existing_anti_affinity
                        .get(&(k.clone(), v.clone()))
                        .copied()
                        .unwrap_or(0)
                        > 0
                    {
                        return Status::new(Code::Unschedulable, ERR_REASON_EXISTING_ANTI_AFFINITY);
                    }
                }
            }
        }
        Status::success()
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        ctx: &Ctx<'_>,
    ) -> bool {
        let snap = ctx.snapshot;
        let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !own && snap.with_affinity.is_empty() {
            return false;
        }
        let lookup = |ns: &str| ctx.ns_labels(ns);
        let pod_ns = ctx.ns_labels(&pod.namespace);
        let mut scores: Counts = HashMap::new();
        let mut visit = |node: &NodeInfo| {
            for existing in &node.pods {
                for w in &pod.preferred_affinity {
                    if w.term
                        .matches(existing, ns_labels_for(&w.term, existing, &lookup).as_ref())
                    {
                        bump(&mut scores, node, &w.term.topology_key, w.weight);
                    }
                }
                for w in &pod.preferred_anti_affinity {
                    if w.term
                        .matches(existing, ns_labels_for(&w.term, existing, &lookup).as_ref())
                    {
                        bump(&mut scores, node, &w.term.topology_key, -w.weight);
                    }
                }
                for t in &existing.required_affinity {
                    if t.matches(pod, pod_ns.as_ref()) {
                        bump(&mut scores, node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                for w in &existing.preferred_affinity {
                    if w.term.matches(pod, pod_ns.as_ref()) {
                        bump(&mut scores, node, &w.term.topology_key, w.weight);
                    }
                }
                for w in &existing.preferred_anti_affinity {
                    if w.term.matches(pod, pod_ns.as_ref()) {
                        bump(&mut scores, node, &w.term.topology_key, -w.weight);
                    }
                }
            }
        };
        if own {
            snap.nodes.iter().for_each(|n| visit(n));
        } else {
            snap.with_affinity
                .iter()
                .for_each(|&i| visit(&snap.nodes[i]));
        }
        if scores.is_empty() {
            return false;
        }
        state.write(SCORE, scores);
        true
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let (Some(scores), Some(labels)) = (state.read::<Counts>(SCORE), node.labels()) else {
            return 0;
        };
        scores
            .iter()
            .filter(|((k, v), _)| labels.get(k) == Some(v))
            .map(|(_, s)| *s)
            .sum()
    }

    fn normalize(&self, _: &CycleState, scores: &mut [i64]) {
        let (min, max) = (
            scores.iter().copied().min().unwrap_or(0),
            scores.iter().copied().max().unwrap_or(0),
        );
        for s in scores.iter_mut() {
            *s = if max == min {
                0
            } else {
                MAX_NODE_SCORE * (*s - min) / (max - min)
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

    fn node(name: &str, zone: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": zone}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"}}
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn anti(app: &str, key: &str) -> serde_json::Value {
        serde_json::json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
        ]}}})
    }

    #[test]
    fn anti_affinity_both_ways_and_affinity() {
        let mut cache = Cache::default();
        cache.set_node(node("a", "z1"));
        cache.set_node(node("b", "z1"));
        cache.set_node(node("c", "z2"));
        let web = pod_with(
            "web-0",
            serde_json::json!({"labels": {"app": "web"}}),
            anti("web", "zone"),
        );
        cache.add_pod(Arc::new(web), "a");
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let namespaces = tug_runtime::Store::default();
        let ctx = Ctx {
            snapshot: &snap,
            namespaces: &namespaces,
        };
        let check = |p: &PodInfo| -> Vec<String> {
            let mut st = CycleState::default();
            assert!(!InterPodAffinity.pre_filter(&mut st, p, &ctx).is_rejected());
            snap.nodes
                .iter()
                .map(|n| InterPodAffinity.filter(&st, p, n).message())
                .collect()
        };
        // The running pod's anti-affinity keeps another web pod out of zone z1.
        let web1 = pod_with(
            "web-1",
            serde_json::json!({"labels": {"app": "web"}}),
            serde_json::json!({}),
        );
        assert_eq!(
            check(&web1),
            [
                ERR_REASON_EXISTING_ANTI_AFFINITY,
                ERR_REASON_EXISTING_ANTI_AFFINITY,
                ""
            ]
        );
        // The incoming pod's anti-affinity, by hostname.
        let shy = pod_with(
            "shy",
            serde_json::json!({}),
            anti("web", "kubernetes.io/hostname"),
        );
        assert_eq!(check(&shy), [ERR_REASON_ANTI_AFFINITY, "", ""]);
        // Affinity to the web pod's zone.
        let friend = pod_with(
            "friend",
            serde_json::json!({}),
            serde_json::json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}
            ]}}}),
        );
        assert_eq!(check(&friend), ["", "", ERR_REASON_AFFINITY]);
    }
}
