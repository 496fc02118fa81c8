//! Pod specs turned into CRI configs: the sandbox (hostname, DNS, namespaces, port mappings,
//! cgroup parent by QoS class) and each container (image, command and args with `$(VAR)`
//! expansion, environment, mounts, resources as cgroup settings, security context, log path).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::volumes::HostVolume;
use crate::cri::api;

/// Label keys upstream's kubelet puts on sandboxes and containers.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// The pod's namespace.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The pod's uid.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// The container's name.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// The pod's grace period, kept on the sandbox for when the pod is gone from the API.
pub const GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Where a container's termination message is.
pub const TERMINATION_MESSAGE: &str = "io.kubernetes.container.terminationMessagePath";

/// The pod's name, namespace and uid.
pub fn ids(pod: &Pod) -> (&str, &str, &str) {
    (
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or(""),
    )
}

/// Where the sandbox's container logs go: `<logs>/<ns>_<name>_<uid>`.
pub fn log_directory(logs_dir: &Path, pod: &Pod) -> std::path::PathBuf {
    let (name, ns, uid) = ids(pod);
    logs_dir.join(format!("{ns}_{name}_{uid}"))
}

fn qos_dir(pod: &Pod) -> &'static str {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => "",
        Some("Burstable") => "burstable/",
        _ => "besteffort/",
    }
}

/// The sandbox config of `pod`, attempt `attempt`.
pub fn sandbox(
    pod: &Pod,
    attempt: u32,
    logs_dir: &Path,
    dns: &api::DnsConfig,
) -> api::PodSandboxConfig {
    let (name, ns, uid) = ids(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME.into(), name.into());
    labels.insert(POD_NAMESPACE.into(), ns.into());
    labels.insert(POD_UID.into(), uid.into());
    let mut annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(
        GRACE.into(),
        spec.termination_grace_period_seconds
            .unwrap_or(30)
            .to_string(),
    );
    // Host-network pods keep the node's name (and UTS namespace): upstream sets none.
    let hostname = if host_network {
        String::new()
    } else {
        spec.hostname.clone().unwrap_or_else(|| name.to_owned())
    };
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| api::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp as i32,
                Some("SCTP") => api::Protocol::Sctp as i32,
                _ => api::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let psc = spec.security_context.clone().unwrap_or_default();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: ns.into(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(logs_dir, pod).to_string_lossy().into_owned(),
        dns_config: (!host_network
            || spec.dns_policy.as_deref() == Some("ClusterFirstWithHostNet"))
        .then(|| dns.clone()),
        port_mappings,
        labels,
        annotations,
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/kubepods/{}pod{uid}", qos_dir(pod)),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(&spec)),
                run_as_user: psc.run_as_user.map(|value| api::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| api::Int64Value { value }),
                supplemental_groups: supplemental_groups(&psc),
                privileged,
                ..Default::default()
            }),
            sysctls: psc
                .sysctls
                .iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            ..Default::default()
        }),
        windows: None,
    }
}

/// The pod's supplemental groups, with its fsGroup added as upstream's kubelet does (so the
/// processes can use volumes given to that group).
fn supplemental_groups(psc: &k8s_openapi::api::core::v1::PodSecurityContext) -> Vec<i64> {
    let mut groups = psc.supplemental_groups.clone().unwrap_or_default();
    if let Some(g) = psc.fs_group.filter(|g| !groups.contains(g)) {
        groups.push(g);
    }
    groups
}

fn namespace_options(spec: &k8s_openapi::api::core::v1::PodSpec) -> api::NamespaceOption {
    let mode = |host: Option<bool>, shared: api::NamespaceMode| {
        if host.unwrap_or(false) {
            api::NamespaceMode::Node as i32
        } else {
            shared as i32
        }
    };
    let pid_shared = if spec.share_process_namespace.unwrap_or(false) {
        api::NamespaceMode::Pod
    } else {
        api::NamespaceMode::Container
    };
    api::NamespaceOption {
        network: mode(spec.host_network, api::NamespaceMode::Pod),
        pid: mode(spec.host_pid, pid_shared),
        ipc: mode(spec.host_ipc, api::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// cgroup settings from a container's requests and limits, as upstream's kubelet computes
/// them (cgroup v1 shares and CFS quota; OOM score by QoS class).
pub fn resources(pod: &Pod, c: &Container, node_memory: f64) -> api::LinuxContainerResources {
    let q = tug_hollow::status::quantity;
    let res = c.resources.clone().unwrap_or_default();
    let limit = |n: &str| res.limits.as_ref().and_then(|l| l.get(n)).and_then(q);
    let request = |n: &str| {
        res.requests
            .as_ref()
            .and_then(|l| l.get(n))
            .and_then(q)
            .or_else(|| limit(n))
    };
    let cpu_shares = request("cpu").map_or(2, |cpu| ((cpu * 1024.0).round() as i64).max(2));
    let cpu_quota = limit("cpu").map_or(0, |cpu| ((cpu * 100_000.0).round() as i64).max(1000));
    let memory = limit("memory").map_or(0, |m| m as i64);
    let qos = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .unwrap_or("BestEffort");
    let oom_score_adj = match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let req = request("memory").unwrap_or(0.0);
            let adj = if node_memory > 0.0 {
                1000 - (1000.0 * req / node_memory) as i64
            } else {
                999
            };
            adj.clamp(3, 999)
        }
    };
    api::LinuxContainerResources {
        cpu_period: if cpu_quota > 0 { 100_000 } else { 0 },
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: memory,
        oom_score_adj,
        ..Default::default()
    }
}

/// What a container config is made from, besides the pod.
pub struct ContainerInputs<'a> {
    /// The image id to run.
    pub image: String,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// The pod's volumes on the host.
    pub volumes: &'a BTreeMap<String, HostVolume>,
    /// The pod's `/etc/hosts` file (none for host-network pods).
    pub hosts_file: Option<&'a Path>,
    /// The file mounted at the termination message path.
    pub termination_file: &'a Path,
    /// The restart attempt.
    pub attempt: u32,
    /// The node's memory (for the OOM score of burstable pods).
    pub node_memory: f64,
}

/// The config of container `c` of `pod`.
pub fn container(pod: &Pod, c: &Container, input: ContainerInputs<'_>) -> api::ContainerConfig {
    let (name, ns, uid) = ids(pod);
    let vars = |n: &str| {
        input
            .env
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    let expand_all = |v: &Option<Vec<String>>| {
        v.iter()
            .flatten()
            .map(|s| super::env::expand(s, &vars))
            .collect::<Vec<_>>()
    };
    let mut mounts: Vec<api::Mount> = c
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let v = input.volumes.get(&m.name)?;
            let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
            let host = match sub {
                Some(s) => {
                    let p = v.path.join(s);
                    if !p.exists() {
                        let _ = std::fs::create_dir_all(&p);
                    }
                    p
                }
                None => v.path.clone(),
            };
            Some(api::Mount {
                container_path: m.mount_path.clone(),
                host_path: host.to_string_lossy().into_owned(),
                readonly: m.read_only.unwrap_or(false) || v.read_only,
                propagation: match m.mount_propagation.as_deref() {
                    Some("HostToContainer") => {
                        api::MountPropagation::PropagationHostToContainer as i32
                    }
                    Some("Bidirectional") => api::MountPropagation::PropagationBidirectional as i32,
                    _ => api::MountPropagation::PropagationPrivate as i32,
                },
                ..Default::default()
            })
        })
        .collect();
    let mounted = |mounts: &[api::Mount], p: &str| mounts.iter().any(|m| m.container_path == p);
    if let Some(hosts) = input.hosts_file.filter(|_| !mounted(&mounts, "/etc/hosts")) {
        mounts.push(api::Mount {
            container_path: "/etc/hosts".into(),
            host_path: hosts.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    let term_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    if !mounted(&mounts, &term_path) {
        mounts.push(api::Mount {
            container_path: term_path.clone(),
            host_path: input.termination_file.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    let mut labels = HashMap::from([
        (POD_NAME.to_owned(), name.to_owned()),
        (POD_NAMESPACE.to_owned(), ns.to_owned()),
        (POD_UID.to_owned(), uid.to_owned()),
        (CONTAINER_NAME.to_owned(), c.name.clone()),
    ]);
    labels.retain(|_, v| !v.is_empty());
    let annotations = HashMap::from([
        (
            TERMINATION_MESSAGE.to_owned(),
            input.termination_file.to_string_lossy().into_owned(),
        ),
        (
            "io.kubernetes.container.restartCount".to_owned(),
            input.attempt.to_string(),
        ),
    ]);
    let spec = pod.spec.clone().unwrap_or_default();
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: input.attempt,
        }),
        image: Some(crate::cri::image_spec(&input.image)),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: input
            .env
            .iter()
            .map(|(k, v)| api::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts,
        labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, input.attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources(pod, c, input.node_memory)),
            security_context: Some(api::LinuxContainerSecurityContext {
                capabilities: Some(api::Capability {
                    add_capabilities: caps.add.unwrap_or_default(),
                    drop_capabilities: caps.drop.unwrap_or_default(),
                    ..Default::default()
                }),
                privileged: sc.privileged.unwrap_or(false),
                namespace_options: Some(namespace_options(&spec)),
                run_as_user: sc
                    .run_as_user
                    .or(psc.run_as_user)
                    .map(|value| api::Int64Value { value }),
                run_as_group: sc
                    .run_as_group
                    .or(psc.run_as_group)
                    .map(|value| api::Int64Value { value }),
                readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
                supplemental_groups: supplemental_groups(&psc),
                no_new_privs: sc.allow_privilege_escalation == Some(false),
                masked_paths: if sc.privileged.unwrap_or(false) {
                    vec![]
                } else {
                    MASKED.iter().map(|s| (*s).to_owned()).collect()
                },
                readonly_paths: if sc.privileged.unwrap_or(false) {
                    vec![]
                } else {
                    READONLY.iter().map(|s| (*s).to_owned()).collect()
                },
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// Paths hidden from unprivileged containers (the runtime default of upstream).
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
/// Paths read-only in unprivileged containers.
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The DNS config for pods: the host's resolv.conf (no cluster DNS yet: ClusterFirst falls
/// back to it, as upstream does when the kubelet has no --cluster-dns).
pub fn host_dns() -> api::DnsConfig {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut dns = api::DnsConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(str::to_owned)),
            Some("search") => dns.searches = words.map(str::to_owned).collect(),
            Some("options") => dns.options = words.map(str::to_owned).collect(),
            _ => {}
        }
    }
    dns
}

/// The `/etc/hosts` of a pod.
pub fn hosts_file(pod: &Pod, ip: &str) -> String {
    let (name, _, _) = ids(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.to_owned());
    let fqdn = match (&spec.subdomain, pod.metadata.namespace.as_deref()) {
        (Some(sub), Some(ns)) => format!("{hostname}.{sub}.{ns}.svc.cluster.local\t{hostname}"),
        _ => hostname,
    };
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if !ip.is_empty() {
        out.push_str(&format!("{ip}\t{fqdn}\n"));
    }
    for alias in spec.host_aliases.iter().flatten() {
        out.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{}\n",
            alias.ip,
            alias.hostnames.clone().unwrap_or_default().join("\t")
        ));
    }
    out
}
