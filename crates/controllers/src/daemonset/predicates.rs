//! Which nodes a DaemonSet's pod belongs on, as upstream's `NodeShouldRunDaemonPod`: the
//! pod's nodeSelector and required node affinity must match the node, and its tolerations
//! (with those every daemon pod gets) must tolerate the node's NoSchedule and NoExecute
//! taints — a pod already there may stay if only NoSchedule taints are untolerated.

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    Taint, Toleration,
};
use kube::ResourceExt;

/// The tolerations upstream adds to every daemon pod (`AddOrUpdateDaemonPodTolerations`).
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut add = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        add.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in add {
        let t = Toleration {
            key: Some(key.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some(effect.to_owned()),
            ..Toleration::default()
        };
        tolerations.retain(|x| {
            !(x.key == t.key
                && x.effect == t.effect
                && x.operator.as_deref().unwrap_or("Equal") == "Exists")
        });
        tolerations.push(t);
    }
}

/// Pins a pod to `node` with a required `metadata.name In [node]` node affinity, replacing
/// any required terms (upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_owned(),
                operator: "In".to_owned(),
                values: Some(vec![node.to_owned()]),
            }]),
            match_expressions: None,
        }],
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(selector);
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node.name_any();
    exprs
        .iter()
        .all(|r| requirement_matches(r, node.labels().get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&name)))
}

/// Whether the pod's nodeSelector and required node affinity match `node`.
pub fn affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| node.labels().get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(r) => r.node_selector_terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

/// Whether a toleration tolerates a taint (upstream's `ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

fn tolerated(spec: &PodSpec, node: &Node, effects: &[&str]) -> bool {
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// (should run, may continue running) for a daemon pod with `spec` (tolerations already
/// added) on `node`.
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node.name_any())
    {
        return (false, false);
    }
    if !affinity_matches(spec, node) {
        return (false, false);
    }
    if !tolerated(spec, node, &["NoSchedule", "NoExecute"]) {
        return (false, tolerated(spec, node, &["NoExecute"]));
    }
    (true, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "n1", "labels": labels },
            "spec": { "taints": taints },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn taints_selectors_and_daemon_tolerations() {
        let mut spec = PodSpec::default();
        add_daemon_tolerations(&mut spec);
        assert_eq!(
            should_run(&spec, &node(serde_json::json!({}), serde_json::json!([]))),
            (true, true)
        );
        let unschedulable = node(
            serde_json::json!({}),
            serde_json::json!([{ "key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule" }]),
        );
        assert_eq!(should_run(&spec, &unschedulable), (true, true));
        let tainted = node(
            serde_json::json!({}),
            serde_json::json!([{ "key": "dedicated", "value": "db", "effect": "NoSchedule" }]),
        );
        assert_eq!(should_run(&spec, &tainted), (false, true));
        let evicting = node(
            serde_json::json!({}),
            serde_json::json!([{ "key": "dedicated", "value": "db", "effect": "NoExecute" }]),
        );
        assert_eq!(should_run(&spec, &evicting), (false, false));
        spec.node_selector = Some([("disk".to_owned(), "ssd".to_owned())].into());
        assert_eq!(
            should_run(&spec, &node(serde_json::json!({}), serde_json::json!([]))),
            (false, false)
        );
        assert_eq!(
            should_run(
                &spec,
                &node(serde_json::json!({ "disk": "ssd" }), serde_json::json!([]))
            ),
            (true, true)
        );
        pin_to_node(&mut spec, "n2");
        assert_eq!(
            should_run(
                &spec,
                &node(serde_json::json!({ "disk": "ssd" }), serde_json::json!([]))
            ),
            (false, false)
        );
    }
}
