//! `tug image`: container images without a registry. `import` loads image archives (OCI
//! layout or `docker save` tars) into the containerd that Tugboat's agent runs;
//! `build-busybox` and `build-pause` write the archives of the images Tugboat makes itself
//! (the workload image of tests and benchmarks, and the pod sandbox image). The work is
//! `tug_kubelet::image`'s.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tug_kubelet::image;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import image archives (OCI layout or docker-archive tars) into Tugboat's containerd.
    Import(ImportArgs),
    /// Write an image archive of the host's static busybox (applets, /etc/passwd, sh).
    BuildBusybox(BuildBusyboxArgs),
    /// Write the archive of the pod sandbox (pause) image.
    BuildPause(BuildPauseArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archives to import.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Tugboat's data directory; containerd's socket is
    /// <data-dir>/agent/containerd/containerd.sock.
    #[arg(long, env = "TUG_DATA_DIR", default_value = "/var/lib/tug")]
    data_dir: PathBuf,
    /// containerd's socket, instead of the one under --data-dir.
    #[arg(long, value_name = "SOCK", conflicts_with = "data_dir")]
    address: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildBusyboxArgs {
    /// The image's reference.
    #[arg(long, value_name = "REF", default_value = image::BUSYBOX_IMAGE)]
    name: String,
    /// Where to write the archive.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// The static busybox to use (default: /usr/bin/busybox, else /bin/busybox).
    #[arg(long, value_name = "PATH")]
    busybox: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildPauseArgs {
    /// Where to write the archive.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

/// Runs an image subcommand.
pub async fn run(cmd: ImageCommand) -> anyhow::Result<()> {
    // Every step is a file or a child process: off the async threads.
    tokio::task::spawn_blocking(move || run_blocking(cmd))
        .await
        .context("the image command did not finish")?
}

fn run_blocking(cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Import(args) => {
            let socket = args
                .address
                .unwrap_or_else(|| args.data_dir.join("agent/containerd/containerd.sock"));
            for file in &args.files {
                for reference in image::import(&socket, file)? {
                    println!("imported {reference}");
                }
            }
            Ok(())
        }
        ImageCommand::BuildBusybox(args) => {
            let busybox = match args.busybox {
                Some(path) => path,
                None => image::find_busybox().ok_or(image::Error::BusyboxNotFound)?,
            };
            let archive = image::busybox_archive(&args.name, &busybox)?;
            archive.save(&args.output)?;
            println!("wrote {} to {}", archive.reference(), args.output.display());
            Ok(())
        }
        ImageCommand::BuildPause(args) => {
            let archive = image::pause_archive();
            archive.save(&args.output)?;
            println!("wrote {} to {}", archive.reference(), args.output.display());
            Ok(())
        }
    }
}
