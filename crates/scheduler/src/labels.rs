//! Label and node selectors compiled once per pod: `metav1.LabelSelector` (matchLabels and
//! matchExpressions with In, NotIn, Exists, DoesNotExist) and `v1.NodeSelector` terms (also Gt
//! and Lt, and matchFields on `metadata.name`), matched against label maps without
//! allocating.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels as the API carries them.
pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// One requirement on one label.
#[derive(Clone, Debug, PartialEq)]
pub struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.key);
        match (&self.op, v) {
            (Op::In(vals), Some(v)) => vals.iter().any(|x| x == v),
            (Op::In(_), None) => false,
            (Op::NotIn(vals), Some(v)) => !vals.iter().any(|x| x == v),
            (Op::NotIn(_), None) => true,
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }

    fn from_parts(key: &str, operator: &str, values: &[String]) -> Option<Self> {
        let op = match operator {
            "In" => Op::In(values.to_vec()),
            "NotIn" => Op::NotIn(values.to_vec()),
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt(values.first()?.parse().ok()?),
            "Lt" => Op::Lt(values.first()?.parse().ok()?),
            _ => return None,
        };
        Some(Self {
            key: key.to_owned(),
            op,
        })
    }
}

/// A compiled label selector. `Nothing` matches no labels (a null selector in an affinity
/// term); an empty requirement list matches every label set.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// Matches nothing.
    Nothing,
    /// Matches labels that meet every requirement.
    All(Vec<Requirement>),
}

impl Selector {
    /// Compiles a LabelSelector; `None` (null) matches nothing, as
    /// `metav1.LabelSelectorAsSelector(nil)`. An invalid selector matches nothing.
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Self {
        let Some(sel) = sel else {
            return Selector::Nothing;
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::In(vec![v.clone()]),
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            if matches!(e.operator.as_str(), "Gt" | "Lt") {
                return Selector::Nothing;
            }
            match Requirement::from_parts(&e.key, &e.operator, e.values.as_deref().unwrap_or(&[])) {
                Some(r) => reqs.push(r),
                None => return Selector::Nothing,
            }
        }
        Selector::All(reqs)
    }

    /// A selector that matches everything.
    pub fn everything() -> Self {
        Selector::All(Vec::new())
    }

    /// Adds `key in (value)` (matchLabelKeys of topology spread constraints).
    pub fn and_equals(&mut self, key: &str, value: &str) {
        if let Selector::All(reqs) = self {
            reqs.push(Requirement {
                key: key.to_owned(),
                op: Op::In(vec![value.to_owned()]),
            });
        }
    }

    /// Whether `labels` match.
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::All(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// Whether the labels of an object with optional labels match.
    pub fn matches_opt(&self, labels: Option<&Labels>) -> bool {
        static EMPTY: Labels = BTreeMap::new();
        self.matches(labels.unwrap_or(&EMPTY))
    }

    /// Whether this selector matches everything.
    pub fn is_everything(&self) -> bool {
        matches!(self, Selector::All(r) if r.is_empty())
    }
}

/// One compiled node selector term: label requirements and `metadata.name` requirements.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
    valid: bool,
}

impl NodeTerm {
    fn compile(term: &NodeSelectorTerm) -> Self {
        let mut valid = true;
        let mut conv = |reqs: Option<&Vec<NodeSelectorRequirement>>| -> Vec<Requirement> {
            reqs.into_iter()
                .flatten()
                .filter_map(|r| {
                    let req = Requirement::from_parts(
                        &r.key,
                        &r.operator,
                        r.values.as_deref().unwrap_or(&[]),
                    );
                    if req.is_none() {
                        valid = false;
                    }
                    req
                })
                .collect()
        };
        let labels = conv(term.match_expressions.as_ref());
        let fields = conv(term.match_fields.as_ref());
        let empty = labels.is_empty() && fields.is_empty();
        Self {
            labels,
            fields,
            valid: valid && !empty,
        }
    }

    fn matches(&self, node: &Node) -> bool {
        if !self.valid {
            return false;
        }
        static EMPTY: Labels = BTreeMap::new();
        let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY);
        if !self.labels.iter().all(|r| r.matches(labels)) {
            return false;
        }
        self.fields.iter().all(|r| {
            r.key == "metadata.name"
                && match (&r.op, node.metadata.name.as_deref()) {
                    (Op::In(vals), Some(n)) => vals.iter().any(|v| v == n),
                    (Op::NotIn(vals), Some(n)) => !vals.iter().any(|v| v == n),
                    _ => false,
                }
        })
    }
}

/// A compiled NodeSelector: its terms are ORed.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSelectorTerms(Vec<NodeTerm>);

impl NodeSelectorTerms {
    /// Compiles a NodeSelector.
    pub fn compile(sel: &NodeSelector) -> Self {
        Self(
            sel.node_selector_terms
                .iter()
                .map(NodeTerm::compile)
                .collect(),
        )
    }

    /// Whether any term matches the node.
    pub fn matches(&self, node: &Node) -> bool {
        self.0.iter().any(|t| t.matches(node))
    }

    /// Compiles one term (for preferred terms).
    pub fn one(term: &NodeSelectorTerm) -> Self {
        Self(vec![NodeTerm::compile(term)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors_match_as_upstream() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "env", "operator": "Exists"}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = Selector::from_label_selector(Some(&sel));
        assert!(s.matches(&labels(&[("app", "web"), ("env", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "x"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!Selector::from_label_selector(None).matches(&labels(&[])));
        assert!(
            Selector::from_label_selector(Some(&LabelSelector::default())).matches(&labels(&[]))
        );
    }

    #[test]
    fn node_selector_terms_are_ored_and_match_fields() {
        let sel: NodeSelector = serde_json::from_value(serde_json::json!({
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let terms = NodeSelectorTerms::compile(&sel);
        let mut node = Node::default();
        node.metadata.name = Some("n2".into());
        node.metadata.labels = Some(labels(&[("cores", "8")]));
        assert!(terms.matches(&node));
        node.metadata.labels = Some(labels(&[("cores", "2")]));
        assert!(!terms.matches(&node));
        node.metadata.name = Some("n1".into());
        assert!(terms.matches(&node));
    }
}
