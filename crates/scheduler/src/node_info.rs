//! What the scheduler knows of a pod and of a node, computed once: [`PodInfo`] (requests,
//! host ports, compiled affinity terms, priority) and [`NodeInfo`] (the node, its pods, the
//! sums of their requests, used host ports, images), as upstream's framework types.
//! `NodeInfo`s are shared copy-on-write between the cache and the snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, Taint};
use kube::ResourceExt;
use tug_runtime::ObjectKey;

use crate::labels::{Labels, Selector};
use crate::resources::{self, Resource};

/// A compiled pod (anti-)affinity term.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces the term names (the pod's own when none and no namespace selector).
    pub namespaces: Vec<String>,
    /// Selects namespaces by their labels (`None`: only `namespaces`).
    pub namespace_selector: Option<Selector>,
    /// Selects pods.
    pub selector: Selector,
    /// The node label whose value is the topology domain.
    pub topology_key: String,
}

impl AffinityTerm {
    fn compile(pod_ns: &str, t: &PodAffinityTerm) -> Self {
        let namespaces = match (&t.namespaces, &t.namespace_selector) {
            (ns, None) if ns.as_ref().is_none_or(|n| n.is_empty()) => vec![pod_ns.to_owned()],
            (ns, _) => ns.clone().unwrap_or_default(),
        };
        // matchLabelKeys / mismatchLabelKeys are merged into the selector by the apiserver.
        let selector = Selector::from_label_selector(t.label_selector.as_ref());
        Self {
            namespaces,
            namespace_selector: t
                .namespace_selector
                .as_ref()
                .map(|s| Selector::from_label_selector(Some(s))),
            selector,
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` (whose namespace has `ns_labels`) matches the term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.is_everything() || s.matches_opt(ns_labels));
        ns_ok && self.selector.matches_opt(pod.pod.metadata.labels.as_ref())
    }
}

/// A weighted (preferred) affinity term.
#[derive(Clone, Debug)]
pub struct WeightedTerm {
    /// The term.
    pub term: AffinityTerm,
    /// Its weight (1–100).
    pub weight: i64,
}

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// hostIP ("0.0.0.0" when unset).
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The port.
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports collide (same protocol and port, and an IP that overlaps).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod as the scheduler sees it.
#[derive(Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// namespace/name.
    pub key: ObjectKey,
    /// metadata.uid.
    pub uid: String,
    /// The namespace.
    pub namespace: String,
    /// spec.priority (0 when unset).
    pub priority: i32,
    /// What it requests (computePodResourceRequest).
    pub requests: Resource,
    /// cpu and memory as scoring counts them.
    pub non_zero: (i64, i64),
    /// Host ports of its containers.
    pub ports: Vec<HostPort>,
    /// requiredDuringScheduling pod affinity.
    pub required_affinity: Vec<AffinityTerm>,
    /// requiredDuringScheduling pod anti-affinity.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// preferredDuringScheduling pod affinity.
    pub preferred_affinity: Vec<WeightedTerm>,
    /// preferredDuringScheduling pod anti-affinity.
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    /// Whether it has a deletionTimestamp.
    pub terminating: bool,
}

impl PodInfo {
    /// Computes the scheduler's view of a pod.
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod.namespace().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let mut ports = Vec::new();
        for c in spec.iter().flat_map(|s| s.containers.iter()) {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|i| !i.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port: hp,
                    });
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let req = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::compile(&namespace, t))
                .collect()
        };
        let pref = |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|w| WeightedTerm {
                    term: AffinityTerm::compile(&namespace, &w.pod_affinity_term),
                    weight: i64::from(w.weight),
                })
                .collect::<Vec<_>>()
        };
        Self {
            key: ObjectKey::new(namespace.clone(), pod.name_any()),
            uid: pod.uid().unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            requests: resources::pod_requests(&pod),
            non_zero: resources::pod_non_zero_requests(&pod),
            ports,
            required_affinity: req(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: req(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: pref(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: pref(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            namespace,
            pod,
        }
    }

    /// Whether it has any pod (anti-)affinity.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// The pod's labels.
    pub fn labels(&self) -> Option<&Labels> {
        self.pod.metadata.labels.as_ref()
    }

    /// When it started (status.startTime, else its creation), for preemption's tie-breaks.
    pub fn start_time(&self) -> i64 {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .or(self.pod.metadata.creation_timestamp.as_ref())
            .map_or(0, |t| t.0.as_nanosecond() as i64)
    }
}

/// A node, the pods on it and what they use.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// The node (absent while only pods on it were seen).
    pub node: Option<Arc<Node>>,
    /// Its name.
    pub name: String,
    /// Pods on it (bound or assumed).
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of them have pod (anti-)affinity.
    pub pods_with_affinity: usize,
    /// How many of them have required pod anti-affinity.
    pub pods_with_required_anti_affinity: usize,
    /// Sum of the pods' requests.
    pub requested: Resource,
    /// Sum of the pods' non-zero cpu and memory.
    pub non_zero_requested: (i64, i64),
    /// status.allocatable.
    pub allocatable: Resource,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Images on the node (normalized name → size in bytes).
    pub images: Arc<HashMap<String, i64>>,
    /// Bumped on every change.
    pub generation: u64,
    /// spec.unschedulable (cordoned).
    pub unschedulable: bool,
    /// spec.taints, kept here so Filters read them without reaching into the node object.
    taints: Vec<Taint>,
}

impl NodeInfo {
    /// An empty NodeInfo for `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// Sets the node object.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .map(Resource::from_list)
            .unwrap_or_default();
        let mut images = HashMap::new();
        for img in node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
        {
            for name in img.names.iter().flatten() {
                images.insert(normalize_image(name), img.size_bytes.unwrap_or(0));
            }
        }
        self.images = Arc::new(images);
        self.unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        self.taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        self.node = Some(node);
    }

    /// Forgets the node object (deleted); its pods stay.
    pub fn clear_node(&mut self) {
        self.node = None;
        self.images = Arc::default();
        self.taints = Vec::new();
    }

    /// The node's labels.
    pub fn labels(&self) -> Option<&Labels> {
        self.node.as_ref().and_then(|n| n.metadata.labels.as_ref())
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        &self.taints
    }

    /// Adds a pod.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes a pod by key; whether it was there.
    pub fn remove_pod(&mut self, key: &ObjectKey) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == *key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        for port in &pod.ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }
}

/// An image name as node.status.images and containers may spell it differently: a name
/// without a tag or digest means `:latest`.
pub fn normalize_image(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}
