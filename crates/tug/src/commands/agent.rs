//! `tug agent`: a node agent joining a server with `--server URL --token T` (k3s-style: the
//! token pins the server's CA) or a `--kubeconfig`. Today it runs hollow nodes
//! (`--hollow-nodes N`); the real kubelet comes next.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server to join, e.g. https://10.0.0.1:6443.
    #[arg(long, env = "TUG_URL")]
    pub server: Option<String>,
    /// The server's join token (<data-dir>/server/token on the server).
    #[arg(long, env = "TUG_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Reach the server through this kubeconfig instead of --server/--token.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub hollow: HollowFlags,
}

/// Hollow node flags, shared with `tug server`.
#[derive(Debug, Args)]
pub struct HollowFlags {
    /// Run this many hollow (simulated) nodes instead of a kubelet.
    #[arg(long, default_value_t = 0)]
    pub hollow_nodes: usize,
    /// Hollow node names are this prefix followed by an index.
    #[arg(long, default_value = "hollow-")]
    pub hollow_node_prefix: String,
    /// CPU capacity of each hollow node.
    #[arg(long, default_value = "4")]
    pub hollow_cpu: String,
    /// Memory capacity of each hollow node.
    #[arg(long, default_value = "16Gi")]
    pub hollow_memory: String,
    /// Pod capacity of each hollow node.
    #[arg(long, default_value_t = 110)]
    pub hollow_max_pods: u32,
    /// Labels of the hollow nodes: key=value, comma-separated (as the kubelet's
    /// --node-labels).
    #[arg(long, value_delimiter = ',')]
    pub hollow_node_labels: Vec<String>,
    /// Taints the hollow nodes register with: key[=value]:Effect, comma-separated (as the
    /// kubelet's --register-with-taints).
    #[arg(long, value_delimiter = ',')]
    pub hollow_register_with_taints: Vec<String>,
}

impl HollowFlags {
    /// The hollow nodes' options.
    pub fn options(&self) -> anyhow::Result<tug_hollow::Options> {
        let mut labels = std::collections::BTreeMap::new();
        for l in &self.hollow_node_labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--hollow-node-labels: {l:?} is not key=value"))?;
            labels.insert(k.to_owned(), v.to_owned());
        }
        let mut taints = Vec::new();
        for t in &self.hollow_register_with_taints {
            let (kv, effect) = t.rsplit_once(':').ok_or_else(|| {
                anyhow::anyhow!("--hollow-register-with-taints: {t:?} is not key[=value]:Effect")
            })?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                anyhow::bail!(
                    "--hollow-register-with-taints: effect {effect:?} must be NoSchedule, \
                     PreferNoSchedule or NoExecute"
                );
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (kv, None),
            };
            taints.push(k8s_openapi::api::core::v1::Taint {
                key: key.to_owned(),
                value,
                effect: effect.to_owned(),
                time_added: None,
            });
        }
        Ok(tug_hollow::Options {
            count: self.hollow_nodes,
            name_prefix: self.hollow_node_prefix.clone(),
            cpu: self.hollow_cpu.clone(),
            memory: self.hollow_memory.clone(),
            pods: self.hollow_max_pods,
            labels,
            taints,
            ..tug_hollow::Options::default()
        })
    }
}

/// A client for `--server` and a join `--token`: fetch the CA, check it, then connect
/// verified.
pub async fn join(server: &str, token: &str) -> anyhow::Result<kube::Client> {
    let url: http::Uri = server
        .parse()
        .with_context(|| format!("--server {server:?} is not a URL"))?;
    tug_apiserver::join::token_ca_hash(token).context("--token")?;
    let mut insecure = kube::Config::new(url.clone());
    insecure.accept_invalid_certs = true;
    let probe = kube::Client::try_from(insecure).context("building the API client")?;
    let request = http::Request::get("/cacerts")
        .body(Vec::new())
        .context("building the /cacerts request")?;
    let ca = probe
        .request_text(request)
        .await
        .with_context(|| format!("fetching {server}/cacerts"))?;
    tug_apiserver::join::verify_ca(token, &ca).context("checking the server's identity")?;
    let kubeconfig = tug_apiserver::pki::token_kubeconfig(server, &ca, token);
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&kubeconfig).context("building the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .context("loading the kubeconfig")?;
    kube::Client::try_from(config).context("building the API client")
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let client = match (&args.kubeconfig, &args.server, &args.token) {
        (Some(path), _, _) => super::components::client_from_kubeconfig(path).await?,
        (None, Some(server), Some(token)) => join(server, token).await?,
        _ => anyhow::bail!("tug agent needs --server and --token (or --kubeconfig)"),
    };
    let options = args.hollow.options()?;
    if args.hollow.hollow_nodes == 0 {
        anyhow::bail!("the kubelet is not built yet: run hollow nodes with --hollow-nodes N");
    }
    tracing::info!(nodes = args.hollow.hollow_nodes, "starting hollow nodes");
    tokio::select! {
        () = tug_hollow::run(client, options) => {}
        () = super::shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}
