//! The kubelet's Node: registration with the host's capacity, standard labels and addresses;
//! the status (conditions from the runtime's and the network's readiness, node info, images)
//! posted when it changes and at least every five minutes; the Lease renewed every 10 s.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use tug_hollow::lease::NodeLease;
use tug_runtime::ObjectKey;

use crate::cri::Cri;

/// The kubelet version the node reports.
pub const KUBELET_VERSION: &str = concat!("v1.37.0-tug.", env!("CARGO_PKG_VERSION"));

/// How long the node's lease holds (upstream's default).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// How often the lease is renewed (upstream: a quarter of the duration).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How often an unchanged status is posted anyway (upstream's nodeStatusReportFrequency).
pub const STATUS_REPORT: Duration = Duration::from_secs(300);

/// What the node is.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The node's name.
    pub name: String,
    /// Its InternalIP.
    pub ip: IpAddr,
    /// The kubelet's HTTPS port.
    pub port: u16,
    /// Labels added to the standard ones.
    pub labels: BTreeMap<String, String>,
    /// Taints it registers with.
    pub taints: Vec<Taint>,
    /// How many pods it takes.
    pub max_pods: u32,
}

/// The host's capacity: cpu, memory, pods, ephemeral-storage (of `data_dir`'s filesystem).
pub fn capacity(data_dir: &Path, max_pods: u32) -> BTreeMap<String, Quantity> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let storage = rustix::fs::statvfs(data_dir)
        .map(|s| s.f_blocks.saturating_mul(s.f_frsize))
        .unwrap_or(0);
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpus.to_string())),
        ("memory".to_owned(), Quantity(format!("{memory_kib}Ki"))),
        ("pods".to_owned(), Quantity(max_pods.to_string())),
        (
            "ephemeral-storage".to_owned(),
            Quantity(storage.to_string()),
        ),
        ("hugepages-1Gi".to_owned(), Quantity("0".into())),
        ("hugepages-2Mi".to_owned(), Quantity("0".into())),
    ])
}

/// The labels a kubelet puts on its node.
pub fn labels(id: &Identity) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), id.name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "kubernetes.io/arch".to_owned(),
            crate::image::oci_arch().to_owned(),
        ),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "beta.kubernetes.io/arch".to_owned(),
            crate::image::oci_arch().to_owned(),
        ),
    ]);
    l.extend(id.labels.clone());
    l
}

/// Creates the node, or adopts the existing one of that name (refreshing its labels).
pub async fn register(api: &Api<Node>, id: &Identity) -> Result<Node, kube::Error> {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(labels(id)),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_owned(),
                "0".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!id.taints.is_empty()).then(|| id.taints.clone()),
            ..NodeSpec::default()
        }),
        status: None,
    };
    tug_hollow::node::create_or_adopt(api, &node).await
}

/// What the node's conditions are made of.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// The runtime answered and is ready.
    pub runtime_ready: bool,
    /// The pod network is configured (the node has a podCIDR and CNI is ready).
    pub network_ready: bool,
    /// Why not, when not ready.
    pub message: String,
}

/// Facts about the host and runtime that rarely change.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Capacity (= allocatable; nothing is reserved).
    pub capacity: BTreeMap<String, Quantity>,
    /// Node info.
    pub info: NodeSystemInfo,
}

/// The host's node info, with the runtime's version.
pub fn system_info(runtime: &(String, String)) -> NodeSystemInfo {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned());
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".to_owned());
    NodeSystemInfo {
        machine_id: read("/etc/machine-id").unwrap_or_default(),
        system_uuid: read("/sys/class/dmi/id/product_uuid").unwrap_or_default(),
        boot_id: read("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
        kernel_version: read("/proc/sys/kernel/osrelease").unwrap_or_default(),
        os_image,
        container_runtime_version: format!("{}://{}", runtime.0, runtime.1),
        kubelet_version: KUBELET_VERSION.to_owned(),
        operating_system: "linux".to_owned(),
        architecture: crate::image::oci_arch().to_owned(),
        ..NodeSystemInfo::default()
    }
}

/// A condition whose status is `ok` ("True"/"False"), with the (true, false) reasons and
/// messages.
fn condition(
    old: &[NodeCondition],
    type_: &str,
    ok: bool,
    reasons: (&str, &str),
    messages: (&str, &str),
    now: Timestamp,
) -> NodeCondition {
    let status = if ok { "True" } else { "False" };
    let prev = old.iter().find(|c| c.type_ == type_ && c.status == status);
    let (reason, message) = if ok {
        (reasons.0, messages.0)
    } else {
        (reasons.1, messages.1)
    };
    NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_transition_time: Some(
            prev.and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now)),
        ),
        last_heartbeat_time: Some(
            prev.and_then(|c| c.last_heartbeat_time.clone())
                .unwrap_or(Time(now)),
        ),
    }
}

/// The status to post, keeping transition times of unchanged conditions.
pub fn desired_status(
    id: &Identity,
    facts: &Facts,
    health: &Health,
    images: Vec<ContainerImage>,
    current: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let old = current
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let ready = health.runtime_ready && health.network_ready;
    let not_ready = format!("container runtime not ready: {}", health.message);
    let conditions = vec![
        condition(
            old,
            "MemoryPressure",
            false,
            ("KubeletHasInsufficientMemory", "KubeletHasSufficientMemory"),
            (
                "kubelet has insufficient memory available",
                "kubelet has sufficient memory available",
            ),
            now,
        ),
        condition(
            old,
            "DiskPressure",
            false,
            ("KubeletHasDiskPressure", "KubeletHasNoDiskPressure"),
            ("kubelet has disk pressure", "kubelet has no disk pressure"),
            now,
        ),
        condition(
            old,
            "PIDPressure",
            false,
            ("KubeletHasInsufficientPID", "KubeletHasSufficientPID"),
            (
                "kubelet has insufficient PID available",
                "kubelet has sufficient PID available",
            ),
            now,
        ),
        condition(
            old,
            "Ready",
            ready,
            ("KubeletReady", "KubeletNotReady"),
            ("kubelet is posting ready status", &not_ready),
            now,
        ),
    ];
    NodeStatus {
        capacity: Some(facts.capacity.clone()),
        allocatable: Some(facts.capacity.clone()),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: id.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: id.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(id.port),
            }),
        }),
        node_info: Some(facts.info.clone()),
        images: Some(images),
        ..current.cloned().unwrap_or_default()
    }
}

/// The images for the node status: the 50 largest, as upstream reports.
pub async fn images(cri: &Cri) -> Vec<ContainerImage> {
    let mut list = cri.list_images().await.unwrap_or_default();
    list.sort_by_key(|i| std::cmp::Reverse(i.size));
    list.into_iter()
        .take(50)
        .map(|i| ContainerImage {
            names: Some(
                i.repo_digests
                    .into_iter()
                    .chain(i.repo_tags)
                    .collect::<Vec<_>>(),
            )
            .filter(|n| !n.is_empty()),
            size_bytes: i64::try_from(i.size).ok(),
        })
        .collect()
}

/// Keeps the node's lease renewed every [`LEASE_RENEW`] until the task is dropped.
pub async fn renew_lease(client: kube::Client, node: Arc<Node>) {
    let mut lease = NodeLease::new(client, &node, LEASE_DURATION_SECONDS);
    let mut tick = tokio::time::interval(LEASE_RENEW);
    loop {
        tick.tick().await;
        if let Err(e) = lease.renew().await {
            tracing::warn!(error = %e, "renewing the node lease failed");
        }
    }
}

/// Whether `current` differs from `desired` in anything reported, heartbeat times aside.
pub fn changed(current: Option<&NodeStatus>, desired: &NodeStatus) -> bool {
    tug_hollow::node::status_changed(current, desired)
        || current.is_some_and(|c| c.images != desired.images)
}

/// Posts the node's status when it changes (a podCIDR arriving, the runtime's readiness) and
/// at least every [`STATUS_REPORT`].
pub struct StatusLoop {
    /// The API.
    pub client: kube::Client,
    /// The runtime.
    pub cri: crate::cri::Cri,
    /// The node.
    pub id: Identity,
    /// Host facts.
    pub facts: Facts,
    /// The node, as its informer sees it.
    pub node_store: tug_runtime::Store<Node>,
    /// Where the CNI config goes.
    pub cni_conf_dir: PathBuf,
    /// host-local IPAM state.
    pub ipam_dir: PathBuf,
    /// Notified when the node changes.
    pub dirty: Arc<tokio::sync::Notify>,
}

impl StatusLoop {
    /// Runs until dropped.
    pub async fn run(self) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut posted = Instant::now() - STATUS_REPORT;
        // The range whose masquerade rules are in place.
        let mut masqueraded: Option<String> = None;
        loop {
            let node = self
                .node_store
                .get(&ObjectKey::cluster(self.id.name.clone()));
            let cidr = node
                .as_ref()
                .and_then(|n| n.spec.as_ref())
                .and_then(|s| s.pod_cidr.clone());
            let mut health = Health::default();
            match &cidr {
                Some(c) => match crate::cni::write(&self.cni_conf_dir, c, &self.ipam_dir) {
                    Ok(true) if masqueraded.as_ref() != Some(c) => {
                        let bridge = crate::cni::bridge_name(c).unwrap_or_default();
                        match crate::masquerade::ensure(&bridge, c).await {
                            Ok(()) => masqueraded = Some(c.clone()),
                            Err(e) => {
                                tracing::warn!(error = %e, "pods cannot reach beyond the node")
                            }
                        }
                    }
                    Ok(true) => {}
                    Ok(false) => health.message = format!("podCIDR {c} is not an IPv4 range"),
                    Err(e) => health.message = format!("cannot write the CNI config: {e}"),
                },
                None => health.message = "the node has no podCIDR yet".into(),
            }
            match self.cri.conditions().await {
                Ok(conds) => {
                    health.runtime_ready =
                        conds.iter().any(|(t, ok, _)| t == "RuntimeReady" && *ok);
                    health.network_ready =
                        conds.iter().any(|(t, ok, _)| t == "NetworkReady" && *ok);
                    if health.message.is_empty() {
                        if let Some((_, _, m)) = conds.iter().find(|(_, ok, _)| !ok) {
                            health.message = m.clone();
                        }
                    }
                }
                Err(e) => health.message = e.to_string(),
            }
            if node.is_some() {
                let images = images(&self.cri).await;
                let now = k8s_openapi::jiff::Timestamp::now();
                let current = node.as_ref().and_then(|n| n.status.as_ref());
                let mut desired =
                    desired_status(&self.id, &self.facts, &health, images, current, now);
                if changed(current, &desired) || posted.elapsed() >= STATUS_REPORT {
                    tug_hollow::node::beat(&mut desired, now);
                    match tug_hollow::node::post_status(&api, &self.id.name, &desired).await {
                        Ok(_) => posted = Instant::now(),
                        Err(e) => tracing::warn!(error = %e, "posting the node status failed"),
                    }
                }
            }
            // containerd notices a new CNI config within a second or so: look again soon
            // while not ready, else at the heartbeat interval or when the node changes.
            let wait = if health.runtime_ready && health.network_ready {
                LEASE_RENEW
            } else {
                Duration::from_millis(250)
            };
            let _ = tokio::time::timeout(wait, self.dirty.notified()).await;
        }
    }
}
