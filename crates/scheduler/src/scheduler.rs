//! The scheduler proper, as upstream's `schedule_one.go`: the informer handlers that feed
//! the cache and the queue, the scheduling cycle (snapshot, PreFilter, Filter over an
//! adaptive sample of nodes starting where the last cycle stopped, Score, pick a node,
//! assume), the binding cycle (asynchronous: many binds in flight), and failure handling
//! (PostFilter/preemption, the PodScheduled condition, FailedScheduling events, requeue).

mod binding;
mod handlers;
mod nominator;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use tug_runtime::events::Recorder;
use tug_runtime::{Factory, ObjectKey, Store};

use crate::cache::{Cache, Snapshot};
use crate::framework::{Code, Ctx, CycleState, Diagnosis, FitError, Framework, Status};
use crate::node_info::{NodeInfo, PodInfo};
use crate::preemption;
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::Options;

/// How long the scheduling loop runs cycles back to back before it yields its worker.
const SLICE: Duration = Duration::from_millis(10);

pub use nominator::Nominator;

/// What the scheduling loop, the handlers and the bind tasks share.
pub struct Shared {
    pub(crate) client: kube::Client,
    pub(crate) options: Options,
    pub(crate) queue: SchedulingQueue,
    pub(crate) cache: Mutex<Cache>,
    pub(crate) nominator: Mutex<Nominator>,
    pub(crate) framework: Framework,
    pub(crate) recorder: Recorder,
    pub(crate) namespaces: Store<Namespace>,
    pub(crate) pdbs: Store<PodDisruptionBudget>,
    pub(crate) pods: Store<Pod>,
}

impl Shared {
    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn nominator(&self) -> std::sync::MutexGuard<'_, Nominator> {
        self.nominator.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A scheduler: its informers, queue, cache and framework.
pub struct Scheduler {
    shared: Arc<Shared>,
    factory: Factory,
}

/// How many feasible nodes a cycle looks for among `n` (upstream's
/// `numFeasibleNodesToFind` with `percentageOfNodesToScore`).
pub fn num_feasible_nodes_to_find(n: usize, percentage: u32) -> usize {
    const MIN_FEASIBLE: usize = 100;
    const MIN_PERCENTAGE: usize = 5;
    if n < MIN_FEASIBLE || percentage >= 100 {
        return n;
    }
    let pct = if percentage == 0 {
        50usize.saturating_sub(n / 125).max(MIN_PERCENTAGE)
    } else {
        percentage as usize
    };
    (n * pct / 100).max(MIN_FEASIBLE)
}

/// The loop's own state across cycles.
struct Cycle {
    snapshot: Snapshot,
    next_start: usize,
    rng: u64,
}

impl Cycle {
    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Why a cycle failed.
pub(crate) enum Failure {
    Fit(Box<FitError>),
    Error(String),
}

impl Scheduler {
    /// A scheduler over `client` (nothing runs until [`run`](Self::run)).
    pub fn new(client: kube::Client, options: Options) -> Self {
        // The scheduler never reads managedFields (it writes bindings, patches and Events):
        // its informers skip them while decoding, as upstream's trims its pod informer.
        let factory = Factory::without_managed_fields(client.clone());
        let shared = Arc::new(Shared {
            recorder: Recorder::new(client.clone(), &options.scheduler_name, None),
            queue: SchedulingQueue::new(
                options.pod_initial_backoff,
                options.pod_max_backoff,
                options.pod_max_in_unschedulable_pods_duration,
            ),
            cache: Mutex::default(),
            nominator: Mutex::default(),
            framework: Framework::default_profile(),
            namespaces: factory.get::<Namespace>().store(),
            pdbs: factory.get::<PodDisruptionBudget>().store(),
            pods: factory.get::<Pod>().store(),
            client,
            options,
        });
        Self { shared, factory }
    }

    /// Runs until the process ends.
    pub async fn run(self) {
        handlers::register(
            &self.shared,
            &self.factory.get::<Pod>(),
            &self.factory.get::<Node>(),
        );
        self.factory.start();
        self.factory.synced().await;
        tracing::info!(scheduler = %self.shared.options.scheduler_name, "scheduler started");
        let flusher = {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    shared.queue.flush();
                }
            })
        };
        let seed = tug_runtime::now().0.as_nanosecond() as u64 | 1;
        let mut cycle = Cycle {
            snapshot: Snapshot::default(),
            next_start: 0,
            rng: seed,
        };
        let mut slice = Instant::now();
        while let Some((qp, n)) = self.shared.queue.pop().await {
            self.schedule_one(&mut cycle, qp, n);
            // Let informers and binds queued on this worker run, once per time slice rather
            // than after every cycle: as Go preempts upstream's scheduling goroutine only
            // every 10 ms, a yield per cycle left the loop one poll per round of every
            // runnable task, and under load it fell behind the pods being created.
            if slice.elapsed() >= SLICE {
                tokio::task::yield_now().await;
                slice = Instant::now();
            }
        }
        flusher.abort();
    }

    fn schedule_one(&self, cycle: &mut Cycle, qp: QueuedPod, n: u64) {
        let s = &self.shared;
        let pod = qp.pod.clone();
        if pod.metadata.deletion_timestamp.is_some() || s.cache().has_pod(&qp.key) {
            s.queue.done(&qp.key);
            return;
        }
        s.cache().update_snapshot(&mut cycle.snapshot);
        let info = Arc::new(PodInfo::new(pod.clone()));
        let mut state = CycleState::default();
        match self.schedule_pod(cycle, &info, &mut state) {
            Ok(node) => {
                // The cache records the node; the pod's own info is what it counts (no copy
                // of the pod with nodeName set: nothing reads it before the bind is seen).
                s.cache().assume(info, &node);
                s.queue.done(&qp.key);
                s.nominator().delete(&qp.key);
                tokio::spawn(binding::bind_cycle(s.clone(), qp, node));
            }
            Err(Failure::Fit(mut fit)) => {
                let random = cycle.random();
                let ctx = Ctx {
                    snapshot: &cycle.snapshot,
                    namespaces: &s.namespaces,
                };
                let outcome =
                    preemption::post_filter(s, &ctx, &mut state, &info, &fit.diagnosis, random);
                fit.diagnosis.post_filter_msg = outcome.message.clone();
                let plugins = fit.diagnosis.unschedulable_plugins.clone();
                binding::handle_failure(
                    s,
                    &qp,
                    n,
                    &Status::new(Code::Unschedulable, fit.to_string()),
                    plugins,
                    outcome.nominate,
                );
            }
            Err(Failure::Error(msg)) => {
                binding::handle_failure(
                    s,
                    &qp,
                    n,
                    &Status::new(Code::Error, msg),
                    BTreeSet::new(),
                    None,
                );
            }
        }
    }

    fn schedule_pod(
        &self,
        cycle: &mut Cycle,
        pod: &Arc<PodInfo>,
        state: &mut CycleState,
    ) -> Result<String, Failure> {
        let s = &self.shared;
        let snap = &cycle.snapshot;
        let n = snap.nodes.len();
        if n == 0 {
            return Err(Failure::Error("no nodes available to schedule pods".into()));
        }
        let ctx = Ctx {
            snapshot: snap,
            namespaces: &s.namespaces,
        };
        let fw = &s.framework;
        let pre = fw.run_pre_filter(state, pod, &ctx);
        if !pre.is_success() {
            let mut d = Diagnosis {
                pre_filter_msg: pre.message(),
                absent_status: Some(pre.clone()),
                ..Default::default()
            };
            d.unschedulable_plugins.insert(pre.plugin);
            return Err(Failure::Fit(Box::new(FitError {
                num_all_nodes: n,
                diagnosis: d,
            })));
        }
        let nominator = s.nominator();
        // A nominated node (from an earlier preemption) is tried first.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|st| st.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(node) = nominated.and_then(|name| snap.get(name)) {
            if filter_with_nominated(fw, &nominator, state, pod, node).is_success() {
                return Ok(node.name.clone());
            }
        }
        let want = num_feasible_nodes_to_find(n, s.options.percentage_of_nodes_to_score);
        let start = cycle.next_start % n;
        let mut feasible: Vec<Arc<NodeInfo>> = Vec::with_capacity(want.min(n));
        let mut diagnosis = Diagnosis::default();
        let mut processed = 0;
        for i in 0..n {
            let idx = (start + i) % n;
            processed += 1;
            let node = &snap.nodes[idx];
            let st = filter_with_nominated(fw, &nominator, state, pod, node);
            if st.is_success() {
                feasible.push(node.clone());
                if feasible.len() >= want {
                    break;
                }
            } else {
                diagnosis.unschedulable_plugins.insert(st.plugin);
                diagnosis.node_to_status.push((idx, st));
            }
        }
        drop(nominator);
        cycle.next_start = (start + processed) % n;
        match feasible.len() {
            0 => Err(Failure::Fit(Box::new(FitError {
                num_all_nodes: n,
                diagnosis,
            }))),
            1 => Ok(feasible[0].name.clone()),
            _ => {
                let scores = fw.run_score(state, pod, &feasible, &ctx);
                // The best score; ties broken uniformly at random (reservoir sampling).
                let (mut best, mut best_score, mut ties) = (0usize, i64::MIN, 0u64);
                for (i, sc) in scores.iter().enumerate() {
                    if *sc > best_score {
                        (best, best_score, ties) = (i, *sc, 1);
                    } else if *sc == best_score {
                        ties += 1;
                        if cycle.random().is_multiple_of(ties) {
                            best = i;
                        }
                    }
                }
                Ok(feasible[best].name.clone())
            }
        }
    }
}

/// Runs the Filters on `node` as upstream's `RunFilterPluginsWithNominatedPods`: when pods
/// of equal or higher priority are nominated to the node, the pod must fit with them
/// counted, and without them.
pub(crate) fn filter_with_nominated(
    fw: &Framework,
    nominator: &Nominator,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    let nominated = nominator.on_node(&node.name, pod);
    if nominated.is_empty() {
        return fw.run_filter(state, pod, node);
    }
    let mut with = node.clone();
    let mut st = state.clone();
    for p in nominated {
        with.add_pod(p.clone());
        fw.run_add_pod(&mut st, pod, &p, &with);
    }
    let s = fw.run_filter(&st, pod, &with);
    if !s.is_success() {
        return s;
    }
    fw.run_filter(state, pod, node)
}

/// The key of a pod.
pub(crate) fn key_of(pod: &Pod) -> ObjectKey {
    ObjectKey::of(pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find_is_adaptive() {
        assert_eq!(num_feasible_nodes_to_find(50, 0), 50);
        assert_eq!(num_feasible_nodes_to_find(500, 0), 230);
        assert_eq!(num_feasible_nodes_to_find(5000, 0), 500);
        assert_eq!(num_feasible_nodes_to_find(6000, 0), 300);
        assert_eq!(num_feasible_nodes_to_find(1000, 0), 420);
        assert_eq!(num_feasible_nodes_to_find(1000, 100), 1000);
        assert_eq!(num_feasible_nodes_to_find(200, 1), 100);
    }
}
