//! `tug scheduler`: the scheduler alone, reaching the API server through a kubeconfig, with
//! leader election so several can run.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Take part in leader election through the Lease kube-system/kube-scheduler.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Schedule pods whose spec.schedulerName is this.
    #[arg(long, default_value = "default-scheduler")]
    pub scheduler_name: String,
}

pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    let client = super::components::client_from_kubeconfig(&args.kubeconfig).await?;
    let options = tug_scheduler::Options {
        scheduler_name: args.scheduler_name,
        ..tug_scheduler::Options::default()
    };
    super::components::run_elected(
        client.clone(),
        "kube-scheduler",
        tug_runtime::leader::identity(),
        args.leader_elect,
        tug_scheduler::run(client, options),
    )
    .await;
    Ok(())
}
