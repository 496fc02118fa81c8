//! The scheduling queue, as upstream's PriorityQueue: **activeQ** (pods ready to be tried,
//! highest `spec.priority` first, then oldest), **backoffQ** (pods that failed, each waiting
//! its exponential backoff: 1 s doubling to 10 s) and **unschedulable pods** (waiting for a
//! cluster event that could make them fit; after 5 minutes they are retried anyway). Pods
//! with schedulingGates wait, gated, until an update removes the gates. An event that
//! arrives while a pod is being tried sends the pod to backoffQ rather than to the
//! unschedulable pods, so the event is not lost.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tug_runtime::ObjectKey;

/// A pod in the queue and its history.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    /// The latest object seen.
    pub pod: Arc<Pod>,
    /// namespace/name.
    pub key: ObjectKey,
    /// When it was last added or failed.
    pub timestamp: Instant,
    /// When it was first added (for latency).
    pub initial: Instant,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// Plugins that rejected it in its last attempt (which events may help).
    pub unschedulable_plugins: BTreeSet<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    Active(u64),
    Backoff(u64),
    Unschedulable,
    Gated,
    InFlight,
}

struct ActiveEntry {
    priority: i32,
    seq: u64,
    key: ObjectKey,
}

impl PartialEq for ActiveEntry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for ActiveEntry {}
impl PartialOrd for ActiveEntry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ActiveEntry {
    fn cmp(&self, o: &Self) -> Ordering {
        // Max-heap: higher priority first, then the earlier sequence number.
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Inner {
    active: BinaryHeap<ActiveEntry>,
    backoff: BinaryHeap<Reverse<(Instant, u64, ObjectKey)>>,
    pods: HashMap<ObjectKey, (QueuedPod, Where)>,
    /// The keys of `pods` that are unschedulable (so events scan only those).
    unschedulable: HashSet<ObjectKey>,
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    closed: bool,
}

/// Which cluster event happened, for deciding which unschedulable pods to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A node appeared or changed in a way that can admit pods.
    Node,
    /// A bound pod went away (or a bind failed): room may have appeared.
    AssignedPodDelete,
    /// A bound pod appeared or changed labels: affinity and spread may now be met.
    AssignedPodAdd,
    /// Something else (a PDB, a namespace): retry everything.
    Other,
}

impl Event {
    fn may_help(self, plugins: &BTreeSet<&'static str>) -> bool {
        match self {
            Event::AssignedPodAdd => {
                plugins.is_empty()
                    || plugins.contains("InterPodAffinity")
                    || plugins.contains("PodTopologySpread")
            }
            _ => true,
        }
    }
}

/// The queue. Cheap to share behind an `Arc`.
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_unschedulable: Duration,
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

impl SchedulingQueue {
    /// An empty queue with the given backoff bounds and unschedulable timeout.
    pub fn new(
        initial_backoff: Duration,
        max_backoff: Duration,
        max_unschedulable: Duration,
    ) -> Self {
        Self {
            inner: Mutex::default(),
            notify: Notify::new(),
            initial_backoff,
            max_backoff,
            max_unschedulable,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn backoff_of(&self, q: &QueuedPod) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..q.attempts.max(1) {
            d = d.saturating_mul(2);
            if d >= self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn push_active(&self, inner: &mut Inner, key: ObjectKey) {
        inner.seq += 1;
        let seq = inner.seq;
        inner.unschedulable.remove(&key);
        if let Some((q, w)) = inner.pods.get_mut(&key) {
            *w = Where::Active(seq);
            let priority = priority(&q.pod);
            inner.active.push(ActiveEntry { priority, seq, key });
            self.notify.notify_one();
        }
    }

    fn push_backoff(&self, inner: &mut Inner, key: ObjectKey) {
        inner.seq += 1;
        let seq = inner.seq;
        inner.unschedulable.remove(&key);
        if let Some((q, w)) = inner.pods.get_mut(&key) {
            let until = q.timestamp + self.backoff_of(q);
            *w = Where::Backoff(seq);
            inner.backoff.push(Reverse((until, seq, key)));
        }
    }

    fn backing_off(&self, q: &QueuedPod) -> bool {
        q.attempts > 0 && q.timestamp + self.backoff_of(q) > Instant::now()
    }

    /// A new pending pod.
    pub fn add(&self, pod: Arc<Pod>) {
        let key = ObjectKey::of(pod.as_ref());
        let mut inner = self.lock();
        if inner.pods.contains_key(&key) {
            drop(inner);
            self.update(pod);
            return;
        }
        let now = Instant::now();
        let is_gated = gated(&pod);
        let q = QueuedPod {
            pod,
            key: key.clone(),
            timestamp: now,
            initial: now,
            attempts: 0,
            unschedulable_plugins: BTreeSet::new(),
        };
        inner.pods.insert(key.clone(), (q, Where::Gated));
        if !is_gated {
            self.push_active(&mut inner, key);
        }
    }

    /// A pending pod changed.
    pub fn update(&self, pod: Arc<Pod>) {
        let key = ObjectKey::of(pod.as_ref());
        let mut inner = self.lock();
        let Some((q, w)) = inner.pods.get_mut(&key) else {
            drop(inner);
            self.add(pod);
            return;
        };
        let was = *w;
        let spec_changed = q.pod.spec != pod.spec || q.pod.metadata.labels != pod.metadata.labels;
        let now_gated = gated(&pod);
        q.pod = pod;
        match was {
            Where::Gated if !now_gated => self.push_active(&mut inner, key),
            Where::Unschedulable if spec_changed => {
                let backing = inner
                    .pods
                    .get(&key)
                    .is_some_and(|(q, _)| self.backing_off(q));
                if backing {
                    self.push_backoff(&mut inner, key);
                } else {
                    self.push_active(&mut inner, key);
                }
            }
            _ => {}
        }
    }

    /// A pod is gone or bound: forget it.
    pub fn delete(&self, key: &ObjectKey) {
        let mut inner = self.lock();
        inner.pods.remove(key);
        inner.unschedulable.remove(key);
    }

    /// Waits for the next pod to try, marking it in flight. `None` once closed.
    pub async fn pop(&self) -> Option<(QueuedPod, u64)> {
        loop {
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                while let Some(e) = inner.active.pop() {
                    if let Some((q, w)) = inner.pods.get_mut(&e.key) {
                        if *w == Where::Active(e.seq) {
                            *w = Where::InFlight;
                            q.attempts += 1;
                            let q = q.clone();
                            inner.scheduling_cycle += 1;
                            return Some((q, inner.scheduling_cycle));
                        }
                    }
                }
            }
            self.notify.notified().await;
        }
    }

    /// Stops [`pop`](Self::pop).
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// A tried pod did not fit (or failed): it waits for an event, or backs off when one
    /// came while it was being tried (or when `error`).
    pub fn add_unschedulable(
        &self,
        key: &ObjectKey,
        cycle: u64,
        plugins: BTreeSet<&'static str>,
        error: bool,
    ) {
        let mut inner = self.lock();
        let move_request = inner.move_request_cycle;
        let Some((q, w)) = inner.pods.get_mut(key) else {
            return;
        };
        if *w != Where::InFlight {
            return;
        }
        q.timestamp = Instant::now();
        q.unschedulable_plugins = plugins;
        if error || move_request >= cycle {
            self.push_backoff(&mut inner, key.clone());
        } else {
            *w = Where::Unschedulable;
            inner.unschedulable.insert(key.clone());
        }
    }

    /// A tried pod was assumed: it leaves the queue.
    pub fn done(&self, key: &ObjectKey) {
        let mut inner = self.lock();
        if inner
            .pods
            .get(key)
            .is_some_and(|(_, w)| *w == Where::InFlight)
        {
            inner.pods.remove(key);
        }
    }

    /// A pod whose bind failed comes back, backing off.
    pub fn requeue_after_bind_failure(&self, pod: Arc<Pod>, attempts: u32) {
        let key = ObjectKey::of(pod.as_ref());
        let mut inner = self.lock();
        let now = Instant::now();
        let q = QueuedPod {
            pod,
            key: key.clone(),
            timestamp: now,
            initial: now,
            attempts,
            unschedulable_plugins: BTreeSet::new(),
        };
        inner.pods.insert(key.clone(), (q, Where::InFlight));
        self.push_backoff(&mut inner, key);
    }

    /// A cluster event: unschedulable pods it may help are retried (after their backoff).
    pub fn move_all(&self, event: Event) {
        let mut inner = self.lock();
        inner.move_request_cycle = inner.scheduling_cycle;
        let keys: Vec<ObjectKey> = inner
            .unschedulable
            .iter()
            .filter(|k| {
                inner
                    .pods
                    .get(*k)
                    .is_some_and(|(q, _)| event.may_help(&q.unschedulable_plugins))
            })
            .cloned()
            .collect();
        self.move_keys(&mut inner, keys);
    }

    fn move_keys(&self, inner: &mut Inner, keys: Vec<ObjectKey>) {
        for key in keys {
            let backing = inner
                .pods
                .get(&key)
                .is_some_and(|(q, _)| self.backing_off(q));
            if backing {
                self.push_backoff(inner, key);
            } else {
                self.push_active(inner, key);
            }
        }
    }

    /// Moves pods whose backoff is over to activeQ, and pods unschedulable for longer than
    /// the limit back to the queue. Called every second.
    pub fn flush(&self) {
        let mut inner = self.lock();
        let now = Instant::now();
        while let Some(Reverse((until, seq, key))) = inner.backoff.peek().cloned() {
            if until > now {
                break;
            }
            inner.backoff.pop();
            if inner
                .pods
                .get(&key)
                .is_some_and(|(_, w)| *w == Where::Backoff(seq))
            {
                self.push_active(&mut inner, key);
            }
        }
        let stale: Vec<ObjectKey> = inner
            .unschedulable
            .iter()
            .filter(|k| {
                inner
                    .pods
                    .get(*k)
                    .is_some_and(|(q, _)| now.duration_since(q.timestamp) > self.max_unschedulable)
            })
            .cloned()
            .collect();
        self.move_keys(&mut inner, stale);
    }

    /// How many pods wait in each part: (active, backoff, unschedulable, gated).
    pub fn lengths(&self) -> (usize, usize, usize, usize) {
        let inner = self.lock();
        let mut n = (0, 0, 0, 0);
        for (_, w) in inner.pods.values() {
            match w {
                Where::Active(_) => n.0 += 1,
                Where::Backoff(_) => n.1 += 1,
                Where::Unschedulable => n.2 += 1,
                Where::Gated => n.3 += 1,
                Where::InFlight => {}
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, prio: i32, gates: bool) -> Arc<Pod> {
        let mut spec = serde_json::json!({"containers": [], "priority": prio});
        if gates {
            spec["schedulingGates"] = serde_json::json!([{"name": "g"}]);
        }
        Arc::new(
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": name, "namespace": "d"}, "spec": spec}),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn q() -> SchedulingQueue {
        SchedulingQueue::new(
            Duration::from_millis(50),
            Duration::from_millis(200),
            Duration::from_secs(300),
        )
    }

    #[tokio::test]
    async fn priority_then_age_and_gates_wait() {
        let q = q();
        q.add(pod("low", 0, false));
        q.add(pod("gated", 100, true));
        q.add(pod("high", 10, false));
        q.add(pod("low2", 0, false));
        let mut order = Vec::new();
        for _ in 0..3 {
            let (p, _) = q.pop().await.unwrap_or_else(|| panic!("closed"));
            order.push(p.key.name.clone());
        }
        assert_eq!(order, ["high", "low", "low2"]);
        assert_eq!(q.lengths().3, 1);
        q.update(pod("gated", 100, false));
        let (p, _) = q.pop().await.unwrap_or_else(|| panic!("closed"));
        assert_eq!(p.key.name, "gated");
    }

    #[tokio::test]
    async fn unschedulable_pods_move_on_events_and_back_off() {
        let q = q();
        q.add(pod("a", 0, false));
        let (p, cycle) = q.pop().await.unwrap_or_else(|| panic!("closed"));
        q.add_unschedulable(&p.key, cycle, BTreeSet::from(["NodeResourcesFit"]), false);
        assert_eq!(q.lengths(), (0, 0, 1, 0));
        // A pod add does not help a pod that lacked resources.
        q.move_all(Event::AssignedPodAdd);
        assert_eq!(q.lengths(), (0, 0, 1, 0));
        q.move_all(Event::AssignedPodDelete);
        // Still backing off (50 ms after its first attempt).
        assert_eq!(q.lengths(), (0, 1, 0, 0));
        tokio::time::sleep(Duration::from_millis(60)).await;
        q.flush();
        assert_eq!(q.lengths(), (1, 0, 0, 0));
        // An event during the attempt sends the pod to backoff, not to unschedulable.
        let (p, cycle) = q.pop().await.unwrap_or_else(|| panic!("closed"));
        q.move_all(Event::Node);
        q.add_unschedulable(&p.key, cycle, BTreeSet::new(), false);
        assert_eq!(q.lengths(), (0, 1, 0, 0));
    }
}
