//! The body of `ValidatePodSpec`, shared by pods and every pod template: volumes and
//! containers (through their modules), restart and DNS policy, security context, affinity,
//! DNS config, topology spread, tolerations, host aliases and the named references.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Affinity, PodSpec, Toleration};

use super::containers::{validate_containers, validate_init_containers};
use super::meta::{
    child, index, is_qualified_name, is_valid_label_value, name_is_dns_subdomain, validate_ip,
    validate_label_name, validate_label_selector, validate_labels,
};
use super::probes::{validate_id, validate_seccomp};
use super::{duplicate, forbidden, invalid, invalid_json, not_supported, required, Errs};
use crate::validation::is_dns1123_label;

/// `ValidatePodSpec`.
pub(crate) fn validate_pod_spec(
    spec: &PodSpec,
    pod_name: Option<&str>,
    path: &str,
    is_pod: bool,
    errs: &mut Errs,
) {
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(required(child(path, "terminationGracePeriodSeconds"), ""));
    }
    let grace = spec.termination_grace_period_seconds;
    let vols = super::volumes::validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        pod_name,
        &child(path, "volumes"),
        errs,
    );
    let mut claims = BTreeSet::new();
    for (i, claim) in spec.resource_claims.iter().flatten().enumerate() {
        let p = index(&child(path, "resourceClaims"), i);
        if claim.name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        } else if claims.contains(&claim.name) {
            errs.push(duplicate(child(&p, "name"), claim.name.as_str()));
        } else {
            for msg in is_dns1123_label(&claim.name) {
                errs.push(invalid(child(&p, "name"), claim.name.as_str(), &msg));
            }
            claims.insert(claim.name.clone());
        }
        match (&claim.resource_claim_name, &claim.resource_claim_template_name) {
            (Some(_), Some(_)) => errs.push(invalid_json(p.as_str(), claim, "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified")),
            (None, None) => errs.push(invalid_json(p.as_str(), claim, "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`")),
            _ => {}
        }
    }
    validate_containers(
        &spec.containers,
        &vols,
        &claims,
        grace,
        &child(path, "containers"),
        errs,
    );
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    validate_init_containers(
        init,
        &spec.containers,
        &vols,
        &claims,
        grace,
        &child(path, "initContainers"),
        errs,
    );
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let hp = port.host_port.unwrap_or(0);
                if (is_pod || hp != 0) && hp != port.container_port {
                    let p = format!("{path}.containers[{i}].ports[{j}].hostPort");
                    errs.push(invalid(
                        p,
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    match spec.restart_policy.as_deref().unwrap_or("") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(required(child(path, "restartPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policy = spec.dns_policy.as_deref().unwrap_or("");
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(required(child(path, "dnsPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    if let Some(ns) = &spec.node_selector {
        validate_labels(ns, &child(path, "nodeSelector"), errs);
    }
    validate_pod_security(spec, path, errs);
    if let Some(a) = &spec.affinity {
        validate_affinity(a, &child(path, "affinity"), errs);
    }
    validate_dns_config(spec, dns_policy, &child(path, "dnsConfig"), errs);
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        let p = child(&index(&child(path, "readinessGates"), i), "conditionType");
        for msg in is_qualified_name(&g.condition_type) {
            errs.push(invalid(p.as_str(), g.condition_type.as_str(), &msg));
        }
    }
    let mut gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = index(&child(path, "schedulingGates"), i);
        for msg in is_qualified_name(&g.name) {
            errs.push(invalid(p.as_str(), g.name.as_str(), &msg));
        }
        if !gates.insert(g.name.as_str()) {
            errs.push(duplicate(p, g.name.as_str()));
        }
    }
    validate_topology_spread(spec, &child(path, "topologySpreadConstraints"), errs);
    let named = [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
        ("priorityClassName", &spec.priority_class_name),
    ];
    for (field, value) in named {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for msg in name_is_dns_subdomain(v, false) {
                errs.push(invalid(child(path, field), v, &msg));
            }
        }
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(invalid(
                child(path, "activeDeadlineSeconds"),
                ads,
                &super::meta::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for msg in is_dns1123_label(v) {
                errs.push(invalid(child(path, field), v, &msg));
            }
        }
    }
    validate_tolerations(
        spec.tolerations.as_deref().unwrap_or(&[]),
        &child(path, "tolerations"),
        errs,
    );
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let p = index(&child(path, "hostAliases"), i);
        validate_ip(&child(&p, "ip"), &alias.ip, errs);
        for (j, h) in alias.hostnames.iter().flatten().enumerate() {
            for msg in crate::validation::is_dns1123_subdomain(h) {
                errs.push(invalid(index(&child(&p, "hostnames"), j), h.as_str(), &msg));
            }
        }
    }
    if let Some(rc) = &spec.runtime_class_name {
        for msg in name_is_dns_subdomain(rc, false) {
            errs.push(invalid(child(path, "runtimeClassName"), rc.as_str(), &msg));
        }
    }
    match spec.preemption_policy.as_deref() {
        None | Some("PreemptLowerPriority" | "Never") => {}
        Some("") => errs.push(required(child(path, "preemptionPolicy"), "")),
        Some(other) => errs.push(not_supported(
            child(path, "preemptionPolicy"),
            other,
            &["PreemptLowerPriority", "Never"],
        )),
    }
    if let Some(overhead) = &spec.overhead {
        let res = k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(overhead.clone()),
            ..Default::default()
        };
        super::resources::validate_resources(&res, None, &child(path, "overhead"), errs);
    }
    if let Some(os) = &spec.os {
        match os.name.as_str() {
            "" => errs.push(required(
                child(&child(path, "os"), "name"),
                "cannot be empty",
            )),
            "linux" | "windows" => {}
            other => errs.push(not_supported(
                child(path, "os"),
                other,
                &["linux", "windows"],
            )),
        }
    }
}

fn validate_pod_security(spec: &PodSpec, path: &str, errs: &mut Errs) {
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(invalid(
            child(&child(path, "securityContext"), "shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    let Some(sc) = &spec.security_context else {
        return;
    };
    let p = child(path, "securityContext");
    for (field, v) in [
        ("fsGroup", sc.fs_group),
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
    ] {
        if let Some(v) = v {
            validate_id(v, &child(&p, field), errs);
        }
    }
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        validate_id(*g, &index(&child(&p, "supplementalGroups"), i), errs);
    }
    let mut sysctls = BTreeSet::new();
    for (i, s) in sc.sysctls.iter().flatten().enumerate() {
        let np = child(&index(&child(&p, "sysctls"), i), "name");
        let valid = s.name.len() <= 253
            && s.name.split(['.', '/']).all(|seg| {
                let b = seg.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_')
                    })
            });
        if s.name.is_empty() {
            errs.push(required(np, ""));
        } else if !valid {
            errs.push(invalid(np, s.name.as_str(), "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"));
        } else if !sysctls.insert(s.name.as_str()) {
            errs.push(duplicate(np, s.name.as_str()));
        }
    }
    let enums: [(&str, &Option<String>, &[&str]); 3] = [
        (
            "fsGroupChangePolicy",
            &sc.fs_group_change_policy,
            &["Always", "OnRootMismatch"],
        ),
        (
            "supplementalGroupsPolicy",
            &sc.supplemental_groups_policy,
            &["Merge", "Strict"],
        ),
        (
            "seLinuxChangePolicy",
            &sc.se_linux_change_policy,
            &["MountOption", "Recursive"],
        ),
    ];
    for (field, value, supported) in enums {
        if let Some(v) = value.as_deref().filter(|v| !supported.contains(v)) {
            errs.push(not_supported(child(&p, field), v, supported));
        }
    }
    if let Some(sp) = &sc.seccomp_profile {
        validate_seccomp(sp, &child(&p, "seccompProfile"), errs);
    }
}

/// `ValidateNodeSelectorRequirement`.
fn validate_node_requirement(
    r: &k8s_openapi::api::core::v1::NodeSelectorRequirement,
    path: &str,
    check_values: bool,
    errs: &mut Errs,
) {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => errs.push(required(
            child(path, "values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(forbidden(
            child(path, "values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "Gt" | "Lt" if values.len() != 1 => errs.push(required(
            child(path, "values"),
            "must be specified single value when `operator` is 'Lt' or 'Gt'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        op => errs.push(invalid(
            child(path, "operator"),
            op,
            "not a valid selector operator",
        )),
    }
    validate_label_name(&r.key, &child(path, "key"), errs);
    if check_values {
        for (i, v) in values.iter().enumerate() {
            for msg in is_valid_label_value(v) {
                errs.push(invalid(index(&child(path, "values"), i), v.as_str(), &msg));
            }
        }
    }
}

fn validate_affinity(a: &Affinity, path: &str, errs: &mut Errs) {
    if let Some(na) = &a.node_affinity {
        let np = child(path, "nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let tp = child(
                &child(&np, "requiredDuringSchedulingIgnoredDuringExecution"),
                "nodeSelectorTerms",
            );
            if req.node_selector_terms.is_empty() {
                errs.push(required(
                    tp.as_str(),
                    "must have at least one node selector term",
                ));
            }
            for (i, term) in req.node_selector_terms.iter().enumerate() {
                for (j, r) in term.match_expressions.iter().flatten().enumerate() {
                    validate_node_requirement(
                        r,
                        &index(&child(&index(&tp, i), "matchExpressions"), j),
                        true,
                        errs,
                    );
                }
            }
        }
        for (i, t) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let p = index(
                &child(&np, "preferredDuringSchedulingIgnoredDuringExecution"),
                i,
            );
            if !(1..=100).contains(&t.weight) {
                errs.push(invalid(
                    child(&p, "weight"),
                    t.weight,
                    "must be in the range 1-100",
                ));
            }
            for (j, r) in t.preference.match_expressions.iter().flatten().enumerate() {
                validate_node_requirement(
                    r,
                    &index(&child(&child(&p, "preference"), "matchExpressions"), j),
                    false,
                    errs,
                );
            }
        }
    }
    let pod_affinities = [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ];
    for (field, terms) in pod_affinities {
        let Some((req, pref)) = terms else { continue };
        let p = child(path, field);
        for (i, t) in req.iter().flatten().enumerate() {
            validate_pod_affinity_term(
                t,
                &index(
                    &child(&p, "requiredDuringSchedulingIgnoredDuringExecution"),
                    i,
                ),
                errs,
            );
        }
        for (i, w) in pref.iter().flatten().enumerate() {
            let wp = index(
                &child(&p, "preferredDuringSchedulingIgnoredDuringExecution"),
                i,
            );
            if !(1..=100).contains(&w.weight) {
                errs.push(invalid(
                    child(&wp, "weight"),
                    w.weight,
                    "must be in the range 1-100",
                ));
            }
            validate_pod_affinity_term(&w.pod_affinity_term, &child(&wp, "podAffinityTerm"), errs);
        }
    }
}

fn validate_pod_affinity_term(
    t: &k8s_openapi::api::core::v1::PodAffinityTerm,
    path: &str,
    errs: &mut Errs,
) {
    if let Some(s) = &t.label_selector {
        validate_label_selector(s, &child(path, "labelSelector"), errs);
    }
    if let Some(s) = &t.namespace_selector {
        validate_label_selector(s, &child(path, "namespaceSelector"), errs);
    }
    for ns in t.namespaces.iter().flatten() {
        for msg in is_dns1123_label(ns) {
            errs.push(invalid(child(path, "namespace"), ns.as_str(), &msg));
        }
    }
    if t.topology_key.is_empty() {
        errs.push(required(child(path, "topologyKey"), "can not be empty"));
    }
    validate_label_name(&t.topology_key, &child(path, "topologyKey"), errs);
}

fn validate_dns_config(spec: &PodSpec, policy: &str, path: &str, errs: &mut Errs) {
    let cfg = spec.dns_config.as_ref();
    let nameservers = cfg.and_then(|c| c.nameservers.as_deref()).unwrap_or(&[]);
    if policy == "None" {
        if cfg.is_none() {
            errs.push(required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return;
        }
        if nameservers.is_empty() {
            errs.push(required(
                child(path, "nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return;
        }
    }
    let Some(cfg) = cfg else { return };
    if nameservers.len() > 3 {
        errs.push(invalid_json(
            child(path, "nameservers"),
            &nameservers,
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        validate_ip(&index(&child(path, "nameservers"), i), ns, errs);
    }
    let searches = cfg.searches.as_deref().unwrap_or(&[]);
    if searches.len() > 32 {
        errs.push(invalid_json(
            child(path, "searches"),
            &searches,
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(invalid_json(
            child(path, "searches"),
            &searches,
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        if s == "." {
            continue;
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        let relaxed = s.replace('_', "a");
        for msg in crate::validation::is_dns1123_subdomain(&relaxed) {
            errs.push(invalid(index(&child(path, "searches"), i), s, &msg));
        }
    }
    for (i, o) in cfg.options.iter().flatten().enumerate() {
        if o.name.as_deref().unwrap_or("").is_empty() {
            errs.push(required(
                index(&child(path, "options"), i),
                "must not be empty",
            ));
        }
    }
}

fn validate_topology_spread(spec: &PodSpec, path: &str, errs: &mut Errs) {
    let constraints = spec.topology_spread_constraints.as_deref().unwrap_or(&[]);
    for (i, c) in constraints.iter().enumerate() {
        let p = index(path, i);
        if c.max_skew <= 0 {
            errs.push(invalid(
                child(&p, "maxSkew"),
                c.max_skew,
                "must be greater than zero",
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(required(child(&p, "topologyKey"), "can not be empty"));
        }
        let when = c.when_unsatisfiable.as_str();
        if !matches!(when, "DoNotSchedule" | "ScheduleAnyway") {
            errs.push(not_supported(
                child(&p, "whenUnsatisfiable"),
                when,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if constraints[i + 1..].iter().any(|o| {
            o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
        }) {
            errs.push(duplicate(
                child(&p, "{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {}}}", c.topology_key, when),
            ));
        }
        if let Some(min) = c.min_domains {
            if min <= 0 {
                errs.push(invalid(
                    child(&p, "minDomains"),
                    min,
                    "must be greater than zero",
                ));
            }
            if when != "DoNotSchedule" {
                errs.push(invalid(
                    child(&p, "minDomains"),
                    min,
                    &format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {when}"
                    ),
                ));
            }
        }
        if let Some(s) = &c.label_selector {
            validate_label_selector(s, &child(&p, "labelSelector"), errs);
        }
    }
}

/// `ValidateTolerations`.
fn validate_tolerations(tolerations: &[Toleration], path: &str, errs: &mut Errs) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let k = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        if !k.is_empty() {
            validate_label_name(k, &child(&p, "key"), errs);
        }
        if k.is_empty() && op != "Exists" {
            errs.push(invalid(child(&p, "operator"), op, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid(child(&p, "operator"), value, &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid(
                        child(&p, "operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(not_supported(
                child(&p, "effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(spec: serde_json::Value) -> Vec<String> {
        let spec: PodSpec = serde_json::from_value(spec).unwrap();
        let mut errs = Vec::new();
        validate_pod_spec(&spec, Some("p"), "spec", true, &mut errs);
        errs.iter().map(super::super::FieldError::message).collect()
    }

    fn base() -> serde_json::Value {
        json!({"containers": [{"name": "a", "image": "a", "imagePullPolicy": "Always",
                               "terminationMessagePolicy": "File"}],
               "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
               "terminationGracePeriodSeconds": 30})
    }

    #[test]
    fn valid_spec() {
        assert!(errors(base()).is_empty());
    }

    #[test]
    fn policies_and_references() {
        let mut s = base();
        s["dnsPolicy"] = json!("None");
        s["nodeName"] = json!("Node_1");
        s["tolerations"] = json!([{"operator": "Equal", "value": "x"}]);
        assert_eq!(errors(s), [
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            "spec.nodeName: Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ]);
        let mut missing = base();
        missing
            .as_object_mut()
            .unwrap()
            .remove("terminationGracePeriodSeconds");
        missing["restartPolicy"] = json!("");
        assert_eq!(
            errors(missing),
            [
                "spec.terminationGracePeriodSeconds: Required value",
                "spec.restartPolicy: Required value",
            ]
        );
    }
}
