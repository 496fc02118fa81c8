//! The pods of this node: one shared state ([`Kubelet`]) and a work queue of pod keys. A key
//! is queued when the pod changes in the API, when the runtime shows a change (the relist in
//! [`relist`]), when a probe result flips, or when a back-off ends; [`sync::sync`] then
//! brings the runtime to what the pod asks for and reports the status, level-triggered.

pub mod config;
pub mod env;
pub mod ephemeral;
pub mod fs_group;
pub mod grpc_probe;
pub mod hooks;
pub mod log_rotation;
pub mod probes;
pub mod pull;
pub mod runtime;
pub mod start;
pub mod status;
pub mod sync;
pub mod tokens;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tug_runtime::events::Recorder;
use tug_runtime::{ObjectKey, Queue, Store};

use crate::cri::{api, Cri};
use env::Kind;

/// Directories of the kubelet's state.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// `<data-dir>/agent/pods`: volumes, hosts files, termination messages.
    pub pods: PathBuf,
    /// `<data-dir>/agent/pod-logs`: container logs, by pod.
    pub logs: PathBuf,
}

/// Back-off and waiting reasons the sync keeps between runs.
#[derive(Default)]
pub struct State {
    /// (pod uid, container or "image:" + container) → (current delay, not before).
    pub backoff: HashMap<(String, String), (Duration, Instant)>,
    /// pod uid → container → (waiting reason, message).
    pub waiting: HashMap<String, HashMap<String, (String, String)>>,
    /// Pods whose final deletion was sent (uid).
    pub deleted: HashSet<String>,
}

/// Everything the pod workers share.
pub struct Kubelet {
    /// The API.
    pub client: kube::Client,
    /// The runtime.
    pub cri: Cri,
    /// This node's name.
    pub node_name: String,
    /// This node's IP.
    pub node_ip: String,
    /// The node's allocatable resources (for resourceFieldRef limits left out).
    pub allocatable: BTreeMap<String, Quantity>,
    /// Directories.
    pub dirs: Dirs,
    /// The pods bound to this node.
    pub pods: Store<Pod>,
    /// ConfigMaps (for volumes and env).
    pub config_maps: Store<ConfigMap>,
    /// Secrets (for volumes, env and pull secrets).
    pub secrets: Store<Secret>,
    /// Claims.
    pub claims: Store<PersistentVolumeClaim>,
    /// Volumes.
    pub volumes: Store<PersistentVolume>,
    /// The work queue.
    pub queue: Queue<ObjectKey>,
    /// Events.
    pub recorder: Recorder,
    /// DNS settings for pods.
    pub dns: api::DnsConfig,
    /// Sync state.
    pub state: Mutex<State>,
    /// Probe workers and results.
    pub probes: probes::Probes,
    /// Service account tokens of projected volumes.
    pub tokens: tokens::Tokens,
}

impl Kubelet {
    /// The sync state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's memory in bytes.
    pub fn node_memory(&self) -> f64 {
        self.allocatable
            .get("memory")
            .and_then(tug_hollow::status::quantity)
            .unwrap_or(0.0)
    }
}

/// Restart back-off as upstream's kubelet: 10 s doubling to 5 min.
pub const BACKOFF_START: Duration = Duration::from_secs(10);
/// The longest restart back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Re-queues pods whose runtime state changed, found by listing the runtime every second (as
/// upstream's generic PLEG relists; containerd 1.6 has no CRI event stream), and pods the
/// runtime still has but the API no longer does.
pub async fn relist(k: Arc<Kubelet>) {
    let mut last: HashMap<String, (i32, String, String)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Ok(sandboxes), Ok(containers)) = (k.cri.sandboxes().await, k.cri.containers().await)
        else {
            continue;
        };
        let mut now: HashMap<String, (i32, String, String)> = HashMap::new();
        let key_of = |labels: &HashMap<String, String>| {
            Some((
                labels.get(config::POD_NAMESPACE)?.clone(),
                labels.get(config::POD_NAME)?.clone(),
            ))
        };
        for s in &sandboxes {
            if let Some((ns, name)) = key_of(&s.labels) {
                now.insert(s.id.clone(), (s.state, ns, name));
            }
        }
        for c in &containers {
            if let Some((ns, name)) = key_of(&c.labels) {
                now.insert(c.id.clone(), (c.state + 10, ns, name));
            }
        }
        let mut changed: HashSet<(String, String)> = HashSet::new();
        for (id, v) in &now {
            if last.get(id) != Some(v) {
                changed.insert((v.1.clone(), v.2.clone()));
            }
        }
        for (id, v) in &last {
            if !now.contains_key(id) {
                changed.insert((v.1.clone(), v.2.clone()));
            }
        }
        // Sandboxes of pods the API no longer has (deleted while the kubelet was away).
        for s in &sandboxes {
            if let Some((ns, name)) = key_of(&s.labels) {
                let uid = s.labels.get(config::POD_UID).cloned().unwrap_or_default();
                let known = k
                    .pods
                    .get_in(&ns, &name)
                    .is_some_and(|p| p.metadata.uid.as_deref() == Some(uid.as_str()));
                if !known {
                    changed.insert((ns, name));
                }
            }
        }
        for (ns, name) in changed {
            k.queue.add(ObjectKey::new(ns, name));
        }
        let live: HashSet<String> = containers
            .iter()
            .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
            .map(|c| c.id.clone())
            .collect();
        k.probes.retain(&live);
        last = now;
    }
}

/// What a pod may use that, when it changes, means syncing the pod again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// A ConfigMap or Secret (volumes, env).
    Source(env::Kind),
    /// A PersistentVolumeClaim.
    Claim,
}

/// Re-queues this node's pods that use the object each change of `informer` is about.
pub fn requeue_users<K: tug_runtime::informer::Object>(
    informer: &tug_runtime::Informer<K>,
    k: &Arc<Kubelet>,
    what: Use,
) {
    let k = k.clone();
    informer.on_change(move |c: &tug_runtime::Change<'_, K>| {
        let o = c.object();
        let (ns, name) = (o.meta().namespace.as_deref(), o.meta().name.as_deref());
        for p in k.pods.list_namespace(ns.unwrap_or_default()) {
            if pod_uses(&p, what, name.unwrap_or_default()) {
                k.queue.add(ObjectKey::of(p.as_ref()));
            }
        }
    });
}

/// Whether `pod` uses the ConfigMap, Secret or claim `name` (in volumes or env).
pub fn pod_uses(pod: &Pod, what: Use, name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let volumes = spec.volumes.iter().flatten().any(|v| match what {
        Use::Source(Kind::ConfigMap) => {
            v.config_map.as_ref().is_some_and(|c| c.name == name)
                || v.projected
                    .iter()
                    .flat_map(|p| p.sources.iter().flatten())
                    .any(|s| s.config_map.as_ref().is_some_and(|c| c.name == name))
        }
        Use::Source(Kind::Secret) => {
            v.secret
                .as_ref()
                .is_some_and(|s| s.secret_name.as_deref() == Some(name))
                || v.projected
                    .iter()
                    .flat_map(|p| p.sources.iter().flatten())
                    .any(|s| s.secret.as_ref().is_some_and(|c| c.name == name))
        }
        _ => v
            .persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.claim_name == name),
    });
    let env = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.env_from.iter().flatten().any(|e| match what {
                Use::Source(Kind::ConfigMap) => {
                    e.config_map_ref.as_ref().is_some_and(|r| r.name == name)
                }
                Use::Source(Kind::Secret) => e.secret_ref.as_ref().is_some_and(|r| r.name == name),
                _ => false,
            }) || c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value_from.as_ref())
                .any(|f| match what {
                    Use::Source(Kind::ConfigMap) => f
                        .config_map_key_ref
                        .as_ref()
                        .is_some_and(|r| r.name == name),
                    Use::Source(Kind::Secret) => {
                        f.secret_key_ref.as_ref().is_some_and(|r| r.name == name)
                    }
                    _ => false,
                })
        });
    volumes || env
}
