//! The scheduling framework, as upstream's `pkg/scheduler/framework`: plugins implement the
//! extension points they need (PreFilter, Filter with AddPod/RemovePod extensions for
//! preemption, PreScore, Score with NormalizeScore), a [`Framework`] runs them in upstream's
//! default order and weights, and a [`CycleState`] carries each plugin's per-pod state
//! through one cycle. [`fit_error`] turns a failed cycle into upstream's message.

pub mod fit_error;

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use tug_runtime::Store;

use crate::cache::Snapshot;
use crate::labels::Labels;
use crate::node_info::{NodeInfo, PodInfo};

pub use fit_error::{Diagnosis, FitError};

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// How a plugin's verdict reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Fine.
    Success,
    /// Something broke.
    Error,
    /// Does not fit now; preemption may help.
    Unschedulable,
    /// Does not fit, and preemption cannot help.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod.
    Skip,
}

/// A plugin's verdict with its reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The verdict.
    pub code: Code,
    /// Why (each counted separately in a FitError).
    pub reasons: Vec<Cow<'static, str>>,
    /// The plugin that gave it.
    pub plugin: &'static str,
}

impl Status {
    /// Success.
    pub const fn success() -> Self {
        Self {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// Skip.
    pub const fn skip() -> Self {
        Self {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// A status with one reason.
    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    /// Whether it is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether it rejects the node (Unschedulable or UnschedulableAndUnresolvable).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined with ", ", as `Status.Message()`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// What plugins may read besides the pod and the node: the cycle's snapshot and namespace
/// labels (for affinity terms' namespaceSelector).
pub struct Ctx<'a> {
    /// The cycle's snapshot.
    pub snapshot: &'a Snapshot,
    /// Namespaces.
    pub namespaces: &'a Store<Namespace>,
}

impl Ctx<'_> {
    /// The labels of a namespace.
    pub fn ns_labels(&self, ns: &str) -> Option<Labels> {
        namespace_labels(self.namespaces, ns)
    }
}

/// The labels of namespace `ns` in `namespaces`.
pub fn namespace_labels(namespaces: &Store<Namespace>, ns: &str) -> Option<Labels> {
    namespaces
        .get_in("", ns)
        .and_then(|n| n.metadata.labels.clone())
}

/// Per-cycle state: each plugin's precomputed data, and which plugins skip Filter or Score.
#[derive(Clone, Default)]
pub struct CycleState {
    data: BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>,
    /// Bit i: the i-th Filter plugin skips (its PreFilter said Skip).
    skip_filter: u64,
}

impl CycleState {
    /// Stores a plugin's state.
    pub fn write<T: Any + Send + Sync>(&mut self, plugin: &'static str, value: T) {
        self.data.insert(plugin, Arc::new(value));
    }

    /// A plugin's state.
    pub fn read<T: Any + Send + Sync>(&self, plugin: &'static str) -> Option<&T> {
        self.data.get(plugin).and_then(|v| v.downcast_ref())
    }

    /// A plugin's state to change (copied if shared with a clone of this state).
    pub fn modify<T: Any + Send + Sync + Clone>(&mut self, plugin: &'static str) -> Option<&mut T> {
        let slot = self.data.get_mut(plugin)?;
        if Arc::get_mut(slot).is_none() {
            let copy: T = slot.downcast_ref::<T>()?.clone();
            *slot = Arc::new(copy);
        }
        Arc::get_mut(slot).and_then(|v| v.downcast_mut())
    }
}

/// A scheduling plugin. Every method has a do-nothing default; a plugin overrides the
/// extension points it implements.
pub trait Plugin: Send + Sync {
    /// Its upstream name.
    fn name(&self) -> &'static str;

    /// PreFilter: precompute for the pod; `Skip` means its Filter need not run.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo, _ctx: &Ctx<'_>) -> Status {
        Status::skip()
    }

    /// Filter: whether the pod fits the node.
    fn filter(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        Status::success()
    }

    /// PreFilter extension: `added` is now counted on `node` (preemption's what-if).
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _added: &PodInfo, _node: &NodeInfo) {
    }

    /// PreFilter extension: `removed` no longer counts on `node`.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _removed: &PodInfo,
        _node: &NodeInfo,
    ) {
    }

    /// PreScore: precompute for scoring the feasible nodes; false means Score is skipped.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _ctx: &Ctx<'_>,
    ) -> bool {
        false
    }

    /// Score one node.
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> i64 {
        0
    }

    /// NormalizeScore: scale the scores to 0–100.
    fn normalize(&self, _state: &CycleState, _scores: &mut [i64]) {}
}

/// Scales scores to 0–100 by the highest (upstream's DefaultNormalizeScore), reversed if
/// asked (a lower raw score is better).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// The plugins of a profile, by extension point.
pub struct Framework {
    /// Plugins with PreFilter/Filter, in upstream's default order.
    pub filters: Vec<Arc<dyn Plugin>>,
    /// Score plugins and their weights.
    pub scorers: Vec<(Arc<dyn Plugin>, i64)>,
}

impl Framework {
    /// Upstream's default profile.
    pub fn default_profile() -> Self {
        use crate::plugins::*;
        let fit: Arc<dyn Plugin> = Arc::new(noderesources::Fit);
        let taints: Arc<dyn Plugin> = Arc::new(tainttoleration::TaintToleration);
        let affinity: Arc<dyn Plugin> = Arc::new(nodeaffinity::NodeAffinity);
        let spread: Arc<dyn Plugin> = Arc::new(podtopologyspread::PodTopologySpread);
        let inter: Arc<dyn Plugin> = Arc::new(interpodaffinity::InterPodAffinity);
        Self {
            filters: vec![
                Arc::new(nodeunschedulable::NodeUnschedulable),
                Arc::new(nodename::NodeName),
                taints.clone(),
                affinity.clone(),
                Arc::new(nodeports::NodePorts),
                fit.clone(),
                spread.clone(),
                inter.clone(),
            ],
            scorers: vec![
                (taints, 3),
                (affinity, 2),
                (fit, 1),
                (spread, 2),
                (inter, 2),
                (Arc::new(noderesources::BalancedAllocation), 1),
                (Arc::new(imagelocality::ImageLocality), 1),
            ],
        }
    }

    /// Runs every PreFilter. On a rejection returns it (the cycle fails for every node).
    pub fn run_pre_filter(&self, state: &mut CycleState, pod: &PodInfo, ctx: &Ctx<'_>) -> Status {
        for (i, p) in self.filters.iter().enumerate() {
            let mut s = p.pre_filter(state, pod, ctx);
            match s.code {
                Code::Skip => state.skip_filter |= 1 << i,
                Code::Success => {}
                _ => {
                    s.plugin = p.name();
                    return s;
                }
            }
        }
        Status::success()
    }

    /// Runs the Filters on one node, stopping at the first that rejects it.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for (i, p) in self.filters.iter().enumerate() {
            if state.skip_filter & (1 << i) != 0 {
                continue;
            }
            let mut s = p.filter(state, pod, node);
            if !s.is_success() {
                s.plugin = p.name();
                return s;
            }
        }
        Status::success()
    }

    /// Runs the AddPod extensions.
    pub fn run_add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) {
        for (i, p) in self.filters.iter().enumerate() {
            if state.skip_filter & (1 << i) == 0 {
                p.add_pod(state, pod, added, node);
            }
        }
    }

    /// Runs the RemovePod extensions.
    pub fn run_remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) {
        for (i, p) in self.filters.iter().enumerate() {
            if state.skip_filter & (1 << i) == 0 {
                p.remove_pod(state, pod, removed, node);
            }
        }
    }

    /// Scores the feasible nodes: PreScore, Score, NormalizeScore, weights. Returns the
    /// weighted total per node, in `nodes`' order.
    pub fn run_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        ctx: &Ctx<'_>,
    ) -> Vec<i64> {
        let mut totals = vec![0i64; nodes.len()];
        let mut scores = vec![0i64; nodes.len()];
        for (p, weight) in &self.scorers {
            if !p.pre_score(state, pod, nodes, ctx) {
                continue;
            }
            for (s, n) in scores.iter_mut().zip(nodes) {
                *s = p.score(state, pod, n);
            }
            p.normalize(state, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
        totals
    }
}
