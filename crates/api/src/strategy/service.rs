//! Services: `SetDefaults_Service` (session affinity, type, ports' protocol and
//! target port, traffic policies) with the strategy's `clusterIP`/`clusterIPs` syncing, and
//! `ValidateService(Update)` — ports, cluster IPs (immutable once set), node ports, affinity,
//! traffic policies. Allocation of cluster IPs, node ports and IP families is the server's.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use serde_json::{json, Value};

use super::meta::{
    child, each_obj, entry_obj, index, is_qualified_name, is_unset, is_valid_port_num,
    set_if_empty, set_if_unset, str_of, validate_ip, validate_labels, validate_protocol, Obj,
};
use super::probes::validate_port_num_or_name;
use super::{duplicate, forbidden, invalid, invalid_json, not_supported, required, Errs};
use crate::validation::{is_dns1123_label, is_dns1123_subdomain};

/// Node ports the default service node port range allows.
const NODE_PORTS: std::ops::RangeInclusive<i32> = 30000..=32767;

fn externally_accessible(spec: &Obj) -> bool {
    match str_of(spec, "type") {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty()),
        _ => false,
    }
}

/// `SetDefaults_Service`, the strategy's `clusterIP`/`clusterIPs` syncing, and the always
/// present `status.loadBalancer`.
pub(crate) fn default_service(svc: &mut Obj) {
    let mut load_balancer = false;
    if let Some(spec) = entry_obj(svc, "spec") {
        set_if_empty(spec, "sessionAffinity", "None");
        match str_of(spec, "sessionAffinity") {
            "None" => {
                spec.remove("sessionAffinityConfig");
            }
            "ClientIP" => {
                let has_timeout =
                    super::meta::at(spec, "sessionAffinityConfig/clientIP/timeoutSeconds")
                        .is_some_and(|t| !t.is_null());
                if !has_timeout {
                    spec.insert(
                        "sessionAffinityConfig".to_owned(),
                        json!({"clientIP": {"timeoutSeconds": 10800}}),
                    );
                }
            }
            _ => {}
        }
        set_if_empty(spec, "type", "ClusterIP");
        for port in each_obj(spec, "ports") {
            set_if_empty(port, "protocol", "TCP");
            let target_unset = match port.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            };
            if target_unset {
                let p = port.get("port").cloned().unwrap_or(Value::Null);
                port.insert("targetPort".to_owned(), p);
            }
        }
        if externally_accessible(spec) {
            set_if_empty(spec, "externalTrafficPolicy", "Cluster");
        }
        let ty = str_of(spec, "type").to_owned();
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
            set_if_unset(spec, "internalTrafficPolicy", "Cluster");
        }
        if ty == "LoadBalancer" {
            set_if_unset(spec, "allocateLoadBalancerNodePorts", true);
            load_balancer = true;
        }
        let ip = str_of(spec, "clusterIP").to_owned();
        let ips_empty = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !ip.is_empty() && ips_empty {
            spec.insert("clusterIPs".to_owned(), json!([ip]));
        } else if ip.is_empty() && !ips_empty {
            let first = super::meta::at(spec, "clusterIPs/0")
                .cloned()
                .unwrap_or(Value::Null);
            spec.insert("clusterIP".to_owned(), first);
        }
    }
    if let Some(lb) = entry_obj(svc, "status").and_then(|s| entry_obj(s, "loadBalancer")) {
        if load_balancer {
            for ingress in each_obj(lb, "ingress") {
                if !str_of(ingress, "ip").is_empty() && is_unset(ingress, "ipMode") {
                    ingress.insert("ipMode".to_owned(), Value::from("VIP"));
                }
            }
        }
    }
}

/// The spec as upstream's strategy hands it to validation: `clusterIP` and `clusterIPs` in
/// step, and on an update the allocated values kept when the new object leaves them out.
fn normalized_spec(spec: &ServiceSpec, old: Option<&ServiceSpec>) -> ServiceSpec {
    let mut spec = spec.clone();
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let ips = spec.cluster_ips.clone().unwrap_or_default();
    if let Some(old) = old {
        let external = |s: &ServiceSpec| s.type_.as_deref() == Some("ExternalName");
        if ip.is_empty() && ips.is_empty() && !external(&spec) && !external(old) {
            spec.cluster_ip.clone_from(&old.cluster_ip);
            spec.cluster_ips.clone_from(&old.cluster_ips);
        }
    }
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let ips = spec.cluster_ips.clone().unwrap_or_default();
    if !ip.is_empty() && ips.is_empty() {
        spec.cluster_ips = Some(vec![ip]);
    } else if ip.is_empty() && !ips.is_empty() {
        spec.cluster_ip = Some(ips[0].clone());
    }
    spec
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ips.as_deref() == Some(&["None".to_owned()])
}

/// `ValidateService` and, with `old`, `ValidateServiceUpdate`.
pub(crate) fn validate_service(svc: &Service, old: Option<&Service>) -> Errs {
    let mut errs = Vec::new();
    let empty = ServiceSpec::default();
    let old_spec = old.map(|o| normalized_spec(o.spec.as_ref().unwrap_or(&empty), None));
    let spec = normalized_spec(svc.spec.as_ref().unwrap_or(&empty), old_spec.as_ref());
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let hints = annotations.get("service.kubernetes.io/topology-aware-hints");
    if let (Some(mode), Some(hints)) = (
        annotations.get("service.kubernetes.io/topology-mode"),
        hints,
    ) {
        if mode != hints {
            errs.push(invalid("metadata.annotations[service.kubernetes.io/topology-mode]", mode.as_str(), "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified"));
        }
    }
    if let Some(old) = &old_spec {
        validate_update(&spec, old, &mut errs);
    }
    let ty = spec.type_.as_deref().unwrap_or("");
    let headless = is_headless(&spec);
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(required("spec.ports", ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => {
            errs.push(invalid(
                "spec.clusterIPs[0]",
                "None",
                &format!("may not be set to 'None' for {ty} services"),
            ));
        }
        "ExternalName" => {
            if spec.cluster_ips.as_ref().is_some_and(|c| !c.is_empty()) {
                errs.push(forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                errs.push(forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let name = spec.external_name.as_deref().unwrap_or("");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(required("spec.externalName", ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    errs.push(invalid("spec.externalName", cname, &msg));
                }
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = port.name.as_deref().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        } else if !name.is_empty() {
            for msg in is_dns1123_label(name) {
                errs.push(invalid(child(&p, "name"), name, &msg));
            }
            if !names.insert(name) {
                errs.push(duplicate(child(&p, "name"), name));
            }
        }
        for msg in is_valid_port_num(i64::from(port.port)) {
            errs.push(invalid(child(&p, "port"), port.port, &msg));
        }
        validate_protocol(port.protocol.as_deref(), child(&p, "protocol"), &mut errs);
        let target = port.target_port.clone().unwrap_or_default();
        validate_port_num_or_name(&target, &child(&p, "targetPort"), &mut errs);
        if let Some(ap) = &port.app_protocol {
            for msg in is_qualified_name(ap) {
                errs.push(invalid(child(&p, "appProtocol"), ap.as_str(), &msg));
            }
        }
    }
    if let Some(sel) = &spec.selector {
        validate_labels(sel, "spec.selector", &mut errs);
    }
    validate_affinity(&spec, &mut errs);
    if ty != "ExternalName" {
        validate_cluster_ips(&spec, &mut errs);
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        validate_ip(&index("spec.externalIPs", i), ip, &mut errs);
    }
    match ty {
        "" => errs.push(required("spec.type", "")),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        other => errs.push(not_supported(
            "spec.type",
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    let mut node_ports = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let node_port = port.node_port.unwrap_or(0);
        let protocol = port.protocol.clone().unwrap_or_default();
        if ty == "ClusterIP" && node_port != 0 {
            errs.push(forbidden(
                child(&p, "nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        if node_port != 0 {
            if !node_ports.insert((protocol.clone(), node_port)) {
                errs.push(duplicate(child(&p, "nodePort"), node_port));
            }
            let old_ports = old_spec
                .as_ref()
                .and_then(|o| o.ports.clone())
                .unwrap_or_default();
            let unchanged = old_ports.iter().any(|o| o.node_port == Some(node_port));
            if !NODE_PORTS.contains(&node_port) && !unchanged && ty != "ClusterIP" {
                errs.push(invalid(child(&p, "nodePort"), node_port, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
            }
        }
        if !seen.insert((protocol.clone(), port.port)) {
            let k = json!({"name": "", "protocol": protocol, "port": port.port, "targetPort": 0, "nodePort": 0});
            errs.push(duplicate(p, k));
        }
    }
    let ranges = spec.load_balancer_source_ranges.as_deref().unwrap_or(&[]);
    if !ranges.is_empty() {
        let fp = "spec.LoadBalancerSourceRanges";
        if ty != "LoadBalancer" {
            errs.push(forbidden(
                fp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.trim();
            let ok = r.split_once('/').is_some_and(|(ip, bits)| {
                let max = if ip.contains(':') { 128 } else { 32 };
                ip.parse::<IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
            });
            if !ok {
                errs.push(invalid(
                    index(fp, i),
                    r,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ));
            }
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && ty != "LoadBalancer" {
        errs.push(forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        errs.push(required("allocateLoadBalancerNodePorts", ""));
    }
    if let Some(class) = &spec.load_balancer_class {
        if ty == "LoadBalancer" {
            for msg in is_qualified_name(class) {
                errs.push(invalid("spec.loadBalancerClass", class.as_str(), &msg));
            }
        } else {
            errs.push(forbidden(
                "spec.loadBalancerClass",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
    validate_traffic(&spec, &mut errs);
    errs
}

fn validate_affinity(spec: &ServiceSpec, errs: &mut Errs) {
    match spec.session_affinity.as_deref().unwrap_or("") {
        "" => errs.push(required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let detail = "when session affinity type is ClientIP";
            let cfg = "spec.sessionAffinityConfig";
            match spec
                .session_affinity_config
                .as_ref()
                .map(|c| c.client_ip.as_ref())
            {
                None => errs.push(required(cfg, detail)),
                Some(None) => errs.push(required(format!("{cfg}.clientIP"), detail)),
                Some(Some(c)) => match c.timeout_seconds {
                    None => errs.push(required(format!("{cfg}.clientIP.timeoutSeconds"), detail)),
                    Some(t) if t <= 0 || t > 86400 => errs.push(invalid(
                        format!("{cfg}.clientIP.timeoutSeconds"),
                        t,
                        "must be greater than 0 and less than 86400",
                    )),
                    Some(_) => {}
                },
            }
        }
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips(spec: &ServiceSpec, errs: &mut Errs) {
    let ip = spec.cluster_ip.as_deref().unwrap_or("");
    let ips = spec.cluster_ips.clone().unwrap_or_default();
    if !ip.is_empty() {
        if ips.is_empty() {
            errs.push(required("spec.clusterIPs", ""));
        } else if ips[0] != ip {
            errs.push(invalid_json(
                "spec.clusterIPs",
                &ips,
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(invalid_json(
            "spec.clusterIPs",
            &ips,
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        if !matches!(family.as_str(), "IPv4" | "IPv6") {
            errs.push(not_supported(
                index("spec.ipFamilies", i),
                family.as_str(),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(family.as_str()) {
            errs.push(duplicate(index("spec.ipFamilies", i), family.as_str()));
        }
    }
    if let Some(policy) = spec.ip_family_policy.as_deref() {
        let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !supported.contains(&policy) {
            errs.push(not_supported("spec.ipFamilyPolicy", policy, &supported));
        }
    }
    let before = errs.len();
    for (i, c) in ips.iter().enumerate() {
        if i == 0 && c == "None" {
            if ips.len() > 1 {
                errs.push(invalid_json(
                    "spec.clusterIPs",
                    &ips,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        validate_ip(&index("spec.clusterIPs", i), c, errs);
    }
    if ips.len() > 2 {
        errs.push(invalid_json(
            "spec.clusterIPs",
            &ips,
            "may only hold up to 2 values",
        ));
    }
    if errs.len() > before {
        return;
    }
    if ips.len() == 2 {
        let v6 = |s: &str| s.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6());
        if v6(&ips[0]) == v6(&ips[1]) {
            errs.push(invalid_json(
                "spec.clusterIPs",
                &ips,
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        for (i, (c, family)) in ips
            .iter()
            .zip(spec.ip_families.iter().flatten())
            .enumerate()
        {
            let v6 = c.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6());
            if family == "IPv4" && v6 {
                errs.push(invalid(
                    index("spec.clusterIPs", i),
                    c.as_str(),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == "IPv6" && !v6 {
                errs.push(invalid(
                    index("spec.clusterIPs", i),
                    c.as_str(),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

fn validate_traffic(spec: &ServiceSpec, errs: &mut Errs) {
    let ty = spec.type_.as_deref().unwrap_or("");
    let external = matches!(ty, "LoadBalancer" | "NodePort")
        || (ty == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()));
    let etp = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !external {
        if !etp.is_empty() {
            errs.push(invalid(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(required("spec.externalTrafficPolicy", ""));
    } else if !matches!(etp, "Cluster" | "Local") {
        errs.push(not_supported(
            "spec.externalTrafficPolicy",
            etp,
            &["Cluster", "Local"],
        ));
    }
    let needs_health_check = ty == "LoadBalancer" && etp == "Local";
    let hc = spec.health_check_node_port.unwrap_or(0);
    if !needs_health_check && hc != 0 {
        errs.push(invalid(
            "spec.healthCheckNodePort",
            hc,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if needs_health_check && hc != 0 {
        for msg in is_valid_port_num(i64::from(hc)) {
            errs.push(invalid("spec.healthCheckNodePort", hc, &msg));
        }
    }
    match spec.internal_traffic_policy.as_deref() {
        None if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(required("spec.internalTrafficPolicy", ""))
        }
        None | Some("Cluster" | "Local") => {}
        Some(other) => errs.push(not_supported(
            "spec.internalTrafficPolicy",
            other,
            &["Cluster", "Local"],
        )),
    }
    if let Some(td) = spec.traffic_distribution.as_deref() {
        let supported = ["PreferClose", "PreferSameNode", "PreferSameZone"];
        if !supported.contains(&td) {
            errs.push(not_supported("spec.trafficDistribution", td, &supported));
        }
    }
}

/// `ValidateServiceUpdate`'s own rules: cluster IPs and families stay once set (bar dual-stack
/// upgrades and downgrades), as do the load balancer class and health check node port.
fn validate_update(spec: &ServiceSpec, old: &ServiceSpec, errs: &mut Errs) {
    let external = |s: &ServiceSpec| s.type_.as_deref() == Some("ExternalName");
    if external(spec) || external(old) {
        return;
    }
    let new_ips = spec.cluster_ips.clone().unwrap_or_default();
    let old_ips = old.cluster_ips.clone().unwrap_or_default();
    if !(is_headless(spec) && is_headless(old)) {
        let changed = "may not change once set";
        if new_ips.len() == old_ips.len() {
            for (i, ip) in old_ips.iter().enumerate() {
                if ip != &new_ips[i] {
                    errs.push(invalid_json(index("spec.clusterIPs", i), &new_ips, changed));
                }
            }
        } else if old_ips.len() > new_ips.len() {
            if new_ips.is_empty() {
                errs.push(invalid_json(
                    "spec.clusterIPs[0]",
                    &new_ips,
                    "primary clusterIP can not be unset",
                ));
            } else if new_ips[0] != old_ips[0] {
                errs.push(invalid_json("spec.clusterIPs[0]", &new_ips, changed));
            }
            if new_ips.len() == 1 && spec.ip_family_policy.as_deref() != Some("SingleStack") {
                errs.push(invalid_json(
                    "spec.ipFamilyPolicy",
                    &spec.ip_family_policy,
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                ));
            }
        } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(invalid_json("spec.clusterIPs[0]", &new_ips, changed));
        }
    }
    let lb = |s: &ServiceSpec| s.type_.as_deref() == Some("LoadBalancer");
    if lb(spec) && lb(old) && spec.load_balancer_class != old.load_balancer_class {
        errs.push(invalid_json(
            "spec.loadBalancerClass",
            &spec.load_balancer_class,
            "may not change once set",
        ));
    }
    let needs = |s: &ServiceSpec| lb(s) && s.external_traffic_policy.as_deref() == Some("Local");
    if needs(spec) && needs(old) && spec.health_check_node_port != old.health_check_node_port {
        errs.push(forbidden("spec.healthCheckNodePort", "field is immutable"));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::strategy::{default_object, validate, FieldError};

    fn service(ports: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"app": "web"}, "ports": ports}})
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn defaults() {
        let mut s = service(json!([{"port": 80}]));
        default_object("", "services", &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(s["status"], json!({"loadBalancer": {}}));
        assert!(validate("", "services", &s, None).is_empty());
        let mut np = service(json!([{"port": 80, "nodePort": 80}]));
        np["spec"]["type"] = json!("NodePort");
        default_object("", "services", &mut np);
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(messages(&validate("", "services", &np, None)), [
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        ]);
    }

    #[test]
    fn ports_and_ips() {
        let mut s = service(json!([{"port": 80}, {"port": 443}]));
        default_object("", "services", &mut s);
        assert_eq!(
            messages(&validate("", "services", &s, None)),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value",
            ]
        );
        let mut headless = service(json!([]));
        headless["spec"]["clusterIP"] = json!("None");
        default_object("", "services", &mut headless);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert!(validate("", "services", &headless, None).is_empty());
        let mut bad = service(json!([{"port": 80, "protocol": "HTTP"}]));
        bad["spec"]["clusterIP"] = json!("10.0.0.300");
        default_object("", "services", &mut bad);
        assert_eq!(messages(&validate("", "services", &bad, None)), [
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ]);
    }

    #[test]
    fn cluster_ip_is_immutable() {
        let mut old = service(json!([{"port": 80}]));
        old["spec"]["clusterIP"] = json!("10.96.0.10");
        default_object("", "services", &mut old);
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        new["spec"]["clusterIPs"] = json!(["10.96.0.11"]);
        assert_eq!(
            messages(&validate("", "services", &new, Some(&old))),
            ["spec.clusterIPs[0]: Invalid value: [\"10.96.0.11\"]: may not change once set"]
        );
        let mut omitted = old.clone();
        omitted["spec"].as_object_mut().unwrap().remove("clusterIP");
        omitted["spec"]
            .as_object_mut()
            .unwrap()
            .remove("clusterIPs");
        assert!(validate("", "services", &omitted, Some(&old)).is_empty());
    }
}
