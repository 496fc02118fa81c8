//! A work queue as upstream's client-go workqueue: a key waits at most once however often it
//! is added; a key being processed is not handed to a second worker, and if it was added
//! meanwhile it comes back once the first finishes; failures are retried with per-key
//! exponential back-off (5 ms doubling to 1000 s, as upstream's default controller rate
//! limiter); [`run`] drives a fixed number of workers over it, [`run_per_key`] a task per key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// The first retry delay after a failure.
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(1000);

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    shut_down: bool,
}

/// A de-duplicating, back-off-aware queue of keys. Cheap to clone; clones share the queue.
pub struct Queue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> Default for Queue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> Queue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shut_down: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a key (nothing if it is already waiting).
    pub fn add(&self, key: T) {
        let mut s = self.lock();
        if s.shut_down || s.dirty.contains(&key) {
            return;
        }
        s.dirty.insert(key.clone());
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Adds a key after `delay`.
    pub fn add_after(&self, key: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Adds a key after its back-off: 5 ms after the first failure, doubling each time until
    /// [`forget`](Queue::forget).
    pub fn add_rate_limited(&self, key: T) {
        let failures = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        self.add_after(key, backoff(failures));
    }

    /// Clears a key's failure count.
    pub fn forget(&self, key: &T) {
        self.lock().failures.remove(key);
    }

    /// How many failures in a row a key has had.
    pub fn failures(&self, key: &T) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Waits for the next key; `None` once the queue is shut down. Call
    /// [`done`](Queue::done) when finished with it.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        // Another worker may be waiting for the rest.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                if s.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks a key finished; if it was added while being processed it waits again.
    pub fn done(&self, key: &T) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// How many keys are waiting.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys; workers finish what they hold and [`get`](Queue::get) answers
    /// `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

/// The delay before the `failures`-th retry.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    BASE_DELAY
        .checked_mul(1u32 << exp)
        .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

/// Runs `reconcile` for each key in a task of its own, as many at once as there are distinct
/// keys, until `queue` shuts down: upstream's kubelet gives every pod its own goroutine, so
/// one pod blocked (a postStart hook that never returns) holds up nobody else. The queue still
/// never hands out a key that is being processed. Outcomes as [`run`].
pub async fn run_per_key<T, F, Fut, E>(name: &'static str, queue: Queue<T>, reconcile: F)
where
    T: Hash + Eq + Clone + Send + Debug + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send + 'static,
    E: Display,
{
    while let Some(key) = queue.get().await {
        let (queue, reconcile) = (queue.clone(), reconcile.clone());
        tokio::spawn(async move {
            let outcome = reconcile(key.clone()).await;
            settle(name, &queue, &key, outcome);
        });
    }
}

/// Records what one reconcile answered and releases the key.
fn settle<T, E>(name: &'static str, queue: &Queue<T>, key: &T, outcome: Result<Option<Duration>, E>)
where
    T: Hash + Eq + Clone + Send + Debug + 'static,
    E: Display,
{
    match outcome {
        Ok(None) => queue.forget(key),
        Ok(Some(after)) => {
            queue.forget(key);
            queue.add_after(key.clone(), after);
        }
        Err(e) => {
            tracing::debug!(controller = name, ?key, error = %e, "sync failed; retrying");
            queue.add_rate_limited(key.clone());
        }
    }
    queue.done(key);
}

/// Runs `workers` workers over `queue` until it shuts down. `reconcile` answers
/// `Ok(None)` (done), `Ok(Some(d))` (look again after `d`) or an error (retry with back-off,
/// logged).
pub async fn run<T, F, Fut, E>(name: &'static str, queue: Queue<T>, workers: usize, reconcile: F)
where
    T: Hash + Eq + Clone + Send + Debug + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send,
    E: Display,
{
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (queue, reconcile) = (queue.clone(), reconcile.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                let outcome = reconcile(key.clone()).await;
                settle(name, &queue, &key, outcome);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_waits_once_and_comes_back_if_added_while_processing() {
        let q = Queue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        let a = q.get().await;
        assert_eq!(a, Some("a"));
        q.add("a"); // while processing: not handed out twice
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        q.shut_down();
        assert_eq!(q.get().await, None);
    }

    #[tokio::test]
    async fn a_blocked_key_holds_up_no_other_when_run_per_key() {
        let q: Queue<u32> = Queue::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let runner = tokio::spawn(run_per_key("test", q.clone(), move |key: u32| {
            let tx = tx.clone();
            async move {
                if key == 0 {
                    std::future::pending::<()>().await;
                }
                let _ = tx.send(key);
                Ok::<_, String>(None)
            }
        }));
        for key in 0..20 {
            q.add(key);
        }
        let mut seen = Vec::new();
        while seen.len() < 19 {
            let key = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            seen.push(key.ok().flatten().unwrap_or(u32::MAX));
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..20).collect::<Vec<_>>());
        q.shut_down();
        runner.abort();
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(5), Duration::from_millis(80));
        assert_eq!(backoff(40), MAX_DELAY);
    }

    #[tokio::test]
    async fn failures_are_retried_then_forgotten() {
        let q: Queue<u32> = Queue::new();
        let tries = Arc::new(Mutex::new(0));
        let t = tries.clone();
        let qq = q.clone();
        let worker = tokio::spawn(run("test", q.clone(), 2, move |_k: u32| {
            let (t, qq) = (t.clone(), qq.clone());
            async move {
                let n = {
                    let mut n = t.lock().unwrap_or_else(|e| e.into_inner());
                    *n += 1;
                    *n
                };
                if n < 3 {
                    return Err("not yet");
                }
                qq.shut_down();
                Ok(None)
            }
        }));
        q.add(7);
        tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("workers did not finish"));
        assert_eq!(*tries.lock().unwrap_or_else(|e| e.into_inner()), 3);
        assert_eq!(q.failures(&7), 0);
    }
}
