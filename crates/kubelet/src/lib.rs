//! The kubelet: makes the pods bound to its node real. It watches those pods, runs them as
//! containers through CRI v1 (gRPC to containerd, which `tug` starts itself unless told
//! otherwise), networks them through CNI, and reports their status, the node's status and
//! the node's Lease back to the API server.
//!
//! Start at [`run`]: it brings up the runtime, registers the node, starts the informers
//! (this node's pods; ConfigMaps, Secrets, claims and volumes they use; the node itself for
//! its podCIDR), then drives [`pods::sync::sync`] from a work queue. With an API token it
//! also serves the kubelet API ([`server`]: logs, exec, attach, port-forward).

pub mod cni;
pub mod containerd;
pub mod cri;
pub mod image;
pub mod masquerade;
pub mod node;
pub mod pods;
pub mod server;
pub mod static_pods;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Taint,
};
use kube::runtime::watcher;
use kube::Api;
use pods::env::Kind;
use tug_runtime::{Change, Informer, ObjectKey, Queue};

/// The sandbox (pause) image the kubelet makes and imports itself.
pub const SANDBOX_IMAGE: &str = image::PAUSE_IMAGE;

/// What stops the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// containerd could not be started.
    #[error(transparent)]
    Containerd(#[from] containerd::Error),
    /// The runtime failed.
    #[error(transparent)]
    Cri(#[from] cri::Error),
    /// The API failed.
    #[error("api: {0}")]
    Api(#[from] kube::Error),
    /// The host refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The kubelet API could not start.
    #[error(transparent)]
    Server(#[from] server::Error),
    /// An image could not be made or imported.
    #[error(transparent)]
    Image(#[from] image::Error),
}

/// Imports the pause image (unless the runtime has it) and every archive in `images_dir`
/// (`<data-dir>/agent/images`, as k3s's airgap images).
async fn import_images(
    cri: &cri::Cri,
    socket: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(), Error> {
    let has_pause = cri.image_id(SANDBOX_IMAGE).await.ok().flatten().is_some();
    let (socket, dir) = (socket.to_path_buf(), dir.to_path_buf());
    let imported = tokio::task::spawn_blocking(move || -> Result<Vec<String>, image::Error> {
        let mut imported = Vec::new();
        if !has_pause {
            let path = dir.join("containerd/pause.tar");
            image::pause_archive().save(&path)?;
            imported.extend(image::import(&socket, &path)?);
        }
        imported.extend(image::import_dir(&socket, &dir.join("images"))?);
        Ok(imported)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    if !imported.is_empty() {
        tracing::info!(?imported, "images imported");
    }
    Ok(())
}

/// Settings of a kubelet.
#[derive(Clone, Debug)]
pub struct Options {
    /// The node's name.
    pub node_name: String,
    /// The node's IP; found from the routing table when not given.
    pub node_ip: Option<IpAddr>,
    /// `<data-dir>/agent`: containerd, pods, logs, CNI config.
    pub dir: PathBuf,
    /// A CRI socket to use instead of starting containerd.
    pub runtime_endpoint: Option<PathBuf>,
    /// The kubelet's HTTPS port.
    pub port: u16,
    /// Labels added to the standard ones.
    pub labels: BTreeMap<String, String>,
    /// Taints to register with.
    pub taints: Vec<Taint>,
    /// How many pods the node takes.
    pub max_pods: u32,
    /// Container log rotation.
    pub log_limits: pods::log_rotation::Limits,
    /// The bearer token the API server presents to the kubelet API (the cluster's join
    /// token); without one the kubelet API is not served.
    pub api_token: Option<String>,
}

/// The address the host would use to reach other machines (no packet is sent: connecting a
/// UDP socket only picks a route), or loopback when there is no route.
pub fn default_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        // TEST-NET-1: never routed anywhere; only the route lookup matters.
        s.connect("192.0.2.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Checks what the kubelet needs before anything starts: root, and containerd unless a
/// runtime endpoint is given.
pub fn preflight(opts: &Options) -> Result<(), Error> {
    if opts.runtime_endpoint.is_none() {
        if containerd::which("containerd").is_none() {
            return Err(containerd::Error::Missing.into());
        }
        if !rustix::process::geteuid().is_root() {
            return Err(Error::Io(std::io::Error::other(
                "the kubelet runs containers and needs root: run as root, or pass --disable-agent",
            )));
        }
    }
    Ok(())
}

/// Stops every pod sandbox (and so every container) of the kubelet whose state is under
/// `dir` (`<data-dir>/agent`), then its containerd, and unmounts the pods' volumes — what
/// k3s's killall script does. Returns how many sandboxes were removed.
pub async fn kill_all(dir: &std::path::Path) -> Result<usize, Error> {
    let layout = containerd::Layout::of_agent(dir, SANDBOX_IMAGE);
    if !layout.config_path().exists() {
        return Ok(0);
    }
    let c = containerd::Containerd::start(&layout).await?;
    let cri = cri::Cri::connect_ready(c.socket()).await?;
    let sandboxes = cri.sandboxes().await?;
    for s in &sandboxes {
        cri.stop_sandbox(&s.id).await?;
        cri.remove_sandbox(&s.id).await?;
    }
    c.stop().await;
    // The node's bridge and masquerade chain (named in its CNI config); pods' veths went
    // with their sandboxes.
    if let Some((bridge, range)) = cni::written(&layout.cni_conf_dir) {
        if let Err(e) = masquerade::remove(&bridge, &range).await {
            tracing::warn!(error = %e, "cannot remove the masquerade rules");
        }
        let _ = tokio::process::Command::new("ip")
            .args(["link", "delete", &bridge])
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }
    for entry in std::fs::read_dir(dir.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let uid = entry.file_name().to_string_lossy().into_owned();
        let _ = pods::volumes::teardown(&dir.join("pods"), &uid);
    }
    Ok(sandboxes.len())
}

/// Runs the kubelet until the future is dropped or something fatal happens.
pub async fn run(client: kube::Client, opts: Options) -> Result<(), Error> {
    let started = Instant::now();
    let layout = containerd::Layout::of_agent(&opts.dir, SANDBOX_IMAGE);
    let (_containerd, socket) = match &opts.runtime_endpoint {
        Some(s) => (None, s.clone()),
        None => {
            let c = containerd::Containerd::start(&layout).await?;
            let s = c.socket().to_path_buf();
            (Some(c), s)
        }
    };
    let cri = cri::Cri::connect_ready(&socket).await?;
    import_images(&cri, &socket, &opts.dir).await?;
    let version = cri.version().await?;
    tracing::info!(runtime = %format!("{}://{}", version.0, version.1), elapsed_ms = started.elapsed().as_millis() as u64, "container runtime ready");

    let node_ip = opts.node_ip.unwrap_or_else(default_ip);
    let api = match &opts.api_token {
        Some(token) => {
            let dir = opts.dir.join("kubelet");
            let listener =
                server::Listener::bind(&dir, &opts.node_name, node_ip, opts.port).await?;
            Some((listener, token.clone()))
        }
        None => None,
    };
    let id = node::Identity {
        name: opts.node_name.clone(),
        ip: node_ip,
        port: opts.port,
        labels: opts.labels.clone(),
        taints: opts.taints.clone(),
        max_pods: opts.max_pods,
    };
    let facts = node::Facts {
        capacity: node::capacity(&opts.dir, opts.max_pods),
        info: node::system_info(&version),
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let registered = node::register(&nodes, &id).await?;
    tracing::info!(node = %id.name, ip = %node_ip, "node registered");

    let by_node = format!("spec.nodeName={}", opts.node_name);
    let pod_informer = Informer::<Pod>::new(
        Api::all(client.clone()),
        watcher::Config::default().fields(&by_node),
    );
    let node_informer = Informer::<Node>::new(
        Api::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", opts.node_name)),
    );
    let cm_informer = Informer::<ConfigMap>::all(client.clone());
    let secret_informer = Informer::<Secret>::all(client.clone());
    let pvc_informer = Informer::<PersistentVolumeClaim>::all(client.clone());
    let pv_informer = Informer::<PersistentVolume>::all(client.clone());
    let dirs = pods::Dirs {
        pods: opts.dir.join("pods"),
        logs: opts.dir.join("pod-logs"),
    };
    std::fs::create_dir_all(&dirs.pods)?;
    std::fs::create_dir_all(&dirs.logs)?;
    let queue: Queue<ObjectKey> = Queue::new();
    let kubelet = Arc::new(pods::Kubelet {
        client: client.clone(),
        cri: cri.clone(),
        node_name: opts.node_name.clone(),
        node_ip: node_ip.to_string(),
        allocatable: facts.capacity.clone(),
        dirs,
        pods: pod_informer.store(),
        config_maps: cm_informer.store(),
        secrets: secret_informer.store(),
        claims: pvc_informer.store(),
        volumes: pv_informer.store(),
        queue: queue.clone(),
        recorder: tug_runtime::events::Recorder::new(
            client.clone(),
            "kubelet",
            Some(opts.node_name.clone()),
        ),
        dns: pods::config::host_dns(),
        state: Mutex::default(),
        probes: pods::probes::Probes::default(),
        tokens: pods::tokens::Tokens::default(),
    });
    let q = queue.clone();
    pod_informer.on_change(move |c: &Change<'_, Pod>| q.add(ObjectKey::of(c.object().as_ref())));
    pods::requeue_users(&cm_informer, &kubelet, pods::Use::Source(Kind::ConfigMap));
    pods::requeue_users(&secret_informer, &kubelet, pods::Use::Source(Kind::Secret));
    pods::requeue_users(&pvc_informer, &kubelet, pods::Use::Claim);
    let status_dirty = Arc::new(tokio::sync::Notify::new());
    let dirty = status_dirty.clone();
    node_informer.on_change(move |_: &Change<'_, Node>| dirty.notify_one());

    let mut tasks = tokio::task::JoinSet::new();
    if let Some((listener, token)) = api {
        tasks.spawn(listener.serve(kubelet.clone(), token));
    }
    tasks.spawn(pod_informer.clone().run());
    tasks.spawn(node_informer.clone().run());
    tasks.spawn(cm_informer.clone().run());
    tasks.spawn(secret_informer.clone().run());
    tasks.spawn(pvc_informer.clone().run());
    tasks.spawn(pv_informer.clone().run());
    tasks.spawn(node::renew_lease(client.clone(), Arc::new(registered)));
    let status_loop = node::StatusLoop {
        client: client.clone(),
        cri: cri.clone(),
        id,
        facts,
        node_store: node_informer.store(),
        cni_conf_dir: layout.cni_conf_dir.clone(),
        ipam_dir: opts.dir.join("cni/ipam"),
        dirty: status_dirty,
    };
    tasks.spawn(status_loop.run());
    let k = kubelet.clone();
    let static_dir = opts.dir.join("pod-manifests");
    let log_limits = opts.log_limits;
    tasks.spawn(async move {
        pod_informer.synced().await;
        cm_informer.synced().await;
        secret_informer.synced().await;
        pvc_informer.synced().await;
        pv_informer.synced().await;
        tokio::spawn(pods::relist(k.clone()));
        tokio::spawn(pods::log_rotation::run(k.clone(), log_limits));
        tokio::spawn(static_pods::run(
            k.client.clone(),
            k.node_name.clone(),
            static_dir,
            k.pods.clone(),
        ));
        tug_runtime::queue::run_per_key("kubelet", k.queue.clone(), move |key| {
            let k = k.clone();
            async move { pods::sync::sync(&k, key).await }
        })
        .await;
    });
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "a kubelet task failed");
        }
    }
    Ok(())
}
