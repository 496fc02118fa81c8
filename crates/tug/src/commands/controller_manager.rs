//! `tug controller-manager`: the controllers alone, reaching the API server through a
//! kubeconfig, with leader election so several can run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Controller flags shared by `tug controller-manager` and `tug server`, named as
/// upstream's kube-controller-manager flags.
#[derive(Debug, Args)]
pub struct ControllerFlags {
    /// The pod network; each node gets a slice of it as its podCIDR.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// The prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// How long a node may go without renewing its Lease before it is marked Unknown.
    #[arg(long, default_value = "40s", value_parser = super::components::parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// Terminated pods kept before the oldest are deleted.
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
    /// Which controllers run: "*" for all, a name to enable, "-name" to disable
    /// (comma-separated).
    #[arg(long, default_value = "*", value_delimiter = ',')]
    pub controllers: Vec<String>,
    /// The cluster CA (PEM) published in every namespace as ConfigMap `kube-root-ca.crt`
    /// (default: `tug server`'s own CA, or the CA of `--kubeconfig`).
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
}

impl ControllerFlags {
    /// The controllers' options.
    pub fn options(&self) -> anyhow::Result<tug_controllers::Options> {
        let names: Vec<&str> = tug_controllers::CONTROLLERS
            .iter()
            .map(|(n, _)| *n)
            .collect();
        for c in &self.controllers {
            let name = c.trim_start_matches('-');
            if name != "*" && !names.contains(&name) {
                anyhow::bail!(
                    "--controllers: unknown controller {name:?} (known: {})",
                    names.join(", ")
                );
            }
        }
        if !(8..=30).contains(&self.node_cidr_mask_size) {
            anyhow::bail!("--node-cidr-mask-size must be between 8 and 30");
        }
        let root_ca = match &self.root_ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--root-ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(tug_controllers::Options {
            root_ca,
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size: self.node_cidr_mask_size,
            node_monitor_grace_period: self.node_monitor_grace_period,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            controllers: self.controllers.clone(),
            ..tug_controllers::Options::default()
        })
    }
}

#[derive(Debug, Args)]
pub struct ControllerManagerArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Take part in leader election through the Lease kube-system/kube-controller-manager.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    #[command(flatten)]
    pub controllers: ControllerFlags,
}

pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let mut options = args.controllers.options()?;
    if options.root_ca.is_none() {
        options.root_ca = kubeconfig_ca(&args.kubeconfig);
    }
    let client = super::components::client_from_kubeconfig(&args.kubeconfig).await?;
    let ctx = tug_controllers::Context::new(client.clone(), options);
    super::components::run_elected(
        client,
        "kube-controller-manager",
        tug_runtime::leader::identity(),
        args.leader_elect,
        tug_controllers::run(ctx),
    )
    .await;
    Ok(())
}

/// The CA (PEM) of the kubeconfig's current cluster, inline or from its file.
fn kubeconfig_ca(path: &std::path::Path) -> Option<String> {
    use base64::Engine;
    let kubeconfig = kube::config::Kubeconfig::read_from(path).ok()?;
    let context = kubeconfig.current_context.as_deref()?;
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .cluster
        .clone();
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        return String::from_utf8(pem).ok();
    }
    std::fs::read_to_string(cluster.certificate_authority.as_ref()?).ok()
}
