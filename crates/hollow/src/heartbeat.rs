//! One hollow node's life: register (or adopt) the Node, post its status, then keep the
//! Lease renewed every `lease_renew_interval` and post the status again when it changed (for
//! instance after the node lifecycle controller marked it Unknown) or every
//! `status_report_interval`. Nodes start their ticks at evenly spread offsets so thousands
//! of them do not renew in the same instant.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tug_runtime::ObjectKey;

use crate::lease::NodeLease;
use crate::node::{self, HollowNode};
use crate::status::now_seconds;
use crate::{Error, Shared};

/// Where in `period` node `index` of `count` ticks.
pub fn offset(index: usize, count: usize, period: Duration) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    let frac = (index % count) as f64 / count as f64;
    period.mul_f64(frac)
}

async fn register(shared: &Shared, api: &Api<Node>, hollow: &HollowNode) -> Result<Node, Error> {
    let registered = node::register(api, &shared.options, hollow).await?;
    let mut status = node::desired_status(
        &shared.options,
        hollow,
        registered.status.as_ref(),
        now_seconds(),
    );
    node::beat(&mut status, now_seconds());
    node::post_status(api, &hollow.name, &status).await
}

/// Runs one node until the task is aborted.
pub async fn run(shared: Arc<Shared>, hollow: HollowNode, permits: Arc<Semaphore>) {
    let api: Api<Node> = Api::all(shared.client.clone());
    let opts = &shared.options;
    let mut retry = Duration::from_millis(200);
    let (registered, mut lease) = loop {
        let permit = permits.acquire().await;
        match register(&shared, &api, &hollow).await {
            Ok(n) => {
                let mut lease =
                    NodeLease::new(shared.client.clone(), &n, opts.lease_duration_seconds);
                if let Err(e) = lease.renew().await {
                    tracing::debug!(node = %hollow.name, error = %e, "creating the node lease failed");
                }
                drop(permit);
                break (n, lease);
            }
            Err(e) => {
                drop(permit);
                tracing::debug!(node = %hollow.name, error = %e, "registering failed; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(7));
            }
        }
    };
    tracing::debug!(node = %hollow.name, "registered");
    let mut last_posted = registered.status;
    let mut last_report = Instant::now();
    let start = Instant::now();
    let mut lease_tick = tokio::time::interval_at(
        start + offset(hollow.index, opts.count, opts.lease_renew_interval),
        opts.lease_renew_interval,
    );
    lease_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut status_tick = tokio::time::interval_at(
        start + offset(hollow.index, opts.count, opts.status_update_interval),
        opts.status_update_interval,
    );
    status_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = lease.renew().await {
                    tracing::debug!(node = %hollow.name, error = %e, "renewing the node lease failed");
                }
            }
            _ = status_tick.tick() => {
                let current = shared
                    .node_store
                    .get(&ObjectKey::cluster(&hollow.name))
                    .and_then(|n| n.status.clone())
                    .or_else(|| last_posted.clone());
                let now = now_seconds();
                let mut desired = node::desired_status(opts, &hollow, current.as_ref(), now);
                let due = last_report.elapsed() >= opts.status_report_interval;
                if due || node::status_changed(current.as_ref(), &desired) {
                    node::beat(&mut desired, now);
                    match node::post_status(&api, &hollow.name, &desired).await {
                        Ok(n) => {
                            last_posted = n.status;
                            last_report = Instant::now();
                        }
                        Err(e) => {
                            tracing::debug!(node = %hollow.name, error = %e, "posting node status failed");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_spread_over_the_period() {
        let p = Duration::from_secs(10);
        assert_eq!(offset(0, 5000, p), Duration::ZERO);
        assert_eq!(offset(2500, 5000, p), Duration::from_secs(5));
        assert!(offset(4999, 5000, p) < p);
        assert_eq!(offset(0, 0, p), Duration::ZERO);
    }
}
