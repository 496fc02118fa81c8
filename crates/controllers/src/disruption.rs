//! The disruption controller, as upstream's `pkg/controller/disruption`: every
//! PodDisruptionBudget's status says how many of its pods are healthy (ready, not being
//! deleted, not just evicted), how many must be (`minAvailable` as a number, or a
//! percentage / `maxUnavailable` resolved against the scale of the pods' controllers —
//! Deployments through their ReplicaSets, ReplicaSets, StatefulSets,
//! ReplicationControllers), and so how many disruptions are allowed now, with the
//! `DisruptionAllowed` condition (SufficientPods / InsufficientPods, or SyncFailed when the
//! expected count cannot be worked out). Evicted pods recorded in `disruptedPods` stop
//! counting as healthy until they are deleted or two minutes pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use tug_runtime::events::{EventType, Recorder};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::util::{controller_of, is_pod_ready, selector_matches};
use crate::Context;

/// How long an eviction keeps a pod out of the healthy count if it is not deleted.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// The condition type.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";

struct Stores {
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    rcs: Store<ReplicationController>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let queue: Queue<ObjectKey> = Queue::new();
    let f = &ctx.informers;
    let pdbs = f.get::<PodDisruptionBudget>();
    pdbs.on_change(crate::util::enqueue_self(&queue));
    let pods = f.get::<Pod>();
    {
        let (q, store) = (queue.clone(), pdbs.store());
        pods.on_change(move |c: &Change<'_, Pod>| {
            let ns = c.object().namespace().unwrap_or_default();
            let hit = |pod: &Pod| {
                for pdb in store.filter_namespace(&ns, |b| {
                    selector_matches(
                        b.spec.as_ref().and_then(|s| s.selector.as_ref()),
                        pod.labels(),
                    )
                }) {
                    q.add(ObjectKey::of(pdb.as_ref()));
                }
            };
            if let Some(old) = c.old() {
                hit(old);
            }
            hit(c.object());
        });
    }
    let rcs = f.get::<ReplicationController>();
    let replicasets = f.get::<ReplicaSet>();
    let deployments = f.get::<Deployment>();
    let statefulsets = f.get::<StatefulSet>();
    // A controller's scale feeds the expected count of the budgets in its namespace.
    let ns_handler = |q: &Queue<ObjectKey>, store: Store<PodDisruptionBudget>| {
        let q = q.clone();
        move |ns: String| {
            for pdb in store.list_namespace(&ns) {
                q.add(ObjectKey::of(pdb.as_ref()));
            }
        }
    };
    {
        let h = ns_handler(&queue, pdbs.store());
        rcs.on_change(move |c| h(c.object().namespace().unwrap_or_default()));
        let h = ns_handler(&queue, pdbs.store());
        replicasets.on_change(move |c| h(c.object().namespace().unwrap_or_default()));
        let h = ns_handler(&queue, pdbs.store());
        deployments.on_change(move |c| h(c.object().namespace().unwrap_or_default()));
        let h = ns_handler(&queue, pdbs.store());
        statefulsets.on_change(move |c| h(c.object().namespace().unwrap_or_default()));
    }
    let stores = Arc::new(Stores {
        pdbs: pdbs.store(),
        pods: pods.store(),
        rcs: rcs.store(),
        replicasets: replicasets.store(),
        deployments: deployments.store(),
        statefulsets: statefulsets.store(),
    });
    let client = ctx.client.clone();
    let recorder = ctx.recorder("controllermanager");
    ctx.run_workers("disruption", queue, move |key: ObjectKey| {
        let (client, stores, recorder) = (client.clone(), stores.clone(), recorder.clone());
        async move { sync(&client, &stores, &recorder, &key).await }
    })
}

/// Resolves an int-or-percent against `total`, rounding a percentage up.
pub fn scaled(v: &IntOrString, total: i32) -> Option<i32> {
    match v {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let n = (pct * i64::from(total) + 99).div_euclid(100);
            i32::try_from(n).ok()
        }
    }
}

/// The total scale of the controllers of `pods`, each counted once; the names of pods with
/// no controller. An error names a controller that could not be found.
fn expected_scale(
    stores: &Stores,
    ns: &str,
    pods: &[Arc<Pod>],
) -> Result<(i32, Vec<String>), String> {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(r) = controller_of(pod.as_ref()) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        let (uid, replicas) = match r.kind.as_str() {
            "ReplicaSet" => {
                let rs = stores
                    .replicasets
                    .get_in(ns, &r.name)
                    .filter(|rs| rs.uid().as_deref() == Some(r.uid.as_str()));
                match rs {
                    Some(rs) => match controller_of(rs.as_ref()).filter(|o| o.kind == "Deployment")
                    {
                        Some(d) => {
                            let dep = stores
                                .deployments
                                .get_in(ns, &d.name)
                                .filter(|dep| dep.uid().as_deref() == Some(d.uid.as_str()));
                            match dep {
                                Some(dep) => (d.uid.clone(), dep.spec.replicas.unwrap_or(1)),
                                None => {
                                    return Err(format!("deployments.apps {:?} not found", d.name))
                                }
                            }
                        }
                        None => (r.uid.clone(), rs.spec.replicas.unwrap_or(1)),
                    },
                    None => return Err(format!("replicasets.apps {:?} not found", r.name)),
                }
            }
            "StatefulSet" => match stores.statefulsets.get_in(ns, &r.name) {
                Some(s) if s.uid().as_deref() == Some(r.uid.as_str()) => {
                    (r.uid.clone(), s.spec.replicas.unwrap_or(1))
                }
                _ => return Err(format!("statefulsets.apps {:?} not found", r.name)),
            },
            "ReplicationController" => match stores.rcs.get_in(ns, &r.name) {
                Some(rc) if rc.uid().as_deref() == Some(r.uid.as_str()) => (
                    r.uid.clone(),
                    rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                ),
                _ => return Err(format!("replicationcontrollers {:?} not found", r.name)),
            },
            other => {
                return Err(format!(
                    "no scale known for controller kind {other} of pod {}",
                    pod.name_any()
                ))
            }
        };
        if seen.insert(uid) {
            total += replicas;
        }
    }
    Ok((total, unmanaged))
}

async fn sync(
    client: &kube::Client,
    stores: &Stores,
    recorder: &Recorder,
    key: &ObjectKey,
) -> Result<Option<Duration>, kube::Error> {
    let Some(pdb) = stores.pdbs.get(key) else {
        return Ok(None);
    };
    let spec = pdb.spec.clone().unwrap_or_default();
    let pods: Vec<Arc<Pod>> = stores.pods.filter_namespace(&key.namespace, |p| {
        selector_matches(spec.selector.as_ref(), p.labels())
    });
    let old = pdb.status.clone().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();

    // Evictions still pending: pods not yet deleted within the timeout.
    let mut disrupted = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    for (name, at) in old.disrupted_pods.iter().flatten() {
        let Some(pod) = pods.iter().find(|p| &p.name_any() == name) else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let expires =
            at.0.as_millisecond() + i64::try_from(DELETION_TIMEOUT.as_millis()).unwrap_or(0);
        let left = expires - now.as_millisecond();
        if left > 0 {
            disrupted.insert(name.clone(), at.clone());
            let d = Duration::from_millis(u64::try_from(left).unwrap_or(0));
            recheck = Some(recheck.map_or(d, |r| r.min(d)));
        }
    }

    let counts: Result<(i32, i32), String> = (|| {
        if let Some(mu) = &spec.max_unavailable {
            let (expected, unmanaged) = expected_scale(stores, &key.namespace, &pods)?;
            warn_unmanaged(recorder, &pdb, &unmanaged);
            let max =
                scaled(mu, expected).ok_or_else(|| format!("invalid maxUnavailable {mu:?}"))?;
            Ok((expected, (expected - max).max(0)))
        } else if let Some(ma) = &spec.min_available {
            match ma {
                IntOrString::Int(n) => Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), *n)),
                IntOrString::String(_) => {
                    let (expected, unmanaged) = expected_scale(stores, &key.namespace, &pods)?;
                    warn_unmanaged(recorder, &pdb, &unmanaged);
                    let min = scaled(ma, expected)
                        .ok_or_else(|| format!("invalid minAvailable {ma:?}"))?;
                    Ok((expected, min))
                }
            }
        } else {
            Ok((0, 0))
        }
    })();
    let healthy = i32::try_from(
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| !disrupted.contains_key(&p.name_any()))
            .filter(|p| is_pod_ready(p))
            .count(),
    )
    .unwrap_or(i32::MAX);

    let mut st = old.clone();
    st.observed_generation = pdb.metadata.generation;
    st.disrupted_pods = Some(disrupted);
    st.current_healthy = Some(healthy);
    let (state, reason, message) = match counts {
        Ok((expected, desired)) => {
            let mut allowed = healthy - desired;
            if expected <= 0 || allowed <= 0 {
                allowed = 0;
            }
            st.expected_pods = Some(expected);
            st.desired_healthy = Some(desired);
            st.disruptions_allowed = Some(allowed);
            if allowed > 0 {
                ("True", "SufficientPods", String::new())
            } else {
                ("False", "InsufficientPods", String::new())
            }
        }
        Err(e) => {
            recorder.event(
                pdb.as_ref(),
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            );
            st.disruptions_allowed = Some(0);
            ("False", "SyncFailed", e)
        }
    };
    set_condition(&mut st, state, reason, &message, pdb.metadata.generation);
    if st != old {
        let mut next = (*pdb).clone();
        next.status = Some(st);
        let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &key.namespace);
        api.replace_status(&key.name, &PostParams::default(), &next)
            .await?;
    }
    Ok(recheck)
}

fn warn_unmanaged(recorder: &Recorder, pdb: &PodDisruptionBudget, unmanaged: &[String]) {
    if unmanaged.is_empty() {
        return;
    }
    let selector = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| serde_json::to_string(s).ok())
        .unwrap_or_default();
    recorder.event(
        pdb,
        EventType::Warning,
        "UnmanagedPods",
        format!(
            "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
        ),
    );
}

fn set_condition(
    st: &mut PodDisruptionBudgetStatus,
    state: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let conditions = st.conditions.get_or_insert_with(Vec::new);
    match conditions
        .iter_mut()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    {
        Some(c) => {
            if c.status != state {
                c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::now());
            }
            c.status = state.to_owned();
            c.reason = reason.to_owned();
            c.message = message.to_owned();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: DISRUPTION_ALLOWED.to_owned(),
            status: state.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Some(2));
        assert_eq!(scaled(&IntOrString::String("100%".into()), 4), Some(4));
        assert_eq!(scaled(&IntOrString::Int(2), 10), Some(2));
        assert_eq!(scaled(&IntOrString::String("x".into()), 10), None);
    }
}
