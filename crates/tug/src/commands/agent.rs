//! `tug agent`: a node agent joining a server with `--server URL --token T` (k3s-style: the
//! token pins the server's CA) or a `--kubeconfig`. It runs the kubelet (containers through
//! containerd), or hollow nodes instead with `--hollow-nodes N`.

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
    /// Where the agent keeps its state (containerd, pods, logs under <data-dir>/agent).
    #[arg(long, env = "TUG_DATA_DIR", default_value = "/var/lib/tug")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub kubelet: KubeletFlags,
    #[command(flatten)]
    pub hollow: HollowFlags,
}

/// Kubelet flags, shared with `tug server` (names as k3s's).
#[derive(Debug, Args)]
pub struct KubeletFlags {
    /// The node's name (default: the host name).
    #[arg(long, env = "TUG_NODE_NAME")]
    pub node_name: Option<String>,
    /// The node's InternalIP (default: the address of the host's default route).
    #[arg(long)]
    pub node_ip: Option<std::net::IpAddr>,
    /// Labels to register the node with: key=value (repeatable).
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// Taints to register the node with: key[=value]:Effect (repeatable).
    #[arg(long = "node-taint")]
    pub node_taints: Vec<String>,
    /// Use the CRI runtime at this unix socket instead of starting containerd.
    #[arg(long)]
    pub container_runtime_endpoint: Option<PathBuf>,
    /// The kubelet's HTTPS port (logs, exec, attach, port-forward).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// How many pods the node takes.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The size at which a container's log is rotated (a quantity: 10Mi, 500Ki, …).
    #[arg(long, default_value = "10Mi")]
    pub container_log_max_size: String,
    /// How many files a container's log may span, the current one included (≥ 2).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
    pub container_log_max_files: u32,
}

impl KubeletFlags {
    /// The kubelet's options; `server` adds the control-plane role label.
    pub fn options(
        &self,
        data_dir: &std::path::Path,
        server: bool,
    ) -> anyhow::Result<tug_kubelet::Options> {
        let mut labels = parse_labels("--node-label", &self.node_labels)?;
        if server {
            labels.insert(
                "node-role.kubernetes.io/control-plane".into(),
                "true".into(),
            );
        }
        let node_name = match &self.node_name {
            Some(n) => n.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_lowercase())
                .context("reading the host name (pass --node-name)")?,
        };
        if node_name.is_empty() {
            anyhow::bail!("the host has no name: pass --node-name");
        }
        let data_dir = std::path::absolute(data_dir).context("--data-dir")?;
        // Accepted as a path or as a `unix://` URL, as the kubelet's flag.
        let runtime_endpoint = self.container_runtime_endpoint.as_ref().map(|p| {
            let s = p.to_string_lossy();
            PathBuf::from(s.strip_prefix("unix://").unwrap_or(&s))
        });
        Ok(tug_kubelet::Options {
            node_name,
            node_ip: self.node_ip,
            dir: data_dir.join("agent"),
            runtime_endpoint,
            port: self.kubelet_port,
            labels,
            taints: parse_taints("--node-taint", &self.node_taints)?,
            max_pods: self.max_pods,
            log_limits: tug_kubelet::pods::log_rotation::Limits {
                max_size: log_max_size(&self.container_log_max_size)?,
                max_files: self.container_log_max_files as usize,
            },
            api_token: None,
        })
    }
}

/// `--container-log-max-size`: a positive quantity of bytes.
fn log_max_size(v: &str) -> anyhow::Result<u64> {
    let q = k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.to_owned());
    match tug_hollow::status::quantity(&q) {
        Some(n) if n >= 1.0 && n.is_finite() => Ok(n as u64),
        _ => anyhow::bail!(
            "--container-log-max-size: {v:?} is not a positive quantity of bytes (say 10Mi)"
        ),
    }
}

fn parse_labels(
    flag: &str,
    list: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    for l in list {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{flag}: {l:?} is not key=value"))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(labels)
}

fn parse_taints(
    flag: &str,
    list: &[String],
) -> anyhow::Result<Vec<k8s_openapi::api::core::v1::Taint>> {
    let mut taints = Vec::new();
    for t in list {
        let (kv, effect) = t
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("{flag}: {t:?} is not key[=value]:Effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            anyhow::bail!(
                "{flag}: effect {effect:?} must be NoSchedule, PreferNoSchedule or NoExecute"
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
    Ok(taints)
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
        let labels = parse_labels("--hollow-node-labels", &self.hollow_node_labels)?;
        let taints = parse_taints(
            "--hollow-register-with-taints",
            &self.hollow_register_with_taints,
        )?;
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
    if args.hollow.hollow_nodes > 0 {
        tracing::info!(nodes = args.hollow.hollow_nodes, "starting hollow nodes");
        tokio::select! {
            () = tug_hollow::run(client, options) => {}
            () = super::shutdown_signal() => tracing::info!("shutting down"),
        }
        return Ok(());
    }
    let mut kubelet = args.kubelet.options(&args.data_dir, false)?;
    // The server presents its join token to the kubelet API.
    kubelet.api_token = args.token.clone();
    tug_kubelet::preflight(&kubelet)?;
    tokio::select! {
        r = tug_kubelet::run(client, kubelet) => r?,
        () = super::shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}
