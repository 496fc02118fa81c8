//! `tug bench …`: the project's benchmarks (see the `tug-bench` crate).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The embedded store against etcd: writes, lists, watches.
    Store(StoreArgs),
    /// The API server over HTTPS, embedded store against etcd: memory, mutating requests,
    /// GET, LIST from the cache, watch delivery.
    Api(ApiArgs),
    /// The scheduler in-process against the API server, shaped as upstream scheduler_perf's
    /// SchedulingBasic: pods/s and creation-to-bind latency.
    Scheduler(SchedulerArgs),
    /// Hollow nodes running pods from Deployments with the whole control plane in-process:
    /// pod startup latency.
    Density(DensityArgs),
    /// Real containers on one node (tug server with its kubelet on containerd): time to node
    /// Ready, idle memory, pod startup latency.
    Pods(PodsArgs),
}

#[derive(Debug, Args)]
pub struct PodsArgs {
    /// Pods measured in all.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods at a time.
    #[arg(long, default_value_t = 20)]
    batch: usize,
    /// Directory for the server's data dir. Default: the temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the server's log (level from RUST_LOG, default warn) to this file.
    #[arg(long)]
    server_log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DensityArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Pods in all.
    #[arg(long, default_value_t = 3000)]
    pods: usize,
    /// Deployments the pods are split over.
    #[arg(long, default_value_t = 30)]
    deployments: usize,
    /// Directory for the store's data. Default: the temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Nodes (scheduler_perf's node template: 4 cpu, 32 GiB, 110 pods).
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods scheduled before measuring.
    #[arg(long, default_value_t = 1000)]
    init_pods: usize,
    /// Measured pods (100m cpu / 500Mi memory each).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent clients creating pods (upstream's scheduler_perf: 30 workers).
    #[arg(long, default_value_t = 30)]
    clients: usize,
    /// Requests per second the creating clients share, as client-go's token bucket
    /// (scheduler_perf: 5000, burst the same); 0 = unlimited.
    #[arg(long, default_value_t = 5000.0)]
    qps: f64,
    /// Directory for the store's data. Default: the temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the store in memory instead of on disk.
    #[arg(long)]
    in_memory: bool,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Concurrent clients in the mutating and GET cases.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds the mutating case runs per server (GETs run half as long).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Pods in the LIST case.
    #[arg(long, default_value_t = 10_000)]
    list_pods: usize,
    /// Events in the watch case.
    #[arg(long, default_value_t = 500)]
    watch_events: usize,
    /// Deployments in the server-side apply case (each applied twice).
    #[arg(long, default_value_t = 1000)]
    apply_objects: usize,
    /// Concurrent clients in the server-side apply case.
    #[arg(long, default_value_t = 16)]
    apply_clients: usize,
    /// Directory for both servers' data. Default: the temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Seconds each write case runs per backend.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent writer counts, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    writers: Vec<usize>,
    /// Keys in the list case.
    #[arg(long, default_value_t = 10_000)]
    list_keys: usize,
    /// Events in the watch case.
    #[arg(long, default_value_t = 1000)]
    watch_events: usize,
    /// Directory for both stores' data (the same disk for both). Default: the temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Pods(a) => {
            if a.pods == 0 || a.batch == 0 {
                anyhow::bail!("--pods and --batch must be positive");
            }
            let options = tug_bench::pods::Options {
                server_exe: std::env::current_exe().context("finding the tug binary")?,
                pods: a.pods,
                batch: a.batch,
                dir: a.dir,
                server_log: a.server_log,
                ..Default::default()
            };
            let table = tug_bench::pods::run(&options)
                .await
                .context("pods benchmark failed")?;
            println!("{table}");
            Ok(())
        }
        BenchCommand::Density(a) => {
            if a.nodes == 0 || a.pods == 0 || a.deployments == 0 || a.deployments > a.pods {
                anyhow::bail!(
                    "--nodes, --pods and --deployments must be positive, with no more \
                     deployments than pods"
                );
            }
            if a.nodes > 256 {
                anyhow::bail!("--nodes: at most 256 (the default --cluster-cidr holds 256 /24s)");
            }
            let options = tug_bench::density::Options {
                nodes: a.nodes,
                pods: a.pods,
                deployments: a.deployments,
                dir: a.dir,
                ..Default::default()
            };
            let table = tug_bench::density::run(&options)
                .await
                .context("density benchmark failed")?;
            println!("{table}");
            Ok(())
        }
        BenchCommand::Scheduler(a) => {
            if a.nodes == 0 || a.pods == 0 || a.clients == 0 {
                anyhow::bail!("--nodes, --pods and --clients must be positive");
            }
            if !a.qps.is_finite() || a.qps < 0.0 {
                anyhow::bail!("--qps must be a number of requests per second, 0 or more");
            }
            let options = tug_bench::scheduler::Options {
                nodes: a.nodes,
                init_pods: a.init_pods,
                pods: a.pods,
                clients: a.clients,
                qps: a.qps,
                dir: a.dir,
                in_memory: a.in_memory,
                ..Default::default()
            };
            let table = tug_bench::scheduler::run(&options)
                .await
                .context("scheduler benchmark failed")?;
            println!("{table}");
            Ok(())
        }
        BenchCommand::Api(a) => {
            if !(a.seconds.is_finite() && a.seconds > 0.0) {
                anyhow::bail!("--seconds must be a positive number, got {}", a.seconds);
            }
            if a.clients == 0
                || a.list_pods == 0
                || a.watch_events == 0
                || a.apply_objects == 0
                || a.apply_clients == 0
            {
                anyhow::bail!(
                    "--clients, --list-pods, --watch-events, --apply-objects and \
                     --apply-clients must be positive"
                );
            }
            let options = tug_bench::api::Options {
                server_exe: std::env::current_exe().context("finding the tug binary")?,
                clients: a.clients,
                case_duration: Duration::from_secs_f64(a.seconds),
                list_pods: a.list_pods,
                watch_events: a.watch_events,
                dir: a.dir,
                apply_objects: a.apply_objects,
                apply_clients: a.apply_clients,
                ..Default::default()
            };
            let table = tug_bench::api::run(&options)
                .await
                .context("API benchmark failed")?;
            println!("{table}");
            Ok(())
        }
        BenchCommand::Store(a) => {
            if !(a.seconds.is_finite() && a.seconds > 0.0) {
                anyhow::bail!("--seconds must be a positive number, got {}", a.seconds);
            }
            if a.writers.is_empty() || a.writers.contains(&0) {
                anyhow::bail!("--writers must list positive counts");
            }
            let options = tug_bench::store::Options {
                case_duration: Duration::from_secs_f64(a.seconds),
                writers: a.writers,
                list_keys: a.list_keys,
                watch_events: a.watch_events,
                dir: a.dir,
                ..Default::default()
            };
            let table = tug_bench::store::run(&options)
                .await
                .context("store benchmark failed")?;
            println!("{table}");
            Ok(())
        }
    }
}
