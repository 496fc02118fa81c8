//! `tug bench …`: the project's benchmarks (see the `tug-bench` crate).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The embedded store against etcd: writes, lists, watches.
    Store(StoreArgs),
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
