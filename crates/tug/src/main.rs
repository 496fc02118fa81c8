//! `tug`: Tugboat's one binary. This file only parses the command line and hands each
//! subcommand to its module under `commands/`; everything else lives in library crates.

mod commands;

use clap::Parser;

/// mimalloc instead of the system allocator: the API path allocates and frees many small
/// JSON values per request from every thread, where glibc's malloc spent about a third of
/// `tug bench scheduler`'s samples (arena locks, heap growth and trimming, page clearing).
/// Built without transparent huge pages (the workspace's `no_thp`): with them, memory
/// purged and touched again came back as whole 2 MiB pages the kernel had to clear.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    commands::init_logging(cli.verbose);
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain, non-zero exit.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
