//! Resource requirements of containers and pods: resource names (standard, hugepages,
//! extended), quantities, the rule that requests stay within limits
//! (`ValidateContainerResourceRequirements`), and the pod's resource claims.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::meta::{child, index, is_qualified_name, key, parse_quantity, quantity_string};
use super::{duplicate, forbidden, invalid, not_found, required, Errs};

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
    "storage",
    "requests.storage",
];

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `IsExtendedResourceName`.
fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// `validateContainerResourceName`.
fn validate_resource_name(name: &str, path: &str, errs: &mut Errs) {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        for msg in msgs {
            errs.push(invalid(path, name, &msg));
        }
        return;
    }
    if !name.contains('/') {
        let standard = STANDARD_RESOURCES.contains(&name)
            || is_hugepages(name)
            || name.starts_with("requests.hugepages-");
        if !standard {
            errs.push(invalid(
                path,
                name,
                "must be a standard resource type or fully qualified",
            ));
        } else if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
            errs.push(invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// `ValidateResourceQuantityValue` for one entry; the parsed quantity when it parses.
pub(crate) fn validate_quantity(
    resource: &str,
    text: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<super::meta::Qty> {
    let q = match parse_quantity(text) {
        Ok(q) => q,
        Err(msg) => {
            errs.push(invalid(path, text, msg));
            return None;
        }
    };
    if q.nano < 0 {
        errs.push(invalid(
            path,
            quantity_string(text),
            "must be greater than or equal to 0",
        ));
    }
    let integer_resource = is_extended(resource)
        || matches!(
            resource,
            "pods"
                | "services"
                | "replicationcontrollers"
                | "resourcequotas"
                | "secrets"
                | "configmaps"
                | "persistentvolumeclaims"
                | "services.nodeports"
                | "services.loadbalancers"
        );
    if integer_resource && !q.is_integer() {
        errs.push(invalid(path, quantity_string(text), "must be an integer"));
    }
    Some(q)
}

/// `ValidateContainerResourceRequirements`: names, quantities, requests within limits.
pub(crate) fn validate_resources(
    res: &ResourceRequirements,
    claims: Option<&BTreeSet<String>>,
    path: &str,
    errs: &mut Errs,
) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let empty = BTreeMap::new();
    let limits = res.limits.as_ref().unwrap_or(&empty);
    let requests = res.requests.as_ref().unwrap_or(&empty);
    let (mut cpu_mem, mut huge) = (false, false);
    let mut limit_values = BTreeMap::new();
    for (name, q) in limits {
        let p = key(&lim_path, name);
        validate_resource_name(name, &p, errs);
        if let Some(v) = validate_quantity(name, &q.0, &p, errs) {
            limit_values.insert(name.as_str(), v.nano);
        }
        huge |= is_hugepages(name);
        cpu_mem |= matches!(name.as_str(), "cpu" | "memory");
    }
    for (name, q) in requests {
        let p = key(&req_path, name);
        validate_resource_name(name, &p, errs);
        let value = validate_quantity(name, &q.0, &p, errs);
        let overcommit = is_native(name) && !is_hugepages(name);
        match (limits.get(name), value) {
            (Some(limit), Some(v)) => {
                let Some(&lim) = limit_values.get(name.as_str()) else {
                    continue;
                };
                let shown = quantity_string(&q.0);
                let limit_shown = quantity_string(&limit.0);
                if v.nano != lim && !overcommit {
                    errs.push(invalid(
                        req_path.as_str(),
                        shown,
                        &format!("must be equal to {name} limit of {limit_shown}"),
                    ));
                } else if v.nano > lim {
                    errs.push(invalid(
                        req_path.as_str(),
                        shown,
                        &format!("must be less than or equal to {name} limit of {limit_shown}"),
                    ));
                }
            }
            (None, _) if !overcommit => errs.push(required(
                lim_path.as_str(),
                "Limit must be set for non overcommitable resources",
            )),
            _ => {}
        }
        huge |= is_hugepages(name);
        cpu_mem |= matches!(name.as_str(), "cpu" | "memory");
    }
    if huge && !cpu_mem {
        errs.push(forbidden(path, "HugePages require cpu or memory"));
    }
    let cpath = child(path, "claims");
    let mut seen = BTreeSet::new();
    for (i, claim) in res.claims.iter().flatten().enumerate() {
        let p = index(&cpath, i);
        if claim.name.is_empty() {
            errs.push(required(p, ""));
            continue;
        }
        let k = match claim.request.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => format!("{}/{r}", claim.name),
            None => claim.name.clone(),
        };
        if !seen.insert(k.clone()) {
            errs.push(duplicate(p.as_str(), k));
        }
        if let Some(names) = claims {
            if !names.contains(&claim.name) {
                let mut e = not_found(p.as_str(), claim.name.as_str());
                e.detail = if names.is_empty() {
                    "must be one of the names in pod.spec.resourceClaims which is empty".to_owned()
                } else {
                    let list: Vec<&str> = names.iter().map(String::as_str).collect();
                    format!(
                        "must be one of the names in pod.spec.resourceClaims: {}",
                        list.join(", ")
                    )
                };
                errs.push(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_within_limits() {
        let res: ResourceRequirements = serde_json::from_value(serde_json::json!({
            "limits": {"cpu": "500m", "memory": "1Gi"},
            "requests": {"cpu": "1", "memory": "1024Mi", "gpu": "1"}
        }))
        .unwrap();
        let mut errs = Vec::new();
        validate_resources(&res, None, "spec.containers[0].resources", &mut errs);
        let msgs: Vec<String> = errs.iter().map(super::super::FieldError::message).collect();
        assert_eq!(msgs, [
            "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
        ]);
        let bad: ResourceRequirements =
            serde_json::from_value(serde_json::json!({"limits": {"cpu": "lots"}})).unwrap();
        let mut errs = Vec::new();
        validate_resources(&bad, None, "r", &mut errs);
        assert_eq!(
            errs[0].message(),
            format!(
                "r.limits[cpu]: Invalid value: \"lots\": {}",
                super::super::quantity::QUANTITY_FORMAT_ERR
            )
        );
    }
}
