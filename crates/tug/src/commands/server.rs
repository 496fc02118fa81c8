//! `tug server`: the all-in-one control plane. Today it opens the cluster store (embedded
//! under `--data-dir`, or etcd with `--datastore-endpoint`) and holds it until stopped; the
//! apiserver, controllers and agent attach here as they land.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tug_store::embedded::{EmbeddedOptions, EmbeddedStore};
use tug_store::etcd::EtcdStore;
use tug_store::Store;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where Tugboat keeps its state.
    #[arg(long, env = "TUG_DATA_DIR", default_value = "/var/lib/tug")]
    pub data_dir: PathBuf,
    /// Use etcd at these endpoints instead of the embedded store
    /// (e.g. http://127.0.0.1:2379; several separated by commas).
    #[arg(long, env = "TUG_DATASTORE_ENDPOINT", value_delimiter = ',')]
    pub datastore_endpoint: Vec<String>,
}

/// Opens the store the flags choose.
pub async fn open_store(args: &ServerArgs) -> anyhow::Result<Arc<dyn Store>> {
    if !args.datastore_endpoint.is_empty() {
        for e in &args.datastore_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                anyhow::bail!("--datastore-endpoint {e:?} must be an http:// or https:// URL");
            }
        }
        let store = EtcdStore::connect(&args.datastore_endpoint)
            .await
            .context("connecting to the datastore")?;
        return Ok(Arc::new(store));
    }
    let path = args.data_dir.join("server/db");
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default())
        .await
        .with_context(|| format!("opening the embedded store at {}", path.display()))?;
    Ok(Arc::new(store))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let store = open_store(&args).await?;
    let revision = store.current_revision().await?;
    tracing::info!(
        revision,
        "store ready; the API server is not built yet (see the issues)"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    Ok(())
}
