//! Hollow nodes: simulated kubelets, as upstream's kubemark and kwok, cheap enough that
//! thousands run in one process. Each registers a Node, posts its status, renews its Lease in
//! `kube-node-lease`, and "runs" the pods bound to it: they go Running with an IP from the
//! node's podCIDR, pods that should finish finish (see [`pods`] for the annotations that
//! steer them), and pods being deleted are removed as a kubelet removes them once their
//! containers are stopped. No containers, no cgroups: only the API traffic a kubelet makes.
//!
//! Start at [`run`]: one shared pod informer and one node informer serve every node of the
//! process; a work queue of pods drives [`pods::sync`]; one small task per node keeps its
//! lease and status ([`heartbeat`]). Everything lives inside the future `run` returns, so
//! dropping it stops every node (their leases then expire, as for a dead kubelet).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio::task::JoinSet;
use tug_runtime::{Change, Informer, ObjectKey, Queue, Store};

pub mod heartbeat;
pub mod ipam;
pub mod lease;
pub mod node;
pub mod pods;
pub mod status;

use crate::ipam::{Cidr, PodIps};
use crate::node::HollowNode;

/// What can go wrong in a hollow kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    /// An option does not make sense.
    #[error("invalid option {name}: {reason}")]
    Option {
        /// The option.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A node's podCIDR has no free address left.
    #[error("no free pod IP left in {cidr} on node {node}")]
    NoPodIp {
        /// The node.
        node: String,
        /// Its podCIDR.
        cidr: String,
    },
}

/// Settings of a set of hollow nodes.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many nodes.
    pub count: usize,
    /// Node names are this prefix and an index from 0.
    pub name_prefix: String,
    /// CPU capacity of each node (a quantity).
    pub cpu: String,
    /// Memory capacity of each node (a quantity).
    pub memory: String,
    /// How many pods each node takes.
    pub pods: u32,
    /// Ephemeral storage capacity of each node (a quantity).
    pub ephemeral_storage: String,
    /// Labels added to the standard ones.
    pub labels: BTreeMap<String, String>,
    /// Taints the nodes register with.
    pub taints: Vec<Taint>,
    /// The block the nodes' fake InternalIPs come from: node `i` gets its `i+1`-th address.
    pub node_ip_cidr: String,
    /// How long a node's lease holds (upstream's kubelet: 40 s).
    pub lease_duration_seconds: i32,
    /// How often a node renews its lease (upstream: a quarter of the duration, 10 s).
    pub lease_renew_interval: Duration,
    /// How often a node checks whether its status changed (`--node-status-update-frequency`,
    /// 10 s).
    pub status_update_interval: Duration,
    /// How often a node posts its status when nothing changed
    /// (`nodeStatusReportFrequency`, 5 min).
    pub status_report_interval: Duration,
    /// How long the containers of a pod that should finish (restartPolicy Never or
    /// OnFailure) run, unless the pod's `hollow.tugboat.dev/run-seconds` says otherwise.
    pub run_duration: Duration,
    /// How many pods are synced at once.
    pub workers: usize,
    /// How many nodes register at once.
    pub register_concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            count: 1,
            name_prefix: "hollow-node-".to_owned(),
            cpu: "4".to_owned(),
            memory: "16Gi".to_owned(),
            pods: 110,
            ephemeral_storage: "100Gi".to_owned(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            node_ip_cidr: "10.200.0.0/16".to_owned(),
            lease_duration_seconds: 40,
            lease_renew_interval: Duration::from_secs(10),
            status_update_interval: Duration::from_secs(10),
            status_report_interval: Duration::from_secs(300),
            run_duration: Duration::from_millis(500),
            workers: 16,
            register_concurrency: 64,
        }
    }
}

/// What the node tasks and the pod workers of one [`run`] share.
pub struct Shared {
    /// The client every write goes through.
    pub client: kube::Client,
    /// The settings.
    pub options: Options,
    /// This process's nodes, by name.
    pub nodes: HashMap<String, HollowNode>,
    /// Every Node (the informer's store).
    pub node_store: Store<Node>,
    /// Every pod bound to some node.
    pub pod_store: Store<Pod>,
    /// Pods to sync.
    pub queue: Queue<ObjectKey>,
    ips: Mutex<HashMap<String, PodIps>>,
    runs: Mutex<HashMap<ObjectKey, pods::Tracked>>,
}

impl Shared {
    fn ips(&self) -> MutexGuard<'_, HashMap<String, PodIps>> {
        self.ips.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn runs(&self) -> MutexGuard<'_, HashMap<ObjectKey, pods::Tracked>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many pods this process is running (tracked and not finished).
    pub fn running_pods(&self) -> usize {
        self.runs().len()
    }
}

/// Shuts the queue down when the run ends, so its workers stop.
struct ShutDownOnDrop(Queue<ObjectKey>);

impl Drop for ShutDownOnDrop {
    fn drop(&mut self) {
        self.0.shut_down();
    }
}

fn plan_nodes(options: &Options) -> Result<HashMap<String, HollowNode>, Error> {
    let cidr = Cidr::parse(&options.node_ip_cidr).ok_or_else(|| Error::Option {
        name: "node_ip_cidr",
        reason: format!("{:?} is not an IPv4 CIDR", options.node_ip_cidr),
    })?;
    let mut nodes = HashMap::with_capacity(options.count);
    for index in 0..options.count {
        let ip: Ipv4Addr = cidr.nth(index as u64 + 1).ok_or_else(|| Error::Option {
            name: "node_ip_cidr",
            reason: format!("{cidr} has no room for {} nodes", options.count),
        })?;
        let name = format!("{}{index}", options.name_prefix);
        nodes.insert(name.clone(), HollowNode { index, name, ip });
    }
    Ok(nodes)
}

/// Runs the hollow nodes until the future is dropped (or the process ends).
pub async fn run(client: kube::Client, options: Options) {
    if let Err(e) = run_nodes(client, options).await {
        tracing::error!(error = %e, "hollow nodes cannot run");
    }
}

async fn run_nodes(client: kube::Client, options: Options) -> Result<(), Error> {
    let nodes = plan_nodes(&options)?;
    let node_informer = Informer::<Node>::all(client.clone());
    let pod_informer = Informer::<Pod>::new(
        Api::all(client.clone()),
        watcher::Config::default().fields("spec.nodeName!="),
    );
    let queue = Queue::new();
    let _stop = ShutDownOnDrop(queue.clone());
    let shared = Arc::new(Shared {
        client,
        nodes,
        node_store: node_informer.store(),
        pod_store: pod_informer.store(),
        queue: queue.clone(),
        ips: Mutex::default(),
        runs: Mutex::default(),
        options,
    });
    let s = shared.clone();
    pod_informer.on_change(move |c: &Change<'_, Pod>| {
        let pod = c.object();
        let ours = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| s.nodes.contains_key(n))
        };
        if ours(pod) || c.old().is_some_and(|o| ours(o)) {
            s.queue.add(ObjectKey::of(pod.as_ref()));
        }
    });
    let s = shared.clone();
    node_informer.on_change(move |c: &Change<'_, Node>| {
        // Pods waiting for their node's podCIDR go on once it has one.
        let Change::Updated { old, new } = c else {
            return;
        };
        let cidr = |n: &Node| n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        let name = new.name_any();
        if s.nodes.contains_key(&name) && cidr(old) != cidr(new) {
            for pod in s.pod_store.filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
            }) {
                s.queue.add(ObjectKey::of(pod.as_ref()));
            }
        }
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(node_informer.clone().run());
    tasks.spawn(pod_informer.clone().run());
    let s = shared.clone();
    tasks.spawn(async move {
        node_informer.synced().await;
        pod_informer.synced().await;
        let workers = s.options.workers;
        tug_runtime::queue::run("hollow-kubelet", s.queue.clone(), workers, move |key| {
            let s = s.clone();
            async move { pods::sync(&s, key).await }
        })
        .await;
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(
        shared.options.register_concurrency.max(1),
    ));
    for node in shared.nodes.values() {
        tasks.spawn(heartbeat::run(
            shared.clone(),
            node.clone(),
            permits.clone(),
        ));
    }
    tracing::info!(
        count = shared.nodes.len(),
        prefix = %shared.options.name_prefix,
        "hollow nodes starting"
    );
    while tasks.join_next().await.is_some() {}
    Ok(())
}
