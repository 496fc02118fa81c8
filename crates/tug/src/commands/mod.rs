//! The command line: one subcommand per file, flags named as in k3s and upstream
//! Kubernetes where a name exists.

mod agent;
mod bench;
mod components;
mod controller_manager;
mod image;
mod killall;
mod scheduler;
mod server;
mod version;

use clap::{Parser, Subcommand};

/// Tugboat: Kubernetes in one small binary.
#[derive(Debug, Parser)]
#[command(name = "tug", version = version::VERSION, about, long_about = None)]
pub struct Cli {
    /// Log more (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane and the node agent (kubelet) on this machine.
    Server(Box<server::ServerArgs>),
    /// Run a node agent (kubelet, or hollow nodes) joining a server.
    Agent(Box<agent::AgentArgs>),
    /// Run the scheduler alone, against a server.
    Scheduler(scheduler::SchedulerArgs),
    /// Run the controllers alone, against a server.
    ControllerManager(controller_manager::ControllerManagerArgs),
    /// Stop every container the node agent of a data dir started, and its containerd.
    Killall(killall::KillallArgs),
    /// Container images without a registry: import archives, build the built-in ones.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Measure Tugboat against its peers, side by side.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print the version.
    Version,
}

/// Sets up `tracing` output on stderr.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => server::run(*args).await,
        Command::Agent(args) => agent::run(*args).await,
        Command::Killall(args) => killall::run(args).await,
        Command::Scheduler(args) => scheduler::run(args).await,
        Command::ControllerManager(args) => controller_manager::run(args).await,
        Command::Image(cmd) => image::run(cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Version => {
            version::print();
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    // Registered now, not when first polled: a signal between the caller's set-up and its
    // first wait must not take the default action (exit by the signal).
    let int = signal(SignalKind::interrupt()).ok();
    let term = signal(SignalKind::terminate()).ok();
    async fn recv(s: Option<Signal>) {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            () = recv(int) => {},
            () = recv(term) => {},
        }
    }
}
