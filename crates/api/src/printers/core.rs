//! Printers for the core group's simpler kinds: namespaces, nodes, services, endpoints,
//! config maps, secrets, service accounts, resource quotas and pod templates.

use std::collections::BTreeSet;

use serde_json::Value;

use super::util::{
    age, at, format_labels, int_at, layout_containers, list_at, map_len, name, non_empty, quantity,
    str_at,
};
use super::{always_shown, col, wide, wide_selector, Printer, AGE, CONTAINERS, IMAGES, NAME};

/// Namespaces: Name, Status, Age.
pub(super) const NAMESPACES: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ],
    cells: namespace_cells,
};

fn namespace_cells(ns: &Value, now: i64) -> Vec<Value> {
    // The API server sets Active on create; an object without a phase is still Active.
    let phase = non_empty(ns, &["status", "phase"]).unwrap_or("Active");
    vec![name(ns), Value::from(phase), age(ns, now)]
}

/// Nodes: Name, Status, Roles, Age, Version; wide addresses and system info.
pub(super) const NODES: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", "Kubelet Version reported by the node."),
        wide("Internal-IP", "string", "List of addresses reachable to the node."),
        wide("External-IP", "string", "List of addresses reachable to the node."),
        wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
        wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
        wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
    ],
    cells: node_cells,
};

/// Label prefix naming a node role: `node-role.kubernetes.io/<role>`.
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// Older label whose value names a node role.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

/// The node's roles from its labels, sorted and deduplicated.
fn node_roles(node: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix(NODE_ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == NODE_ROLE_LABEL {
                if let Some(v) = value.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    roles.into_iter().collect()
}

/// The first address of that type, or "<none>".
fn node_address(node: &Value, kind: &str) -> String {
    list_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map_or_else(
            || "<none>".to_string(),
            |a| str_at(a, &["address"]).to_string(),
        )
}

fn node_cells(node: &Value, now: i64) -> Vec<Value> {
    // Upstream keys conditions by type, so the last Ready condition wins.
    let ready = list_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if at(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let roles = node_roles(node);
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let info = |field: &str| {
        Value::from(non_empty(node, &["status", "nodeInfo", field]).unwrap_or("<unknown>"))
    };
    vec![
        name(node),
        Value::from(status.join(",")),
        Value::from(roles),
        age(node, now),
        Value::from(str_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        Value::from(node_address(node, "InternalIP")),
        Value::from(node_address(node, "ExternalIP")),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// Services: Name, Type, Cluster-IP, External-IP, Port(s), Age; wide Selector.
pub(super) const SERVICES: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
        col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
        col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        col("Port(s)", "string", "The list of ports that are exposed by this service."),
        AGE,
        wide_selector("Route service traffic to pods with label keys and values matching this selector."),
    ],
    cells: service_cells,
};

/// Load-balancer ingress points (IP, else hostname), deduplicated and sorted, comma-joined.
pub(super) fn load_balancer_ingress(status: Option<&Value>) -> String {
    let points: BTreeSet<&str> = status
        .map(|s| list_at(s, &["ingress"]))
        .unwrap_or_default()
        .iter()
        .filter_map(|i| non_empty(i, &["ip"]).or_else(|| non_empty(i, &["hostname"])))
        .collect();
    points.into_iter().collect::<Vec<_>>().join(",")
}

/// Upstream's `getServiceExternalIP` (never clipped: the server prints wide).
fn service_external_ip(svc: &Value, kind: &str) -> String {
    let external: Vec<&str> = list_at(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_ingress(at(svc, &["status", "loadBalancer"]));
            if !external.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// Upstream's `makePortString`: "80/TCP", or "80:30080/TCP" with a node port.
fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = list_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = non_empty(p, &["protocol"]).unwrap_or("TCP");
            match int_at(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    }
}

fn service_cells(svc: &Value, now: i64) -> Vec<Value> {
    // The API server defaults the type; an object without one is a ClusterIP service.
    let kind = non_empty(svc, &["spec", "type"]).unwrap_or("ClusterIP");
    let cluster_ip = match list_at(svc, &["spec", "clusterIPs"]).first() {
        Some(ip) => ip.as_str().unwrap_or("").to_string(),
        None => non_empty(svc, &["spec", "clusterIP"])
            .unwrap_or("<none>")
            .to_string(),
    };
    vec![
        name(svc),
        Value::from(kind),
        Value::from(cluster_ip),
        Value::from(service_external_ip(svc, kind)),
        Value::from(service_ports(svc)),
        age(svc, now),
        Value::from(format_labels(at(svc, &["spec", "selector"]))),
    ]
}

/// Endpoints: Name, Endpoints, Age.
pub(super) const ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets.",
        ),
        AGE,
    ],
    cells: endpoints_cells,
};

/// Most endpoints `format_endpoints` lists before summarising the rest.
const MAX_ENDPOINTS: usize = 3;

/// Appends addresses (with the port, if any) to `list` until it holds [`MAX_ENDPOINTS`];
/// returns whether some were left out.
fn push_endpoints(list: &mut Vec<String>, addrs: &[Value], port: Option<i64>) -> bool {
    for addr in addrs {
        if list.len() == MAX_ENDPOINTS {
            return true;
        }
        let ip = str_at(addr, &["ip"]);
        list.push(match port {
            Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
            Some(p) => format!("{ip}:{p}"),
            None => ip.to_string(),
        });
    }
    false
}

/// Upstream's `formatEndpoints`: up to three "ip:port" entries, then "+ N more...".
fn format_endpoints(ep: &Value) -> String {
    let subsets = list_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addrs = list_at(subset, &["addresses"]);
        let ports = list_at(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addrs.len();
            more |= push_endpoints(&mut list, addrs, None);
            continue;
        }
        for port in ports {
            count += addrs.len();
            more |= push_endpoints(&mut list, addrs, Some(int_at(port, &["port"])));
        }
    }
    let shown = list.join(",");
    if more {
        format!("{shown} + {} more...", count.saturating_sub(MAX_ENDPOINTS))
    } else {
        shown
    }
}

fn endpoints_cells(ep: &Value, now: i64) -> Vec<Value> {
    vec![name(ep), Value::from(format_endpoints(ep)), age(ep, now)]
}

/// Config maps: Name, Data, Age.
pub(super) const CONFIGMAPS: Printer = Printer {
    columns: &[
        NAME,
        col("Data", "string", "Data contains the configuration data."),
        AGE,
    ],
    cells: configmap_cells,
};

fn configmap_cells(cm: &Value, now: i64) -> Vec<Value> {
    let keys = map_len(cm, &["data"]) + map_len(cm, &["binaryData"]);
    vec![name(cm), Value::from(keys), age(cm, now)]
}

/// Secrets: Name, Type, Data, Age.
pub(super) const SECRETS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data.",
        ),
        col("Data", "string", "Data contains the secret data."),
        AGE,
    ],
    cells: secret_cells,
};

fn secret_cells(secret: &Value, now: i64) -> Vec<Value> {
    // The API server defaults the type to Opaque.
    let kind = non_empty(secret, &["type"]).unwrap_or("Opaque");
    vec![
        name(secret),
        Value::from(kind),
        Value::from(map_len(secret, &["data"])),
        age(secret, now),
    ]
}

/// Service accounts: Name, Secrets, Age.
pub(super) const SERVICE_ACCOUNTS: Printer = Printer {
    columns: &[
        NAME,
        col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
        AGE,
    ],
    cells: service_account_cells,
};

fn service_account_cells(sa: &Value, now: i64) -> Vec<Value> {
    vec![
        name(sa),
        Value::from(list_at(sa, &["secrets"]).len()),
        age(sa, now),
    ]
}

/// Resource quotas: Name, Request, Limit, Age.
pub(super) const RESOURCE_QUOTAS: Printer = Printer {
    columns: &[
        NAME,
        col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        AGE,
    ],
    cells: resource_quota_cells,
};

fn resource_quota_cells(quota: &Value, now: i64) -> Vec<Value> {
    let mut resources: Vec<&String> = at(quota, &["status", "hard"])
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for resource in resources {
        let used = quantity(at(quota, &["status", "used", resource]));
        let hard = quantity(at(quota, &["status", "hard", resource]));
        let entry = format!("{resource}: {used}/{hard}");
        let mut pieces = resource.split('.');
        let is_limit = pieces.next() == Some("limits") && pieces.next().is_some();
        if is_limit {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        name(quota),
        Value::from(requests.join(", ")),
        Value::from(limits.join(", ")),
        age(quota, now),
    ]
}

/// Pod templates: Name, Containers, Images, Pod Labels (no age, as upstream).
pub(super) const POD_TEMPLATES: Printer = Printer {
    columns: &[
        NAME,
        always_shown(CONTAINERS),
        always_shown(IMAGES),
        col("Pod Labels", "string", "The labels for the pod template."),
    ],
    cells: pod_template_cells,
};

fn pod_template_cells(pt: &Value, _now: i64) -> Vec<Value> {
    let (names, images) = layout_containers(list_at(pt, &["template", "spec", "containers"]));
    let labels = format_labels(at(pt, &["template", "metadata", "labels"]));
    vec![name(pt), names, images, Value::from(labels)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_ports_and_external_ips() {
        let svc = json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                          {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "web"}}
        });
        let row = (SERVICES.cells)(&svc, 0);
        assert_eq!(
            row[1..5],
            [
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP")
            ]
        );
        assert_eq!(row[6], json!("app=web"));

        let lb = json!({"spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"],
            "ports": [{"port": 443}]}});
        let row = (SERVICES.cells)(&lb, 0);
        assert_eq!(row[3..5], [json!("<pending>"), json!("443/TCP")]);
        assert_eq!(row[6], json!("<none>"));

        let lb_ready = json!({"spec": {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(
            (SERVICES.cells)(&lb_ready, 0)[3],
            json!("5.6.7.8,lb.example.com,1.2.3.4")
        );

        let cluster = json!({"spec": {"type": "ClusterIP", "clusterIPs": ["None"], "externalIPs": ["9.9.9.9", "8.8.8.8"]}});
        let row = (SERVICES.cells)(&cluster, 0);
        assert_eq!(
            row[2..5],
            [json!("None"), json!("9.9.9.9,8.8.8.8"), json!("<none>")]
        );

        let ext = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let row = (SERVICES.cells)(&ext, 0);
        assert_eq!(row[2..4], [json!("<none>"), json!("db.example.com")]);
    }

    #[test]
    fn node_status_and_roles() {
        let node = json!({
            "metadata": {"name": "n1", "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/": "",
                "kubernetes.io/role": "master",
                "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                               {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "Hostname", "address": "n1"}],
                "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://2.0.0"}
            }
        });
        let row = (NODES.cells)(&node, 0);
        assert_eq!(row[1], json!("Ready,SchedulingDisabled"));
        assert_eq!(row[2], json!("control-plane,master"));
        assert_eq!(row[4], json!("v1.37.0"));
        assert_eq!(
            row[5..],
            [
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("containerd://2.0.0")
            ]
        );

        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let row = (NODES.cells)(&not_ready, 0);
        assert_eq!(row[1..3], [json!("NotReady"), json!("<none>")]);
        assert_eq!(row[7], json!("<unknown>"));
        assert_eq!((NODES.cells)(&json!({}), 0)[1], json!("Unknown"));
    }

    #[test]
    fn endpoints_list_three_then_more() {
        let ep = json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
             "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}]}
        ]});
        assert_eq!(
            (ENDPOINTS.cells)(&ep, 0)[1],
            json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...")
        );
        let v6 = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
        assert_eq!((ENDPOINTS.cells)(&v6, 0)[1], json!("[fd00::1]:80"));
        assert_eq!((ENDPOINTS.cells)(&json!({}), 0)[1], json!("<none>"));
    }

    #[test]
    fn data_counts_and_quotas() {
        let cm = json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!((CONFIGMAPS.cells)(&cm, 0)[1], json!(3));
        let secret = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            (SECRETS.cells)(&secret, 0)[1..3],
            [json!("kubernetes.io/tls"), json!(2)]
        );
        let quota = json!({"status": {
            "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10"},
            "used": {"requests.cpu": "500m", "pods": "3"}}});
        let row = (RESOURCE_QUOTAS.cells)(&quota, 0);
        assert_eq!(
            row[1..3],
            [
                json!("pods: 3/10, requests.cpu: 500m/2"),
                json!("limits.memory: 0/2Gi")
            ]
        );
        assert_eq!(
            (NAMESPACES.cells)(&json!({"status": {"phase": "Terminating"}}), 0)[1],
            json!("Terminating")
        );
    }
}
