//! `tug server`: the all-in-one control plane. Today it opens the cluster store (embedded
//! under `--data-dir`, or etcd with `--datastore-endpoint`), makes the cluster's identity on
//! first start, writes the admin kubeconfig, and serves HTTPS on `--https-listen-port` with
//! authentication (client certificates, `--token-auth-file`) and the health and version
//! endpoints. The REST API, controllers and agent attach here as they land.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tug_apiserver::authn::Authenticator;
use tug_apiserver::pki::{self, Pki};
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
    /// The HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// The address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Also write the admin kubeconfig here (it is always written to
    /// <data-dir>/admin.kubeconfig).
    #[arg(long)]
    pub write_kubeconfig: Option<PathBuf>,
    /// Static bearer tokens: CSV lines `token,user,uid[,"group1,group2"]`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Extra names or addresses for the serving certificate (repeatable).
    #[arg(long)]
    pub tls_san: Vec<String>,
    /// Run the control plane only, without the kubelet (as k3s). Hollow nodes
    /// (--hollow-nodes) still run.
    #[arg(long)]
    pub disable_agent: bool,
    #[command(flatten)]
    pub kubelet: super::agent::KubeletFlags,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Do not run the controllers in this process.
    #[arg(long)]
    pub disable_controller_manager: bool,
    /// Elect the in-process scheduler and controller-manager through Leases, so several
    /// servers (or separate `tug scheduler` / `tug controller-manager`) can run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    #[command(flatten)]
    pub controllers: super::controller_manager::ControllerFlags,
    #[command(flatten)]
    pub hollow: super::agent::HollowFlags,
    /// The IPv4 range service ClusterIPs come from; its first address is the `kubernetes`
    /// service's.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// The port range of NodePort services.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// Admission plugins to turn off, comma-separated (ServiceAccount, Priority,
    /// DefaultTolerationSeconds).
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    /// The address the `kubernetes` service's endpoints point at (default: the bind
    /// address, else the host's primary address).
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
}

fn port_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let parsed = s
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((a, b)) if a > 0 && a <= b => Ok((a, b)),
        _ => anyhow::bail!("--service-node-port-range {s:?} must look like 30000-32767"),
    }
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Makes or loads the cluster identity and writes the admin kubeconfig.
fn identity(args: &ServerArgs) -> anyhow::Result<Pki> {
    let (mut dns, mut ips) = pki::serving_names(&hostname(), &[]);
    if !args.bind_address.is_unspecified() {
        ips.push(args.bind_address);
    }
    for san in &args.tls_san {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(san.clone()),
        }
    }
    let pki = Pki::load_or_create(&args.data_dir.join("server/tls"), &dns, &ips)
        .context("preparing the cluster certificates")?;
    let host = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        match args.bind_address {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        }
    };
    let kubeconfig = pki.admin_kubeconfig(&format!("https://{host}:{}", args.https_listen_port));
    let mut paths = vec![args.data_dir.join("admin.kubeconfig")];
    paths.extend(args.write_kubeconfig.clone());
    for path in paths {
        pki::write_kubeconfig(&path, &kubeconfig)
            .with_context(|| format!("writing the kubeconfig {}", path.display()))?;
        tracing::info!(path = %path.display(), "wrote admin kubeconfig");
    }
    Ok(pki)
}

/// A stable identity for this server's components in leader election: a restarted server
/// takes its own lease back at once, two servers on one host still differ.
fn component_identity(data_dir: &std::path::Path) -> String {
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let digest = ring::digest::digest(&ring::digest::SHA256, dir.as_os_str().as_encoded_bytes());
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}_{hex}", hostname())
}

/// Starts the scheduler, controllers and hollow nodes in-process, each on its own
/// in-process client.
fn start_components(
    args: &ServerArgs,
    router: &axum::Router,
    token: &str,
    ca: &str,
) -> anyhow::Result<()> {
    use tug_apiserver::local::{client, component_user};
    let identity = component_identity(&args.data_dir);
    if !args.disable_controller_manager {
        let c = client(
            router.clone(),
            component_user("system:kube-controller-manager"),
        );
        let mut options = args.controllers.options()?;
        options.root_ca.get_or_insert_with(|| ca.to_owned());
        let ctx = tug_controllers::Context::new(c.clone(), options);
        let (id, elect) = (identity.clone(), args.leader_elect);
        tokio::spawn(async move {
            super::components::run_elected(
                c,
                "kube-controller-manager",
                id,
                elect,
                tug_controllers::run(ctx),
            )
            .await;
        });
    }
    if !args.disable_scheduler {
        let c = client(router.clone(), component_user("system:kube-scheduler"));
        let (id, elect) = (identity, args.leader_elect);
        tokio::spawn(async move {
            let run = tug_scheduler::run(c.clone(), tug_scheduler::Options::default());
            super::components::run_elected(c, "kube-scheduler", id, elect, run).await;
        });
    }
    if args.hollow.hollow_nodes > 0 {
        let c = client(router.clone(), tug_apiserver::join::agent_user());
        tokio::spawn(tug_hollow::run(c, args.hollow.options()?));
    }
    if !args.disable_agent {
        let c = client(router.clone(), tug_apiserver::join::agent_user());
        let mut opts = args.kubelet.options(&args.data_dir, true)?;
        opts.api_token = Some(token.to_owned());
        tokio::spawn(async move {
            if let Err(e) = tug_kubelet::run(c, opts).await {
                // The control plane keeps serving; the node stays NotReady.
                tracing::error!(error = %e, "the kubelet stopped");
            }
        });
    }
    Ok(())
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    args.controllers.options()?;
    args.hollow.options()?;
    if !args.disable_agent {
        tug_kubelet::preflight(&args.kubelet.options(&args.data_dir, true)?)?;
    }
    let authenticator = match &args.token_auth_file {
        Some(path) => Authenticator::from_token_file(path)?,
        None => Authenticator::default(),
    };
    for name in &args.disable_admission_plugins {
        if !tug_apiserver::rest::admission::PLUGINS.contains(&name.as_str()) {
            anyhow::bail!(
                "--disable-admission-plugins: unknown plugin {name:?} (known: {})",
                tug_apiserver::rest::admission::PLUGINS.join(", ")
            );
        }
    }
    let mut config = tug_apiserver::rest::Config {
        service_cidr: args
            .service_cidr
            .parse()
            .map_err(|e| anyhow::anyhow!("--service-cidr: {e}"))?,
        node_ports: port_range(&args.service_node_port_range)?,
        service_account_keys: None,
        disabled_admission_plugins: args.disable_admission_plugins.clone(),
    };
    let store = open_store(&args).await?;
    let keys = Arc::new(
        tug_apiserver::tokens::Keys::load_or_create(&args.data_dir.join("server/tls/service.key"))
            .context("preparing the service account key")?,
    );
    config.service_account_keys = Some(keys.clone());
    let revision = store.current_revision().await?;
    tracing::info!(revision, "store ready");
    let registry = tug_apiserver::rest::Registry::start(store, config)
        .await
        .context("filling the watch cache")?;
    let advertise = args
        .advertise_address
        .unwrap_or(if args.bind_address.is_unspecified() {
            tug_kubelet::default_ip()
        } else {
            args.bind_address
        });
    tug_apiserver::rest::bootstrap::run(&registry, advertise, args.https_listen_port)
        .await
        .map_err(|e| anyhow::anyhow!("creating the system namespaces: {}", e.message))?;
    let pki = identity(&args)?;
    let tls = tug_apiserver::serve::tls_config(&pki).context("configuring TLS")?;
    let token_path = args.data_dir.join("server/token");
    let token = tug_apiserver::join::load_or_create_token(&token_path, &pki.ca_cert)?;
    let authenticator = authenticator.with_token(&token, tug_apiserver::join::agent_user());
    let lookup = tug_apiserver::rest::token::lookup(registry.clone());
    let authenticator = Arc::new(authenticator.with_service_accounts(keys, lookup));
    let _ = registry.authenticator.set(authenticator.clone());
    let kubelets = tug_apiserver::kubelet::KubeletClient::new(token.clone())
        .context("configuring TLS to kubelets")?;
    let router = tug_apiserver::routes::router(registry)
        .merge(tug_apiserver::join::routes(pki.ca_cert.clone()))
        .layer(axum::Extension(kubelets));
    start_components(&args, &router, &token, &pki.ca_cert)?;
    let shutdown = super::shutdown_signal();
    let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, "API server listening");
    tug_apiserver::serve::serve(listener, tls, authenticator, router, shutdown).await;
    tracing::info!("shutting down");
    Ok(())
}
