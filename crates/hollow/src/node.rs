//! A hollow node's Node object: what it registers (labels, capacity, taints) and the status
//! a kubelet posts through `nodes/status` (conditions with upstream's reasons, addresses,
//! nodeInfo, daemon endpoints). The status is compared with what the API holds so it is
//! written only when something changed or the report frequency is up, as upstream's kubelet.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

use crate::status::fake_id;
use crate::{Error, Options};

/// The kubelet version hollow nodes report.
pub const KUBELET_VERSION: &str = "v1.37.0-tug-hollow";
/// The label every hollow node carries (`node.kubernetes.io/instance-type=hollow`).
pub const INSTANCE_TYPE: (&str, &str) = ("node.kubernetes.io/instance-type", "hollow");
/// The kubelet's port, reported as the daemon endpoint.
pub const KUBELET_PORT: i32 = 10250;

/// One simulated node of this process.
#[derive(Clone, Debug)]
pub struct HollowNode {
    /// Its position in the set.
    pub index: usize,
    /// `<prefix><index>`.
    pub name: String,
    /// Its fake InternalIP.
    pub ip: Ipv4Addr,
}

/// The labels a hollow node registers with.
pub fn labels(opts: &Options, node: &HollowNode) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), node.name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("beta.kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        (INSTANCE_TYPE.0.to_owned(), INSTANCE_TYPE.1.to_owned()),
    ]);
    l.extend(opts.labels.clone());
    l
}

/// The Node a hollow kubelet registers (status is posted separately).
pub fn node_object(opts: &Options, node: &HollowNode) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(labels(opts, node)),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!opts.taints.is_empty()).then(|| opts.taints.clone()),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

fn resources(opts: &Options) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(opts.cpu.clone())),
        ("memory".to_owned(), Quantity(opts.memory.clone())),
        ("pods".to_owned(), Quantity(opts.pods.to_string())),
        (
            "ephemeral-storage".to_owned(),
            Quantity(opts.ephemeral_storage.clone()),
        ),
        ("hugepages-1Gi".to_owned(), Quantity("0".to_owned())),
        ("hugepages-2Mi".to_owned(), Quantity("0".to_owned())),
    ])
}

/// The conditions a healthy kubelet reports: (type, status, reason, message).
const CONDITIONS: &[(&str, &str, &str, &str)] = &[
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ),
];

/// The status to post; conditions keep their lastTransitionTime (and lastHeartbeatTime,
/// which the caller bumps when it writes) where the status is unchanged from `current`.
pub fn desired_status(
    opts: &Options,
    node: &HollowNode,
    current: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let old = current
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let conditions = CONDITIONS
        .iter()
        .map(|(type_, status, reason, message)| {
            let prev = old
                .iter()
                .find(|c| c.type_ == *type_ && c.status == *status);
            NodeCondition {
                type_: (*type_).to_owned(),
                status: (*status).to_owned(),
                reason: Some((*reason).to_owned()),
                message: Some((*message).to_owned()),
                last_transition_time: Some(
                    prev.and_then(|c| c.last_transition_time.clone())
                        .unwrap_or(Time(now)),
                ),
                last_heartbeat_time: Some(
                    prev.and_then(|c| c.last_heartbeat_time.clone())
                        .unwrap_or(Time(now)),
                ),
            }
        })
        .collect();
    let id = fake_id(&[&node.name]);
    NodeStatus {
        capacity: Some(resources(opts)),
        allocatable: Some(resources(opts)),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: node.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: node.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: id[..32].to_owned(),
            system_uuid: uuid(&id[32..]),
            boot_id: uuid(&fake_id(&[&node.name, "boot"])[..32]),
            kernel_version: "6.8.0-hollow".to_owned(),
            os_image: "Tugboat hollow node".to_owned(),
            container_runtime_version: format!("hollow://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: KUBELET_VERSION.to_owned(),
            kube_proxy_version: String::new(),
            operating_system: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            ..NodeSystemInfo::default()
        }),
        ..current.cloned().unwrap_or_default()
    }
}

fn uuid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `current` differs from `desired` in anything the kubelet reports, heartbeat times
/// aside.
pub fn status_changed(current: Option<&NodeStatus>, desired: &NodeStatus) -> bool {
    let Some(cur) = current else {
        return true;
    };
    let strip = |s: &NodeStatus| {
        s.conditions
            .iter()
            .flatten()
            .map(|c| NodeCondition {
                last_heartbeat_time: None,
                ..c.clone()
            })
            .collect::<Vec<_>>()
    };
    strip(cur) != strip(desired)
        || cur.capacity != desired.capacity
        || cur.allocatable != desired.allocatable
        || cur.addresses != desired.addresses
        || cur.node_info != desired.node_info
        || cur.daemon_endpoints != desired.daemon_endpoints
}

/// When the conditions were last posted (the oldest heartbeat among them).
pub fn last_heartbeat(status: Option<&NodeStatus>) -> Option<Timestamp> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .filter_map(|c| c.last_heartbeat_time.as_ref().map(|t| t.0))
        .min()
}

/// Every condition's lastHeartbeatTime set to `now`.
pub fn beat(status: &mut NodeStatus, now: Timestamp) {
    for c in status.conditions.iter_mut().flatten() {
        c.last_heartbeat_time = Some(Time(now));
    }
}

/// Creates the node, or adopts an existing one of that name (making sure it carries the
/// hollow labels).
pub async fn register(api: &Api<Node>, opts: &Options, node: &HollowNode) -> Result<Node, Error> {
    Ok(create_or_adopt(api, &node_object(opts, node)).await?)
}

/// Creates `node`, or, when a Node of that name exists (a restarted kubelet), adopts it and
/// refreshes its labels — what every kubelet does at registration.
pub async fn create_or_adopt(api: &Api<Node>, node: &Node) -> Result<Node, kube::Error> {
    match api.create(&PostParams::default(), node).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            let patch = serde_json::json!({ "metadata": { "labels": node.metadata.labels } });
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
        other => other,
    }
}

/// Writes `status` through `nodes/status`.
pub async fn post_status(api: &Api<Node>, name: &str, status: &NodeStatus) -> Result<Node, Error> {
    let patch = serde_json::json!({ "status": status });
    Ok(api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> HollowNode {
        HollowNode {
            index: 3,
            name: "hollow-3".to_owned(),
            ip: Ipv4Addr::new(10, 200, 0, 4),
        }
    }

    #[test]
    fn registration_carries_upstream_labels_and_extra_ones() {
        let mut opts = Options::default();
        opts.labels.insert("zone".to_owned(), "a".to_owned());
        let n = node_object(&opts, &node());
        let l = n.metadata.labels.unwrap_or_default();
        assert_eq!(
            l.get("kubernetes.io/hostname").map(String::as_str),
            Some("hollow-3")
        );
        assert_eq!(l.get("kubernetes.io/os").map(String::as_str), Some("linux"));
        assert_eq!(
            l.get("kubernetes.io/arch").map(String::as_str),
            Some("amd64")
        );
        assert_eq!(
            l.get("node.kubernetes.io/instance-type")
                .map(String::as_str),
            Some("hollow")
        );
        assert_eq!(l.get("zone").map(String::as_str), Some("a"));
    }

    #[test]
    fn status_keeps_times_until_something_changes() {
        let opts = Options::default();
        let t0 = Timestamp::from_second(1_000).unwrap_or_else(|e| panic!("{e}"));
        let t1 = Timestamp::from_second(2_000).unwrap_or_else(|e| panic!("{e}"));
        let first = desired_status(&opts, &node(), None, t0);
        let ready = first
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap_or_else(|| panic!("no Ready"));
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        let again = desired_status(&opts, &node(), Some(&first), t1);
        assert!(!status_changed(Some(&first), &again));
        assert_eq!(last_heartbeat(Some(&again)), Some(t0));
        // The controller marked it Unknown: the next status is a change, with a new
        // transition time.
        let mut unknown = first.clone();
        for c in unknown.conditions.iter_mut().flatten() {
            c.status = "Unknown".to_owned();
        }
        let back = desired_status(&opts, &node(), Some(&unknown), t1);
        assert!(status_changed(Some(&unknown), &back));
        let ready = back
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.clone());
        assert_eq!(ready, Some(Time(t1)));
        let addrs = back.addresses.unwrap_or_default();
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(addrs[0].address, "10.200.0.4");
    }
}
