//! Printers for networking: ingresses, ingress classes, network policies (networking.k8s.io)
//! and endpoint slices (discovery.k8s.io).

use serde_json::Value;

use super::core::load_balancer_ingress;
use super::util::{
    age, at, format_label_selector, list_at, list_with_more, name, non_empty, opt_int, opt_str,
    str_at,
};
use super::{col, Printer, AGE, NAME};

/// Ingresses: Name, Class, Hosts, Address, Ports, Age.
pub(super) const INGRESSES: Printer = Printer {
    columns: &[
        NAME,
        col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: ingress_cells,
};

/// Upstream's `formatHosts`: up to three rule hosts, "*" when none names a host.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        if let Some(host) = non_empty(rule, &["host"]).filter(|_| !more) {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let shown = hosts.join(",");
    if more {
        format!("{shown} + {} more...", rules.len().saturating_sub(MAX))
    } else {
        shown
    }
}

fn ingress_cells(ing: &Value, now: i64) -> Vec<Value> {
    let ports = if list_at(ing, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(ing),
        Value::from(opt_str(ing, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        Value::from(ingress_hosts(list_at(ing, &["spec", "rules"]))),
        Value::from(load_balancer_ingress(at(ing, &["status", "loadBalancer"]))),
        Value::from(ports),
        age(ing, now),
    ]
}

/// Ingress classes: Name, Controller, Parameters, Age.
pub(super) const INGRESS_CLASSES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    cells: ingress_class_cells,
};

fn ingress_class_cells(ic: &Value, now: i64) -> Vec<Value> {
    let parameters = match at(ic, &["spec", "parameters"]) {
        Some(p) => {
            let mut text = str_at(p, &["kind"]).to_string();
            if let Some(group) = opt_str(p, &["apiGroup"]) {
                text = format!("{text}.{group}");
            }
            format!("{text}/{}", str_at(p, &["name"]))
        }
        None => "<none>".to_string(),
    };
    vec![
        name(ic),
        Value::from(str_at(ic, &["spec", "controller"])),
        Value::from(parameters),
        age(ic, now),
    ]
}

/// Network policies: Name, Pod-Selector, Age.
pub(super) const NETWORK_POLICIES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Pod-Selector",
            "string",
            "Selects the pods to which this NetworkPolicy object applies.",
        ),
        AGE,
    ],
    cells: network_policy_cells,
};

fn network_policy_cells(np: &Value, now: i64) -> Vec<Value> {
    // podSelector is a value, not a pointer: a missing one is the empty selector.
    let empty = Value::Object(serde_json::Map::new());
    let selector = at(np, &["spec", "podSelector"]).unwrap_or(&empty);
    vec![
        name(np),
        Value::from(format_label_selector(Some(selector))),
        age(np, now),
    ]
}

/// Endpoint slices: Name, AddressType, Ports, Endpoints, Age.
pub(super) const ENDPOINT_SLICES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        col(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        col(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
        ),
        AGE,
    ],
    cells: endpoint_slice_cells,
};

fn endpoint_slice_cells(slice: &Value, now: i64) -> Vec<Value> {
    let ports: Vec<String> = list_at(slice, &["ports"])
        .iter()
        .map(|p| match (opt_int(p, &["port"]), opt_str(p, &["name"])) {
            (Some(port), _) => port.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = list_at(slice, &["endpoints"])
        .iter()
        .flat_map(|e| list_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    vec![
        name(slice),
        Value::from(str_at(slice, &["addressType"])),
        Value::from(list_with_more(&ports, 3)),
        Value::from(list_with_more(&addresses, 3)),
        age(slice, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ingress() {
        let ing = json!({
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"},
                          {"host": "c.example.com"}, {"host": "d.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}
        });
        let row = (INGRESSES.cells)(&ing, 0);
        assert_eq!(
            row[1..5],
            [
                json!("nginx"),
                json!("a.example.com,b.example.com,c.example.com + 2 more..."),
                json!("10.0.0.9"),
                json!("80, 443")
            ]
        );
        let bare = (INGRESSES.cells)(&json!({"spec": {"rules": [{}]}}), 0);
        assert_eq!(
            bare[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
    }

    #[test]
    fn classes_policies_slices() {
        let ic = json!({"spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
        assert_eq!(
            (INGRESS_CLASSES.cells)(&ic, 0)[2],
            json!("IngressParameters.k8s.example.com/p")
        );
        let np = json!({"spec": {"podSelector": {}}});
        assert_eq!((NETWORK_POLICIES.cells)(&np, 0)[1], json!("<none>"));
        let np = json!({"spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
        assert_eq!((NETWORK_POLICIES.cells)(&np, 0)[1], json!("role=db"));
        let slice = json!({"addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                          {"addresses": ["10.0.0.4"]}]});
        assert_eq!(
            (ENDPOINT_SLICES.cells)(&slice, 0)[1..4],
            [
                json!("IPv4"),
                json!("80,metrics"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")
            ]
        );
        assert_eq!(
            (ENDPOINT_SLICES.cells)(&json!({}), 0)[2..4],
            [json!("<unset>"), json!("<unset>")]
        );
    }
}
