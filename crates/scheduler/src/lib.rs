//! Tugboat's scheduler, as upstream's kube-scheduler: it places pods whose
//! `spec.schedulerName` it serves on nodes. A [`queue`] orders pending pods (activeQ by
//! priority, backoffQ, unschedulable pods moved back on cluster events); each scheduling
//! cycle reads a [`cache::Snapshot`] of the nodes, runs the [`framework`]'s [`plugins`]
//! (PreFilter, Filter over an adaptive sample of nodes, Score), assumes the pod on the best
//! node and binds it asynchronously ([`scheduler`]); a pod that fits nowhere may
//! [`preemption`] lower-priority pods. Start at [`run`].

pub mod cache;
pub mod framework;
pub mod labels;
pub mod node_info;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod scheduler;

/// Settings of the scheduler.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `spec.schedulerName` this scheduler serves.
    pub scheduler_name: String,
    /// Percentage of nodes to score (upstream's `percentageOfNodesToScore`); 0 means
    /// adaptive (50% minus 1% per 125 nodes, at least 5%, at least 100 nodes).
    pub percentage_of_nodes_to_score: u32,
    /// First backoff of a pod that failed (upstream `podInitialBackoffSeconds`, 1 s).
    pub pod_initial_backoff: std::time::Duration,
    /// Longest backoff (upstream `podMaxBackoffSeconds`, 10 s).
    pub pod_max_backoff: std::time::Duration,
    /// How long a pod may stay unschedulable before it is retried anyway (5 min).
    pub pod_max_in_unschedulable_pods_duration: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scheduler_name: "default-scheduler".to_owned(),
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff: std::time::Duration::from_secs(1),
            pod_max_backoff: std::time::Duration::from_secs(10),
            pod_max_in_unschedulable_pods_duration: std::time::Duration::from_secs(300),
        }
    }
}

/// Schedules pods until the process ends.
pub async fn run(client: kube::Client, options: Options) {
    scheduler::Scheduler::new(client, options).run().await
}
