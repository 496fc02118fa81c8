//! Tugboat's controller-manager: every control loop upstream's kube-controller-manager runs,
//! each level-triggered over shared informers ([`tug_runtime::Factory`]) and a work queue
//! ([`tug_runtime::Queue`]), all through one kube-rs client — in-process inside `tug
//! server`, over HTTPS for `tug controller-manager --kubeconfig`.
//!
//! Each controller module has `start(&Context)`: it registers its informer handlers at once
//! and returns the future that runs its workers once the informers have synced.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tug_runtime::events::Recorder;
use tug_runtime::Factory;

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacert;
pub mod serviceaccount;
pub mod statefulset;
pub mod util;

/// Settings shared by the controllers (flags of `tug controller-manager` / `tug server`).
#[derive(Clone, Debug)]
pub struct Options {
    /// The pod network; each node gets a slice of it (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// The prefix length of each node's podCIDR (`--node-cidr-mask-size`).
    pub node_cidr_mask_size: u8,
    /// How long a node's Lease may go unrenewed before the node is NotReady/Unknown
    /// (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// Terminated pods kept before pod GC deletes the oldest (`--terminated-pod-gc-threshold`).
    pub terminated_pod_gc_threshold: usize,
    /// Workers per controller (upstream's `--concurrent-*-syncs`).
    pub workers: usize,
    /// Which controllers run: names as upstream's `--controllers` ("*" for all, "-name" to
    /// leave one out).
    pub controllers: Vec<String>,
    /// The cluster CA (PEM) published in every namespace as `kube-root-ca.crt`
    /// (`--root-ca-file`, else the kubeconfig's).
    pub root_ca: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cluster_cidr: "10.42.0.0/16".to_owned(),
            node_cidr_mask_size: 24,
            node_monitor_grace_period: Duration::from_secs(40),
            terminated_pod_gc_threshold: 12500,
            workers: 5,
            controllers: vec!["*".to_owned()],
            root_ca: None,
        }
    }
}

/// What every controller gets.
#[derive(Clone)]
pub struct Context {
    /// The client all writes go through.
    pub client: kube::Client,
    /// The shared informers.
    pub informers: Factory,
    /// The settings.
    pub options: Arc<Options>,
}

impl Context {
    /// A context over `client`.
    pub fn new(client: kube::Client, options: Options) -> Self {
        Self {
            informers: Factory::new(client.clone()),
            client,
            options: Arc::new(options),
        }
    }

    /// What a controller's `start` returns: once the informers hold their first lists,
    /// `options.workers` workers run `reconcile` over `queue` (see
    /// [`tug_runtime::queue::run`]).
    pub fn run_workers<T, F, Fut, E>(
        &self,
        name: &'static str,
        queue: tug_runtime::Queue<T>,
        reconcile: F,
    ) -> BoxFuture<'static, ()>
    where
        T: std::hash::Hash + Eq + Clone + Send + std::fmt::Debug + 'static,
        F: Fn(T) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<Option<Duration>, E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        let (informers, workers) = (self.informers.clone(), self.options.workers);
        Box::pin(async move {
            informers.synced().await;
            tug_runtime::queue::run(name, queue, workers, reconcile).await;
        })
    }

    /// An event recorder for the controller `component` (e.g. `deployment-controller`).
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder::new(self.client.clone(), component, None)
    }
}

type Start = fn(&Context) -> BoxFuture<'static, ()>;

/// Every controller, by upstream's name.
pub const CONTROLLERS: &[(&str, Start)] = &[
    ("cronjob", cronjob::start),
    ("daemonset", daemonset::start),
    ("deployment", deployment::start),
    ("disruption", disruption::start),
    ("endpoint", endpoints::start),
    ("endpointslice", endpointslice::start),
    ("garbagecollector", garbagecollector::start),
    ("job", job::start),
    ("namespace", namespace::start),
    ("nodeipam", nodeipam::start),
    ("nodelifecycle", nodelifecycle::start),
    ("podgc", podgc::start),
    ("replicaset", replicaset::start_replicasets),
    (
        "replicationcontroller",
        replicaset::start_replication_controllers,
    ),
    ("resourcequota", resourcequota::start),
    ("root-ca-cert-publisher", rootcacert::start),
    ("serviceaccount", serviceaccount::start),
    ("statefulset", statefulset::start),
];

/// Whether `--controllers` enables `name`.
pub fn enabled(list: &[String], name: &str) -> bool {
    if list.iter().any(|c| c == &format!("-{name}")) {
        return false;
    }
    list.iter().any(|c| c == name || c == "*")
}

/// Runs the enabled controllers until the process ends.
pub async fn run(ctx: Context) {
    let mut running = Vec::new();
    for (name, start) in CONTROLLERS {
        if enabled(&ctx.options.controllers, name) {
            tracing::debug!(controller = name, "starting");
            running.push(start(&ctx));
        }
    }
    ctx.informers.start();
    futures::future::join_all(running).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_as_upstream() {
        let all = vec!["*".to_owned()];
        assert!(enabled(&all, "job"));
        let some = vec!["*".to_owned(), "-job".to_owned()];
        assert!(!enabled(&some, "job"));
        assert!(enabled(&some, "deployment"));
        let only = vec!["job".to_owned()];
        assert!(enabled(&only, "job"));
        assert!(!enabled(&only, "deployment"));
    }
}
