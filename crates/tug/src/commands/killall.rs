//! `tug killall`: stops every container the kubelet of a data dir started, and its containerd
//! (stopping `tug` itself leaves containers running, as k3s does; this is k3s's killall).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct KillallArgs {
    /// The data dir of the `tug server` or `tug agent` whose containers to stop.
    #[arg(long, env = "TUG_DATA_DIR", default_value = "/var/lib/tug")]
    pub data_dir: PathBuf,
}

pub async fn run(args: KillallArgs) -> anyhow::Result<()> {
    let n = tug_kubelet::kill_all(&args.data_dir.join("agent")).await?;
    println!("stopped {n} pod sandboxes");
    Ok(())
}
