//! Nominated pods, as upstream's nominator: pods that preempted others wait for room on
//! their nominated node, and other pods of lower priority must leave that room to them.

use std::collections::HashMap;
use std::sync::Arc;

use tug_runtime::ObjectKey;

use crate::node_info::PodInfo;

/// Pods nominated to nodes.
#[derive(Default)]
pub struct Nominator {
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    node_of: HashMap<ObjectKey, String>,
}

impl Nominator {
    /// Records (or moves) a nomination; an empty node clears it.
    pub fn set(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.delete(&pod.key);
        if node.is_empty() {
            return;
        }
        self.node_of.insert(pod.key.clone(), node.to_owned());
        self.by_node.entry(node.to_owned()).or_default().push(pod);
    }

    /// Forgets a pod's nomination.
    pub fn delete(&mut self, key: &ObjectKey) {
        if let Some(node) = self.node_of.remove(key) {
            if let Some(list) = self.by_node.get_mut(&node) {
                list.retain(|p| p.key != *key);
                if list.is_empty() {
                    self.by_node.remove(&node);
                }
            }
        }
    }

    /// Pods nominated to `node` that `pod` must leave room for (equal or higher priority,
    /// not itself).
    pub fn on_node(&self, node: &str, pod: &PodInfo) -> Vec<Arc<PodInfo>> {
        if self.by_node.is_empty() {
            return Vec::new();
        }
        match self.by_node.get(node) {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .filter(|p| p.key != pod.key && p.priority >= pod.priority)
                .cloned()
                .collect(),
        }
    }

    /// Pods nominated to `node` with priority below `priority`.
    pub fn lower_on_node(&self, node: &str, priority: i32) -> Vec<Arc<PodInfo>> {
        self.by_node
            .get(node)
            .map(|l| {
                l.iter()
                    .filter(|p| p.priority < priority)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}
