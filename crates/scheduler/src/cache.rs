//! The scheduler's cache, as upstream's `internal/cache`: every node and the pods bound or
//! *assumed* on it. A pod is assumed on its node the moment a scheduling cycle picks it, so
//! the next cycle already counts it while the bind is in flight; the informer's update
//! confirms it, a failed bind forgets it. Terminating pods keep their resources until they
//! are gone. Each change marks its node dirty; [`Cache::update_snapshot`] copies only the
//! dirty nodes into the [`Snapshot`] a cycle reads (upstream's generation-ordered update).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use tug_runtime::ObjectKey;

use crate::node_info::{NodeInfo, PodInfo};

struct PodState {
    node: String,
    assumed: bool,
}

/// Nodes and the pods on them.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, Arc<NodeInfo>>,
    pods: HashMap<ObjectKey, PodState>,
    dirty: HashSet<String>,
    list_changed: bool,
    generation: u64,
    /// image → how many nodes have it.
    image_nodes: HashMap<String, usize>,
    images_changed: bool,
}

impl Cache {
    fn touch(&mut self, name: &str) -> &mut NodeInfo {
        self.generation += 1;
        let generation = self.generation;
        if !self.dirty.contains(name) {
            self.dirty.insert(name.to_owned());
        }
        let entry = self
            .nodes
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(NodeInfo::named(name)));
        let ni = Arc::make_mut(entry);
        ni.generation = generation;
        ni
    }

    fn count_images(&mut self, ni: &NodeInfo, delta: isize) {
        for img in ni.images.keys() {
            let c = self.image_nodes.entry(img.clone()).or_default();
            *c = c.saturating_add_signed(delta);
            if *c == 0 {
                self.image_nodes.remove(img);
            }
            self.images_changed = true;
        }
    }

    /// A node was added or changed.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let had_node = self.nodes.get(&name).is_some_and(|n| n.node.is_some());
        if let Some(old) = self.nodes.get(&name).cloned() {
            self.count_images(&old, -1);
        }
        let ni = self.touch(&name);
        ni.set_node(node);
        let ni = ni.clone();
        self.count_images(&ni, 1);
        if !had_node {
            self.list_changed = true;
        }
    }

    /// A node was deleted. Its pods stay until their own deletes arrive.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(old) = self.nodes.get(name).cloned() {
            self.count_images(&old, -1);
        }
        let ni = self.touch(name);
        ni.clear_node();
        if ni.pods.is_empty() {
            self.nodes.remove(name);
        }
        self.list_changed = true;
    }

    /// A bound pod was seen (added, or updated from unbound): confirms an assumed pod.
    pub fn add_pod(&mut self, info: Arc<PodInfo>, node: &str) {
        if let Some(old) = self.pods.remove(&info.key) {
            self.touch(&old.node).remove_pod(&info.key);
        }
        let key = info.key.clone();
        self.touch(node).add_pod(info);
        self.pods.insert(
            key,
            PodState {
                node: node.to_owned(),
                assumed: false,
            },
        );
    }

    /// A bound pod is gone (deleted, or terminal).
    pub fn remove_pod(&mut self, key: &ObjectKey) {
        if let Some(old) = self.pods.remove(key) {
            let ni = self.touch(&old.node);
            ni.remove_pod(key);
            if ni.node.is_none() && ni.pods.is_empty() {
                self.nodes.remove(&old.node);
            }
        }
    }

    /// Counts a pod on `node` before its bind returns.
    pub fn assume(&mut self, info: Arc<PodInfo>, node: &str) {
        self.add_pod(info.clone(), node);
        if let Some(s) = self.pods.get_mut(&info.key) {
            s.assumed = true;
        }
    }

    /// Drops an assumed pod whose bind failed.
    pub fn forget(&mut self, key: &ObjectKey) {
        if self.pods.get(key).is_some_and(|s| s.assumed) {
            self.remove_pod(key);
        }
    }

    /// Whether the pod is assumed or bound in the cache.
    pub fn has_pod(&self, key: &ObjectKey) -> bool {
        self.pods.contains_key(key)
    }

    /// Brings `snap` up to date, copying only what changed since the last call.
    pub fn update_snapshot(&mut self, snap: &mut Snapshot) {
        if self.list_changed {
            let mut names: Vec<&String> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.node.is_some())
                .map(|(k, _)| k)
                .collect();
            names.sort();
            snap.nodes = names
                .iter()
                .filter_map(|n| self.nodes.get(*n).cloned())
                .collect();
            snap.index = names
                .iter()
                .enumerate()
                .map(|(i, n)| ((*n).clone(), i))
                .collect();
            self.list_changed = false;
            snap.affinity_lists_stale = true;
        } else {
            for name in &self.dirty {
                if let (Some(&i), Some(ni)) = (snap.index.get(name), self.nodes.get(name)) {
                    let was = &snap.nodes[i];
                    if (was.pods_with_affinity > 0) != (ni.pods_with_affinity > 0)
                        || (was.pods_with_required_anti_affinity > 0)
                            != (ni.pods_with_required_anti_affinity > 0)
                    {
                        snap.affinity_lists_stale = true;
                    }
                    snap.nodes[i] = ni.clone();
                }
            }
        }
        self.dirty.clear();
        if snap.affinity_lists_stale {
            snap.with_affinity = (0..snap.nodes.len())
                .filter(|&i| snap.nodes[i].pods_with_affinity > 0)
                .collect();
            snap.with_required_anti_affinity = (0..snap.nodes.len())
                .filter(|&i| snap.nodes[i].pods_with_required_anti_affinity > 0)
                .collect();
            snap.affinity_lists_stale = false;
        }
        if self.images_changed {
            snap.image_nodes = Arc::new(self.image_nodes.clone());
            self.images_changed = false;
        }
        snap.generation = self.generation;
    }
}

/// What one scheduling cycle reads: every node with its pods, as of the cycle's start.
#[derive(Default)]
pub struct Snapshot {
    /// Nodes, sorted by name.
    pub nodes: Vec<Arc<NodeInfo>>,
    /// Node name → position in `nodes`.
    pub index: HashMap<String, usize>,
    /// Positions of nodes with pods that have pod (anti-)affinity.
    pub with_affinity: Vec<usize>,
    /// Positions of nodes with pods that have required pod anti-affinity.
    pub with_required_anti_affinity: Vec<usize>,
    /// image → how many nodes have it.
    pub image_nodes: Arc<HashMap<String, usize>>,
    /// The cache generation this snapshot reflects.
    pub generation: u64,
    affinity_lists_stale: bool,
}

impl Snapshot {
    /// The node called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).and_then(|&i| self.nodes.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"}}
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn pod(name: &str, cpu: &str) -> Arc<PodInfo> {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "d"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    #[test]
    fn snapshot_copies_only_changes_and_assumed_pods_count() {
        let mut cache = Cache::default();
        let mut snap = Snapshot::default();
        cache.set_node(node("b"));
        cache.set_node(node("a"));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes.len(), 2);
        assert_eq!(snap.nodes[0].name, "a");
        let before_b = snap.nodes[1].clone();
        cache.assume(pod("p", "1"), "a");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[0].requested.milli_cpu, 1000);
        // b did not change: the snapshot still shares the same NodeInfo.
        assert!(Arc::ptr_eq(&before_b, &snap.nodes[1]));
        cache.forget(&ObjectKey::new("d", "p"));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[0].requested.milli_cpu, 0);
        assert!(snap.nodes[0].pods.is_empty());
        // Confirmed pods are not forgotten.
        cache.assume(pod("q", "2"), "b");
        cache.add_pod(pod("q", "2"), "b");
        cache.forget(&ObjectKey::new("d", "q"));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[1].requested.milli_cpu, 2000);
    }
}
