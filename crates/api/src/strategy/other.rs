//! The remaining groups — networking, discovery, storage, RBAC, scheduling, autoscaling,
//! policy, coordination, events, certificates: their upstream defaults (network policy types
//! and port protocols, endpoint slice ports, storage class policies, RBAC API groups, priority
//! class preemption, HPA replicas and metrics) and the main checks of their validation.
//! Kinds not listed get the ObjectMeta checks only.

use k8s_openapi::api::{
    autoscaling::v2::HorizontalPodAutoscaler, certificates::v1::CertificateSigningRequest,
    discovery::v1::EndpointSlice, events::v1::Event, networking::v1::IngressClass,
    networking::v1::NetworkPolicy, policy::v1::PodDisruptionBudget, rbac::v1::ClusterRoleBinding,
    rbac::v1::RoleBinding, rbac::v1::RoleRef, rbac::v1::Subject, scheduling::v1::PriorityClass,
    storage::v1::StorageClass,
};
use serde_json::{json, Value};

use super::meta::{
    child, each_obj, entry_obj, get_obj_mut, index, is_unset, is_valid_port_num, set_if_empty,
    set_if_unset, str_of, validate_label_selector, Obj, PROTOCOLS,
};
use super::{forbidden, immutable, invalid, not_supported, required, run, Errs, FieldError};

const RBAC: &str = "rbac.authorization.k8s.io";

/// Defaults of the kinds of this file (others have none).
pub(crate) fn default_other(group: &str, plural: &str, obj: &mut Obj) {
    match (group, plural) {
        ("networking.k8s.io", "networkpolicies") => {
            let Some(spec) = entry_obj(obj, "spec") else {
                return;
            };
            for direction in ["ingress", "egress"] {
                for rule in each_obj(spec, direction) {
                    for port in each_obj(rule, "ports") {
                        set_if_unset(port, "protocol", "TCP");
                    }
                }
            }
            let no_types = spec
                .get("policyTypes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if no_types {
                let egress = spec
                    .get("egress")
                    .and_then(Value::as_array)
                    .is_some_and(|e| !e.is_empty());
                let types = if egress {
                    json!(["Ingress", "Egress"])
                } else {
                    json!(["Ingress"])
                };
                spec.insert("policyTypes".to_owned(), types);
            }
        }
        ("discovery.k8s.io", "endpointslices") => {
            for port in each_obj(obj, "ports") {
                set_if_unset(port, "name", "");
                set_if_unset(port, "protocol", "TCP");
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            set_if_unset(obj, "reclaimPolicy", "Delete");
            set_if_unset(obj, "volumeBindingMode", "Immediate");
        }
        (RBAC, "rolebindings" | "clusterrolebindings") => {
            if let Some(role_ref) = get_obj_mut(obj, "roleRef") {
                set_if_empty(role_ref, "apiGroup", RBAC);
            }
            for subject in each_obj(obj, "subjects") {
                if is_unset(subject, "apiGroup") || str_of(subject, "apiGroup").is_empty() {
                    let group = match str_of(subject, "kind") {
                        "ServiceAccount" => "",
                        "User" | "Group" => RBAC,
                        _ => continue,
                    };
                    subject.insert("apiGroup".to_owned(), Value::from(group));
                }
            }
        }
        ("scheduling.k8s.io", "priorityclasses") => {
            set_if_unset(obj, "preemptionPolicy", "PreemptLowerPriority");
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            let v1 = obj.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1");
            let Some(spec) = entry_obj(obj, "spec") else {
                return;
            };
            set_if_unset(spec, "minReplicas", 1);
            if v1 {
                return;
            }
            if spec
                .get("metrics")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                spec.insert("metrics".to_owned(), json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]));
            }
            if let Some(behavior) = get_obj_mut(spec, "behavior") {
                default_scaling_rules(
                    behavior,
                    "scaleUp",
                    0,
                    json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
                );
                default_scaling_rules(
                    behavior,
                    "scaleDown",
                    300,
                    json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
                );
            }
        }
        _ => {}
    }
}

/// `GenerateHPAScale{Up,Down}Rules`: fill what the user left out.
fn default_scaling_rules(behavior: &mut Obj, which: &str, window: i64, policies: Value) {
    let Some(rules) = entry_obj(behavior, which) else {
        return;
    };
    set_if_unset(rules, "stabilizationWindowSeconds", window);
    set_if_unset(rules, "selectPolicy", "Max");
    if rules
        .get("policies")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        rules.insert("policies".to_owned(), policies);
    }
}

/// Validation of the kinds of this file; ObjectMeta (done by the caller) for the rest.
pub(crate) fn validate_other(
    group: &str,
    plural: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Errs, FieldError> {
    match (group, plural) {
        ("scheduling.k8s.io", "priorityclasses") => run(obj, old, validate_priority_class),
        ("storage.k8s.io", "storageclasses") => run(obj, old, validate_storage_class),
        (RBAC, "rolebindings") => run(obj, old, |b: &RoleBinding, o: Option<&RoleBinding>| {
            validate_binding(
                &b.role_ref,
                b.subjects.as_deref().unwrap_or(&[]),
                o.map(|o| &o.role_ref),
                true,
            )
        }),
        (RBAC, "clusterrolebindings") => run(
            obj,
            old,
            |b: &ClusterRoleBinding, o: Option<&ClusterRoleBinding>| {
                validate_binding(
                    &b.role_ref,
                    b.subjects.as_deref().unwrap_or(&[]),
                    o.map(|o| &o.role_ref),
                    false,
                )
            },
        ),
        ("policy", "poddisruptionbudgets") => run(obj, old, validate_pdb),
        ("autoscaling", "horizontalpodautoscalers")
            if obj.get("apiVersion").and_then(Value::as_str) != Some("autoscaling/v1") =>
        {
            run(obj, old, validate_hpa)
        }
        ("networking.k8s.io", "networkpolicies") => run(obj, old, validate_network_policy),
        ("networking.k8s.io", "ingressclasses") => {
            run(obj, old, |c: &IngressClass, o: Option<&IngressClass>| {
                let mut errs = Vec::new();
                let controller = c
                    .spec
                    .as_ref()
                    .and_then(|s| s.controller.clone())
                    .unwrap_or_default();
                if controller.is_empty() {
                    errs.push(required("spec.controller", ""));
                }
                if let Some(o) = o {
                    let old_controller = o
                        .spec
                        .as_ref()
                        .and_then(|s| s.controller.clone())
                        .unwrap_or_default();
                    errs.extend(immutable(&controller, &old_controller, "spec.controller"));
                }
                errs
            })
        }
        ("discovery.k8s.io", "endpointslices") => run(obj, old, validate_endpoint_slice),
        ("events.k8s.io", "events") => run(obj, old, |e: &Event, _: Option<&Event>| {
            let mut errs = Vec::new();
            if e.event_time.is_none() {
                errs.push(required("eventTime", ""));
            }
            let ty = e.type_.as_deref().unwrap_or("");
            if !matches!(ty, "Normal" | "Warning") {
                errs.push(invalid("type", "", &format!("has invalid value: {ty}")));
            }
            let controller = e.reporting_controller.as_deref().unwrap_or("");
            if controller.is_empty() {
                errs.push(required("reportingController", ""));
            }
            for msg in super::meta::is_qualified_name(controller) {
                errs.push(invalid("reportingController", controller, &msg));
            }
            for (field, v) in [
                ("reportingInstance", &e.reporting_instance),
                ("action", &e.action),
                ("reason", &e.reason),
            ] {
                if v.as_deref().unwrap_or("").is_empty() {
                    errs.push(required(field, ""));
                }
            }
            errs
        }),
        ("certificates.k8s.io", "certificatesigningrequests") => run(
            obj,
            old,
            |c: &CertificateSigningRequest, _: Option<&CertificateSigningRequest>| {
                let mut errs = Vec::new();
                if c.spec.request.0.is_empty() {
                    errs.push(required("spec.request", ""));
                }
                if c.spec.signer_name.is_empty() {
                    errs.push(required("spec.signerName", ""));
                }
                if c.spec.usages.as_ref().is_none_or(Vec::is_empty) {
                    errs.push(required("spec.usages", ""));
                }
                errs
            },
        ),
        _ => Ok(Vec::new()),
    }
}

fn validate_priority_class(pc: &PriorityClass, old: Option<&PriorityClass>) -> Errs {
    let mut errs = Vec::new();
    let name = pc.metadata.name.as_deref().unwrap_or("");
    let value = pc.value.unwrap_or(0);
    let system = matches!(
        (name, value),
        ("system-node-critical", 2_000_001_000) | ("system-cluster-critical", 2_000_000_000)
    );
    if !system {
        if name.starts_with("system-") {
            errs.push(forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved for system use only",
            ));
        }
        if value > 1_000_000_000 {
            errs.push(forbidden(
                "value",
                "maximum allowed value of a user defined priority is 1000000000",
            ));
        }
    }
    match pc.preemption_policy.as_deref() {
        None | Some("PreemptLowerPriority" | "Never") => {}
        Some(other) => errs.push(not_supported(
            "preemptionPolicy",
            other,
            &["PreemptLowerPriority", "Never"],
        )),
    }
    if let Some(old) = old {
        if pc.value != old.value {
            errs.push(forbidden("value", "may not be changed in an update."));
        }
        errs.extend(immutable(
            &pc.preemption_policy,
            &old.preemption_policy,
            "preemptionPolicy",
        ));
    }
    errs
}

fn validate_storage_class(sc: &StorageClass, old: Option<&StorageClass>) -> Errs {
    let mut errs = Vec::new();
    if sc.provisioner.is_empty() {
        errs.push(required("provisioner", ""));
    } else if sc.provisioner.len() > 253 {
        errs.push(super::too_long("provisioner", 253));
    }
    if let Some(p) = sc
        .reclaim_policy
        .as_deref()
        .filter(|p| !matches!(*p, "Delete" | "Retain"))
    {
        errs.push(not_supported("reclaimPolicy", p, &["Delete", "Retain"]));
    }
    if let Some(m) = sc
        .volume_binding_mode
        .as_deref()
        .filter(|m| !matches!(*m, "Immediate" | "WaitForFirstConsumer"))
    {
        errs.push(not_supported(
            "volumeBindingMode",
            m,
            &["Immediate", "WaitForFirstConsumer"],
        ));
    }
    if let Some(old) = old {
        if sc.parameters != old.parameters {
            errs.push(forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if sc.provisioner != old.provisioner {
            errs.push(forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        errs.extend(immutable(
            &sc.reclaim_policy,
            &old.reclaim_policy,
            "reclaimPolicy",
        ));
        errs.extend(immutable(
            &sc.volume_binding_mode,
            &old.volume_binding_mode,
            "volumeBindingMode",
        ));
    }
    errs
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding`: the role reference and subjects.
fn validate_binding(
    role_ref: &RoleRef,
    subjects: &[Subject],
    old: Option<&RoleRef>,
    namespaced: bool,
) -> Errs {
    let mut errs = Vec::new();
    let api_group = role_ref.api_group.as_deref().unwrap_or("");
    if api_group != RBAC {
        errs.push(not_supported("roleRef.apiGroup", api_group, &[RBAC]));
    }
    match role_ref.kind.as_str() {
        "ClusterRole" => {}
        "Role" if namespaced => {}
        other => {
            let valid: &[&str] = if namespaced {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            errs.push(not_supported("roleRef.kind", other, valid));
        }
    }
    if role_ref.name.is_empty() {
        errs.push(required("roleRef.name", ""));
    } else {
        for msg in super::meta::path_segment_name(&role_ref.name, false) {
            errs.push(invalid("roleRef.name", role_ref.name.as_str(), &msg));
        }
    }
    for (i, s) in subjects.iter().enumerate() {
        let p = index("subjects", i);
        if s.name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        }
        let group = s.api_group.as_deref().unwrap_or("");
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    errs.push(not_supported(child(&p, "apiGroup"), group, &[""]));
                }
                if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                    errs.push(required(child(&p, "namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC {
                    errs.push(not_supported(child(&p, "apiGroup"), group, &[RBAC]));
                }
            }
            other => errs.push(not_supported(
                child(&p, "kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    if let Some(old) = old {
        if old != role_ref {
            errs.push(super::invalid_json(
                "roleRef",
                role_ref,
                "cannot change roleRef",
            ));
        }
    }
    errs
}

fn validate_pdb(pdb: &PodDisruptionBudget, _old: Option<&PodDisruptionBudget>) -> Errs {
    let mut errs = Vec::new();
    let spec = pdb.spec.clone().unwrap_or_default();
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.push(super::invalid_json(
            "spec",
            &spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(s) = &spec.selector {
        validate_label_selector(s, "spec.selector", &mut errs);
    }
    if let Some(p) = spec
        .unhealthy_pod_eviction_policy
        .as_deref()
        .filter(|p| !matches!(*p, "IfHealthyBudget" | "AlwaysAllow"))
    {
        errs.push(not_supported(
            "spec.unhealthyPodEvictionPolicy",
            p,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    errs
}

fn validate_hpa(hpa: &HorizontalPodAutoscaler, _old: Option<&HorizontalPodAutoscaler>) -> Errs {
    let mut errs = Vec::new();
    let spec = &hpa.spec;
    let target = &spec.scale_target_ref;
    if target.kind.is_empty() {
        errs.push(required("spec.scaleTargetRef.kind", ""));
    }
    if target.name.is_empty() {
        errs.push(required("spec.scaleTargetRef.name", ""));
    }
    let min = spec.min_replicas.unwrap_or(1);
    if min < 1 {
        errs.push(invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        ));
    }
    if spec.max_replicas < 1 {
        errs.push(invalid(
            "spec.maxReplicas",
            spec.max_replicas,
            "must be greater than 0",
        ));
    }
    if spec.max_replicas < min {
        errs.push(invalid(
            "spec.maxReplicas",
            spec.max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    errs
}

fn validate_network_policy(np: &NetworkPolicy, _old: Option<&NetworkPolicy>) -> Errs {
    let mut errs = Vec::new();
    let Some(spec) = &np.spec else { return errs };
    if let Some(s) = &spec.pod_selector {
        validate_label_selector(s, "spec.podSelector", &mut errs);
    }
    let rules = [
        (
            "ingress",
            spec.ingress
                .iter()
                .flatten()
                .map(|r| r.ports.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
        ),
        (
            "egress",
            spec.egress
                .iter()
                .flatten()
                .map(|r| r.ports.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
        ),
    ];
    for (direction, all_ports) in rules {
        for (i, ports) in all_ports.iter().enumerate() {
            for (j, port) in ports.iter().enumerate() {
                let p = index(&child(&index(&format!("spec.{direction}"), i), "ports"), j);
                if let Some(proto) = port.protocol.as_deref().filter(|p| !PROTOCOLS.contains(p)) {
                    errs.push(not_supported(child(&p, "protocol"), proto, PROTOCOLS));
                }
                if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) =
                    &port.port
                {
                    for msg in is_valid_port_num(i64::from(*n)) {
                        errs.push(invalid(child(&p, "port"), *n, &msg));
                    }
                }
            }
        }
    }
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        if !matches!(t.as_str(), "Ingress" | "Egress") {
            errs.push(not_supported(
                index("spec.policyTypes", i),
                t.as_str(),
                &["Ingress", "Egress"],
            ));
        }
    }
    errs
}

fn validate_endpoint_slice(es: &EndpointSlice, old: Option<&EndpointSlice>) -> Errs {
    let mut errs = Vec::new();
    if !matches!(es.address_type.as_str(), "IPv4" | "IPv6" | "FQDN") {
        errs.push(not_supported(
            "addressType",
            es.address_type.as_str(),
            &["FQDN", "IPv4", "IPv6"],
        ));
    }
    for (i, e) in es.endpoints.iter().flatten().enumerate() {
        let p = child(&index("endpoints", i), "addresses");
        if e.addresses.is_empty() {
            errs.push(required(p.as_str(), "must contain at least 1 address"));
        }
        for (j, a) in e.addresses.iter().enumerate() {
            if matches!(es.address_type.as_str(), "IPv4" | "IPv6") {
                super::meta::validate_ip(&index(&p, j), a, &mut errs);
            }
        }
    }
    for (i, port) in es.ports.iter().flatten().enumerate() {
        if let Some(n) = port.port {
            for msg in is_valid_port_num(i64::from(n)) {
                errs.push(invalid(child(&index("ports", i), "port"), n, &msg));
            }
        }
    }
    if let Some(old) = old {
        errs.extend(immutable(
            &es.address_type,
            &old.address_type,
            "addressType",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use crate::strategy::{default_object, validate};
    use serde_json::json;

    #[test]
    fn defaults() {
        let mut np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n", "namespace": "d"},
            "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}});
        default_object("networking.k8s.io", "networkpolicies", &mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        let mut rb = json!({"metadata": {"name": "rb", "namespace": "d"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "d"}]});
        default_object("rbac.authorization.k8s.io", "rolebindings", &mut rb);
        assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(rb["subjects"][1]["apiGroup"], "");
        assert!(validate("rbac.authorization.k8s.io", "rolebindings", &rb, None).is_empty());
        let mut sc = json!({"metadata": {"name": "fast"}, "provisioner": "x.io/p"});
        default_object("storage.k8s.io", "storageclasses", &mut sc);
        assert_eq!(
            (sc["reclaimPolicy"].clone(), sc["volumeBindingMode"].clone()),
            (json!("Delete"), json!("Immediate"))
        );
        let mut hpa = json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "h", "namespace": "d"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
        default_object("autoscaling", "horizontalpodautoscalers", &mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert!(validate("autoscaling", "horizontalpodautoscalers", &hpa, None).is_empty());
    }
}
