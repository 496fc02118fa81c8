//! The resourcequota controller, as upstream's `pkg/controller/resourcequota`: every
//! ResourceQuota's `status.hard` mirrors `spec.hard` and `status.used` holds the namespace's
//! usage of each resource named there — object counts (`pods`, `services`, `configmaps`,
//! `secrets`, `persistentvolumeclaims`, `replicationcontrollers`, `resourcequotas`,
//! `services.loadbalancers`, `services.nodeports`, `count/<resource>[.<group>]` for the
//! built-in workload kinds), the compute requests and limits of non-terminal pods
//! (`requests.cpu`, `cpu`, `limits.memory`, extended resources…, with upstream's effective
//! pod requests: the larger of the containers' sum and any init container, plus overhead)
//! and storage requested by claims (also per storage class). Quota scopes (Terminating,
//! NotTerminating, BestEffort, NotBestEffort, PriorityClass via scopeSelector) narrow which
//! pods count. Usage is recomputed whenever a counted object in the namespace changes.

pub mod quantity;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota,
    ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use kube::api::PostParams;
use kube::Api;
use tug_runtime::{Change, Informer, ObjectKey, Queue, Store};

use self::quantity::Quantity;
use crate::Context;

/// The storage-class resource infix (`<class>.storageclass.storage.k8s.io/requests.storage`).
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

struct Stores {
    quotas: Store<ResourceQuota>,
    pods: Store<Pod>,
    services: Store<Service>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
    claims: Store<PersistentVolumeClaim>,
    rcs: Store<ReplicationController>,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    statefulsets: Store<StatefulSet>,
    daemonsets: Store<DaemonSet>,
    jobs: Store<Job>,
    cronjobs: Store<CronJob>,
}

/// Queues every quota of the namespace of a changed object.
fn watch_namespace<K: tug_runtime::informer::Object>(
    informer: &Informer<K>,
    queue: &Queue<ObjectKey>,
    quotas: &Store<ResourceQuota>,
) -> Store<K> {
    let (q, quotas) = (queue.clone(), quotas.clone());
    informer.on_change(move |c: &Change<'_, K>| {
        let ns = c.object().meta().namespace.clone().unwrap_or_default();
        for quota in quotas.list_namespace(&ns) {
            q.add(ObjectKey::of(quota.as_ref()));
        }
    });
    informer.store()
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let queue: Queue<ObjectKey> = Queue::new();
    let quotas = ctx.informers.get::<ResourceQuota>();
    quotas.on_change(crate::util::enqueue_self(&queue));
    let qs = quotas.store();
    let f = &ctx.informers;
    let stores = Arc::new(Stores {
        pods: watch_namespace(&f.get::<Pod>(), &queue, &qs),
        services: watch_namespace(&f.get::<Service>(), &queue, &qs),
        configmaps: watch_namespace(&f.get::<ConfigMap>(), &queue, &qs),
        secrets: watch_namespace(&f.get::<Secret>(), &queue, &qs),
        claims: watch_namespace(&f.get::<PersistentVolumeClaim>(), &queue, &qs),
        rcs: watch_namespace(&f.get::<ReplicationController>(), &queue, &qs),
        deployments: watch_namespace(&f.get::<Deployment>(), &queue, &qs),
        replicasets: watch_namespace(&f.get::<ReplicaSet>(), &queue, &qs),
        statefulsets: watch_namespace(&f.get::<StatefulSet>(), &queue, &qs),
        daemonsets: watch_namespace(&f.get::<DaemonSet>(), &queue, &qs),
        jobs: watch_namespace(&f.get::<Job>(), &queue, &qs),
        cronjobs: watch_namespace(&f.get::<CronJob>(), &queue, &qs),
        quotas: qs,
    });
    let client = ctx.client.clone();
    ctx.run_workers("resourcequota", queue, move |key: ObjectKey| {
        let (client, stores) = (client.clone(), stores.clone());
        async move { sync(&client, &stores, &key).await.map(|()| None) }
    })
}

async fn sync(client: &kube::Client, stores: &Stores, key: &ObjectKey) -> Result<(), kube::Error> {
    let Some(quota) = stores.quotas.get(key) else {
        return Ok(());
    };
    let spec = quota.spec.clone().unwrap_or_default();
    let hard = spec.hard.clone().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();
    let pods: Vec<Arc<Pod>> = stores.pods.filter_namespace(&key.namespace, |p| {
        pod_counts(p, now) && in_scope(&quota, p)
    });
    let pod_scoped = has_pod_scopes(&quota);
    let mut used = BTreeMap::new();
    for name in hard.keys() {
        let value = if pod_scoped && !is_pod_resource(name) {
            None
        } else {
            usage(stores, &key.namespace, name, &pods)
        };
        if let Some(v) = value {
            used.insert(name.clone(), K8sQuantity(v.to_string()));
        }
    }
    let status = ResourceQuotaStatus {
        hard: (!hard.is_empty()).then(|| hard.clone()),
        used: (!used.is_empty()).then_some(used),
    };
    let current = quota.status.clone().unwrap_or_default();
    if same(&current, &status) {
        return Ok(());
    }
    let mut next = (*quota).clone();
    next.status = Some(status);
    let api: Api<ResourceQuota> = Api::namespaced(client.clone(), &key.namespace);
    api.replace_status(&key.name, &PostParams::default(), &next)
        .await
        .map(|_| ())
}

/// Equal up to quantity spelling.
fn same(a: &ResourceQuotaStatus, b: &ResourceQuotaStatus) -> bool {
    let norm = |m: &Option<BTreeMap<String, K8sQuantity>>| -> BTreeMap<String, Option<i128>> {
        m.iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Quantity::parse(&v.0).map(|q| q.nanos)))
            .collect()
    };
    norm(&a.hard) == norm(&b.hard) && norm(&a.used) == norm(&b.used)
}

/// Whether a pod still uses quota: not terminal, and not past its deletion grace period.
fn pod_counts(pod: &Pod, now: k8s_openapi::jiff::Timestamp) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    match &pod.metadata.deletion_timestamp {
        Some(t) => {
            let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
            t.0.as_second() + grace > now.as_second()
        }
        None => true,
    }
}

fn is_best_effort(pod: &Pod) -> bool {
    pod.spec.as_ref().is_none_or(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .all(|c| {
                c.resources.as_ref().is_none_or(|r| {
                    r.requests.as_ref().is_none_or(BTreeMap::is_empty)
                        && r.limits.as_ref().is_none_or(BTreeMap::is_empty)
                })
            })
    })
}

/// A scope name and, from a scopeSelector, its operator and values.
type Scope = (String, Option<(String, Vec<String>)>);

fn scopes(quota: &ResourceQuota) -> Vec<Scope> {
    let spec = quota.spec.clone().unwrap_or_default();
    let mut out: Vec<Scope> = spec
        .scopes
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s, None))
        .collect();
    for r in spec
        .scope_selector
        .and_then(|s| s.match_expressions)
        .unwrap_or_default()
    {
        out.push((
            r.scope_name,
            Some((r.operator, r.values.unwrap_or_default())),
        ));
    }
    out
}

fn has_pod_scopes(quota: &ResourceQuota) -> bool {
    scopes(quota).iter().any(|(s, _)| {
        matches!(
            s.as_str(),
            "Terminating" | "NotTerminating" | "BestEffort" | "NotBestEffort" | "PriorityClass"
        )
    })
}

fn in_scope(quota: &ResourceQuota, pod: &Pod) -> bool {
    let spec = pod.spec.clone().unwrap_or_default();
    scopes(quota)
        .iter()
        .all(|(scope, sel)| match scope.as_str() {
            "Terminating" => spec.active_deadline_seconds.is_some(),
            "NotTerminating" => spec.active_deadline_seconds.is_none(),
            "BestEffort" => is_best_effort(pod),
            "NotBestEffort" => !is_best_effort(pod),
            "PriorityClass" => {
                let class = spec.priority_class_name.clone();
                match sel {
                    None => true,
                    Some((op, values)) => match op.as_str() {
                        "In" => class.is_some_and(|c| values.contains(&c)),
                        "NotIn" => class.is_none_or(|c| !values.contains(&c)),
                        "Exists" => class.is_some(),
                        "DoesNotExist" => class.is_none(),
                        _ => false,
                    },
                }
            }
            _ => true,
        })
}

fn is_pod_resource(name: &str) -> bool {
    name == "pods"
        || name == "count/pods"
        || name.starts_with("requests.")
        || name.starts_with("limits.")
        || matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
}

/// One container's `requests` or `limits` of a resource.
fn container_amount(c: &Container, limits: bool, resource: &str) -> Quantity {
    c.resources
        .as_ref()
        .and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        })
        .and_then(|m| m.get(resource))
        .and_then(|q| Quantity::parse(&q.0))
        .unwrap_or_default()
}

/// A pod's effective request (or limit) of a resource.
fn pod_amount(pod: &Pod, limits: bool, resource: &str) -> Quantity {
    let Some(spec) = &pod.spec else {
        return Quantity::default();
    };
    let mut sum = spec.containers.iter().fold(Quantity::default(), |a, c| {
        a.plus(container_amount(c, limits, resource))
    });
    let mut sidecars = Quantity::default();
    let mut init_max = Quantity::default();
    for c in spec.init_containers.iter().flatten() {
        let v = container_amount(c, limits, resource);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.plus(v);
        } else {
            init_max = init_max.max(sidecars.plus(v));
        }
    }
    sum = sum.plus(sidecars).max(init_max);
    if let Some(o) = spec.overhead.as_ref().and_then(|o| o.get(resource)) {
        sum = sum.plus(Quantity::parse(&o.0).unwrap_or_default());
    }
    sum
}

fn count_of<K>(store: &Store<K>, ns: &str) -> Quantity {
    Quantity::count(store.list_namespace(ns).len())
}

/// The namespace's usage of one quota resource; None for one this controller does not track.
fn usage(stores: &Stores, ns: &str, name: &str, pods: &[Arc<Pod>]) -> Option<Quantity> {
    let sum_pods = |limits: bool, resource: &str| {
        pods.iter().fold(Quantity::default(), |a, p| {
            a.plus(pod_amount(p, limits, resource))
        })
    };
    let claims = || stores.claims.list_namespace(ns);
    let claim_storage = |c: &PersistentVolumeClaim| {
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| Quantity::parse(&q.0))
            .unwrap_or_default()
    };
    let node_port_services = || {
        stores.services.filter_namespace(ns, |s| {
            matches!(
                s.spec.as_ref().and_then(|s| s.type_.as_deref()),
                Some("NodePort" | "LoadBalancer")
            )
        })
    };
    Some(match name {
        "pods" | "count/pods" => Quantity::count(pods.len()),
        "services" | "count/services" => count_of(&stores.services, ns),
        "configmaps" | "count/configmaps" => count_of(&stores.configmaps, ns),
        "secrets" | "count/secrets" => count_of(&stores.secrets, ns),
        "persistentvolumeclaims" | "count/persistentvolumeclaims" => count_of(&stores.claims, ns),
        "replicationcontrollers" | "count/replicationcontrollers" => count_of(&stores.rcs, ns),
        "resourcequotas" | "count/resourcequotas" => count_of(&stores.quotas, ns),
        "count/deployments.apps" => count_of(&stores.deployments, ns),
        "count/replicasets.apps" => count_of(&stores.replicasets, ns),
        "count/statefulsets.apps" => count_of(&stores.statefulsets, ns),
        "count/daemonsets.apps" => count_of(&stores.daemonsets, ns),
        "count/jobs.batch" => count_of(&stores.jobs, ns),
        "count/cronjobs.batch" => count_of(&stores.cronjobs, ns),
        "services.loadbalancers" => Quantity::count(
            stores
                .services
                .filter_namespace(ns, |s| {
                    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                })
                .len(),
        ),
        "services.nodeports" => Quantity::count(
            node_port_services()
                .iter()
                .map(|s| {
                    s.spec
                        .as_ref()
                        .and_then(|s| s.ports.as_ref())
                        .map_or(0, Vec::len)
                })
                .sum(),
        ),
        "requests.storage" => claims()
            .iter()
            .fold(Quantity::default(), |a, c| a.plus(claim_storage(c))),
        "cpu" | "memory" | "ephemeral-storage" => sum_pods(false, name),
        _ => {
            if let Some(r) = name.strip_prefix("requests.") {
                sum_pods(false, r)
            } else if let Some(r) = name.strip_prefix("limits.") {
                sum_pods(true, r)
            } else if name.starts_with("hugepages-") {
                sum_pods(false, name)
            } else if let Some((class, what)) = name.split_once(STORAGE_CLASS_SUFFIX) {
                let of_class: Vec<Arc<PersistentVolumeClaim>> = claims()
                    .into_iter()
                    .filter(|c| {
                        c.spec
                            .as_ref()
                            .and_then(|s| s.storage_class_name.as_deref())
                            == Some(class)
                    })
                    .collect();
                match what {
                    "requests.storage" => of_class
                        .iter()
                        .fold(Quantity::default(), |a, c| a.plus(claim_storage(c))),
                    "persistentvolumeclaims" => Quantity::count(of_class.len()),
                    _ => return None,
                }
            } else {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_pod_requests_take_the_larger_of_containers_and_init() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}
                ],
                "overhead": {"memory": "64Mi"}
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pod_amount(&pod, false, "cpu").to_string(), "2");
        assert_eq!(pod_amount(&pod, false, "memory").to_string(), "192Mi");
        assert!(!is_best_effort(&pod));
    }
}
