//! Builders for plugin tests.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::node_info::{NodeInfo, PodInfo};

/// A NodeInfo from a name and a JSON fragment merged into the Node.
pub fn node(name: &str, extra: serde_json::Value) -> NodeInfo {
    let mut v = serde_json::json!({"metadata": {"name": name}});
    merge(&mut v, extra);
    let n: Node = serde_json::from_value(v).unwrap_or_else(|e| panic!("node: {e}"));
    let mut ni = NodeInfo::named(name);
    ni.set_node(Arc::new(n));
    ni
}

/// A PodInfo in namespace "default" from a name and its spec (containers default to one).
pub fn pod(name: &str, spec: serde_json::Value) -> PodInfo {
    pod_with(name, serde_json::json!({}), spec)
}

/// A PodInfo with metadata fields merged in.
pub fn pod_with(name: &str, meta: serde_json::Value, spec: serde_json::Value) -> PodInfo {
    let mut s = serde_json::json!({"containers": [{"name": "c"}]});
    merge(&mut s, spec);
    let mut m = serde_json::json!({"name": name, "namespace": "default"});
    merge(&mut m, meta);
    let p: Pod = serde_json::from_value(serde_json::json!({"metadata": m, "spec": s}))
        .unwrap_or_else(|e| panic!("pod: {e}"));
    PodInfo::new(Arc::new(p))
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}
