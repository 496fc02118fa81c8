//! The ownership graph the garbage collector keeps, as upstream's `GraphBuilder`: one node per
//! object seen by any metadata watch (keyed by uid) and an index from every owner uid to its
//! dependents, including owners no watch has shown (upstream's "virtual" nodes, here just
//! index entries). Applying a change answers which uids the collector must look at.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DynamicObject, PartialObjectMeta};

use super::resources::Deletable;

/// The finalizer a foreground deletion puts on its object.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer an orphaning deletion puts on its object.
pub const ORPHAN: &str = "orphan";

/// One observed object.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its resource.
    pub resource: Arc<Deletable>,
    /// Its namespace, if namespaced.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// Its resourceVersion.
    pub resource_version: Option<String>,
    /// Its owner references.
    pub owners: Vec<OwnerReference>,
    /// Its finalizers.
    pub finalizers: Vec<String>,
    /// Whether it has a deletionTimestamp.
    pub deleting: bool,
}

impl Node {
    /// A node from a watched object's metadata.
    pub fn from_meta(
        resource: Arc<Deletable>,
        obj: &PartialObjectMeta<DynamicObject>,
    ) -> Option<Self> {
        let m = &obj.metadata;
        Some(Self {
            resource,
            namespace: m.namespace.clone(),
            name: m.name.clone()?,
            uid: m.uid.clone()?,
            resource_version: m.resource_version.clone(),
            owners: m.owner_references.clone().unwrap_or_default(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
        })
    }

    /// Whether it waits for its blocking dependents (deletionTimestamp and the
    /// `foregroundDeletion` finalizer).
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }

    /// Whether it waits for its dependents to be orphaned.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == ORPHAN)
    }
}

/// Every observed object and who depends on whom.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// The node of `uid`.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The dependents of `uid` that are in the graph.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
            .collect()
    }

    /// Whether `uid` is an owner in foreground deletion.
    fn is_deleting_dependents(&self, uid: &str) -> bool {
        self.nodes.get(uid).is_some_and(Node::deleting_dependents)
    }

    /// Records an added or changed object; the uids to look at.
    pub fn apply(&mut self, node: Node) -> Vec<String> {
        let mut out = Vec::new();
        let old = self.nodes.remove(&node.uid);
        let old_owners: Vec<OwnerReference> =
            old.as_ref().map(|o| o.owners.clone()).unwrap_or_default();
        for r in &old_owners {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(&node.uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
        for r in &node.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(node.uid.clone());
        }
        // An owner absent from the graph, or one waiting on its dependents: look at this one.
        if node
            .owners
            .iter()
            .any(|r| !self.nodes.contains_key(&r.uid) || self.is_deleting_dependents(&r.uid))
        {
            out.push(node.uid.clone());
        }
        // Owners in foreground deletion may be unblocked by a changed reference.
        if old_owners != node.owners {
            for r in old_owners.iter().chain(&node.owners) {
                if self.is_deleting_dependents(&r.uid) {
                    out.push(r.uid.clone());
                }
            }
        }
        if node.orphaning() || node.deleting_dependents() {
            out.push(node.uid.clone());
        }
        let started_foreground =
            node.deleting_dependents() && !old.as_ref().is_some_and(Node::deleting_dependents);
        if started_foreground {
            out.extend(
                self.dependents
                    .get(&node.uid)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        self.nodes.insert(node.uid.clone(), node);
        out
    }

    /// Forgets a deleted object; the uids to look at.
    pub fn delete(&mut self, uid: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Some(node) = self.nodes.remove(uid) else {
            return out;
        };
        for r in &node.owners {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
            if self.is_deleting_dependents(&r.uid) {
                out.push(r.uid.clone());
            }
        }
        // Its dependents lost an owner.
        out.extend(self.dependents.get(uid).into_iter().flatten().cloned());
        out
    }

    /// The uids of the nodes of one resource (to find what a relist no longer holds).
    pub fn uids_of(&self, api_version: &str, kind: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| {
                n.resource.resource.api_version == api_version && n.resource.resource.kind == kind
            })
            .map(|n| n.uid.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::discovery::ApiResource;

    fn node(uid: &str, owners: &[&str]) -> Node {
        Node {
            resource: Arc::new(Deletable {
                resource: ApiResource {
                    group: String::new(),
                    version: "v1".into(),
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    plural: "configmaps".into(),
                },
                namespaced: true,
                delete_collection: true,
            }),
            namespace: Some("default".into()),
            name: uid.into(),
            uid: uid.into(),
            resource_version: None,
            owners: owners
                .iter()
                .map(|o| OwnerReference {
                    uid: (*o).into(),
                    ..OwnerReference::default()
                })
                .collect(),
            finalizers: Vec::new(),
            deleting: false,
        }
    }

    #[test]
    fn a_deleted_owner_queues_its_dependents() {
        let mut g = Graph::default();
        assert!(g.apply(node("owner", &[])).is_empty());
        assert!(g.apply(node("dep", &["owner"])).is_empty());
        assert_eq!(g.dependents("owner").len(), 1);
        assert_eq!(g.delete("owner"), vec!["dep".to_owned()]);
        // An object whose owner was never seen is looked at at once.
        assert_eq!(g.apply(node("other", &["ghost"])), vec!["other".to_owned()]);
    }

    #[test]
    fn foreground_deletion_queues_dependents_then_the_owner() {
        let mut g = Graph::default();
        g.apply(node("dep", &["owner"]));
        g.apply(node("owner", &[]));
        let mut owner = node("owner", &[]);
        owner.deleting = true;
        owner.finalizers = vec![FOREGROUND.into()];
        let queued = g.apply(owner);
        assert!(queued.contains(&"dep".to_owned()) && queued.contains(&"owner".to_owned()));
        assert_eq!(g.delete("dep"), vec!["owner".to_owned()]);
    }
}
