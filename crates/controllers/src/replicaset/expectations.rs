//! Controller expectations, as upstream's `ControllerExpectations` and
//! `UIDTrackingControllerExpectations`: a controller that asked for N pods to be created or
//! deleted for a key waits until its informer has seen them all (or five minutes have passed)
//! before it acts on that key again, so a sync running on a stale cache never creates or
//! deletes twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tug_runtime::ObjectKey;

/// How long expectations hold before a controller acts anyway (upstream's
/// `ExpectationsTimeout`).
pub const TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Expected {
    adds: i64,
    /// Pods whose deletion was asked for and not yet seen.
    deleting: HashSet<String>,
    set_at: Instant,
}

/// Outstanding creations and deletions per controller key. Cheap to clone; clones share.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    inner: Arc<Mutex<HashMap<ObjectKey, Expected>>>,
}

impl Expectations {
    /// Empty expectations.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectKey, Expected>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the controller of `key` may act: nothing is outstanding, or what was asked
    /// for has been seen, or the expectations expired.
    pub fn satisfied(&self, key: &ObjectKey) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deleting.is_empty()) || e.set_at.elapsed() > TIMEOUT,
        }
    }

    /// Records that `adds` pods are about to be created and the pods named in `deleting`
    /// (`namespace/name`) deleted, replacing what was recorded.
    pub fn expect(&self, key: &ObjectKey, adds: usize, deleting: Vec<String>) {
        let deleting: HashSet<String> = deleting.into_iter().collect();
        self.lock().insert(
            key.clone(),
            Expected {
                adds: i64::try_from(adds).unwrap_or(i64::MAX),
                deleting,
                set_at: Instant::now(),
            },
        );
    }

    /// Adds `adds` creations and the deletions in `deleting` to what is outstanding (for a
    /// controller that records them one request at a time, as the Job controller does).
    pub fn raise(&self, key: &ObjectKey, adds: usize, deleting: &[String]) {
        let mut all = self.lock();
        let e = all.entry(key.clone()).or_insert_with(|| Expected {
            adds: 0,
            deleting: HashSet::new(),
            set_at: Instant::now(),
        });
        e.adds = e
            .adds
            .saturating_add(i64::try_from(adds).unwrap_or(i64::MAX));
        e.deleting.extend(deleting.iter().cloned());
        e.set_at = Instant::now();
    }

    /// Records that `n` pods are about to be created.
    pub fn expect_creations(&self, key: &ObjectKey, n: usize) {
        self.expect(key, n, Vec::new());
    }

    /// Records that the pods named (`namespace/name`) are about to be deleted.
    pub fn expect_deletions(&self, key: &ObjectKey, pods: Vec<String>) {
        self.expect(key, 0, pods);
    }

    /// The informer saw a pod created for `key` (or a creation failed and will not be seen).
    pub fn creation_observed(&self, key: &ObjectKey) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// The informer saw the pod `pod` (`namespace/name`) of `key` deleted or being deleted
    /// (or its deletion failed). Counts once per pod.
    pub fn deletion_observed(&self, key: &ObjectKey, pod: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.deleting.remove(pod);
        }
    }

    /// Forgets `key` (its controller object is gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_every_creation_and_each_deletion_once() {
        let ex = Expectations::new();
        let k = ObjectKey::new("ns", "rs");
        assert!(ex.satisfied(&k));
        ex.expect_creations(&k, 2);
        assert!(!ex.satisfied(&k));
        ex.creation_observed(&k);
        assert!(!ex.satisfied(&k));
        ex.creation_observed(&k);
        assert!(ex.satisfied(&k));
        ex.expect_deletions(&k, vec!["ns/a".into(), "ns/b".into()]);
        ex.deletion_observed(&k, "ns/a");
        ex.deletion_observed(&k, "ns/a");
        assert!(!ex.satisfied(&k));
        ex.deletion_observed(&k, "ns/b");
        assert!(ex.satisfied(&k));
        ex.expect_creations(&k, 1);
        ex.forget(&k);
        assert!(ex.satisfied(&k));
    }
}
