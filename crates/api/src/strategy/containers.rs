//! Containers: their defaults (`SetDefaults_Container`, ports, probes, handlers) and their
//! validation (`validateContainerCommon` and what regular and init containers add: ports,
//! environment, mounts, pull policy, resources, probes, lifecycle, security context).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde_json::Value;

use super::meta::{
    canonicalize_resources, child, each_obj, get_obj_mut, index, is_config_map_key,
    is_env_var_name, is_qualified_name, is_valid_port_name, is_valid_port_num,
    name_is_dns_subdomain, set_if_empty, set_if_unset, set_if_zero, validate_protocol, Obj,
};
use super::probes::{validate_lifecycle, validate_probes, validate_security_context};
use super::resources::validate_resources;
use super::volumes::validate_mounts;
use super::{duplicate, forbidden, invalid, not_supported, required, Errs};
use crate::validation::is_dns1123_label;

/// What container validation needs to know of a pod's volumes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VolumeFacts {
    /// Backed by a claim (PVC or generic ephemeral): usable as a block device.
    pub(crate) claim: bool,
    /// An image volume (no sub-paths).
    pub(crate) image: bool,
}

/// The pod's valid volumes by name.
pub(crate) type Volumes = BTreeMap<String, VolumeFacts>;

// ---------------------------------------------------------------------------------------------
// Defaults

/// The tag `docker pull` would use: `latest` when neither tag nor digest is given, `None` when
/// the reference does not parse (upstream then defaults to `IfNotPresent`).
fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            parts.remove(0);
        }
    }
    let component_ok = |p: &&str| {
        !p.is_empty()
            && p.bytes().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
            })
            && p.as_bytes()[0].is_ascii_alphanumeric()
    };
    if repo.is_empty() || !parts.iter().all(component_ok) {
        return None;
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_');
        if !ok {
            return None;
        }
    }
    if digest.is_some_and(|d| !d.contains(':')) {
        return None;
    }
    match (tag, digest) {
        (Some(t), _) => Some(t.to_owned()),
        (None, Some(_)) => Some(String::new()),
        (None, None) => Some("latest".to_owned()),
    }
}

/// `Always` for `:latest` (or no tag), else `IfNotPresent`.
pub(crate) fn pull_policy_for(image: &str) -> &'static str {
    if image_tag(image).as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn default_http_get(handler: &mut Obj) {
    if let Some(http) = get_obj_mut(handler, "httpGet") {
        set_if_empty(http, "path", "/");
        set_if_empty(http, "scheme", "HTTP");
    }
}

fn default_probe(probe: &mut Obj) {
    set_if_zero(probe, "timeoutSeconds", 1);
    set_if_zero(probe, "periodSeconds", 10);
    set_if_zero(probe, "successThreshold", 1);
    set_if_zero(probe, "failureThreshold", 3);
    default_http_get(probe);
    if let Some(grpc) = get_obj_mut(probe, "grpc") {
        set_if_unset(grpc, "service", "");
    }
}

/// `SetDefaults_Container` and what the generated defaulter does below a container.
pub(crate) fn default_container(c: &mut Obj) {
    if super::meta::str_of(c, "imagePullPolicy").is_empty() {
        let policy = pull_policy_for(super::meta::str_of(c, "image"));
        c.insert("imagePullPolicy".to_owned(), Value::from(policy));
    }
    set_if_empty(c, "terminationMessagePath", "/dev/termination-log");
    set_if_empty(c, "terminationMessagePolicy", "File");
    for port in each_obj(c, "ports") {
        set_if_empty(port, "protocol", "TCP");
    }
    for env in each_obj(c, "env") {
        if let Some(field_ref) =
            get_obj_mut(env, "valueFrom").and_then(|v| get_obj_mut(v, "fieldRef"))
        {
            set_if_empty(field_ref, "apiVersion", "v1");
        }
    }
    // `resources` is a plain struct upstream, so it is always written out.
    if let Some(res) = super::meta::entry_obj(c, "resources") {
        canonicalize_resources(res, "limits");
        canonicalize_resources(res, "requests");
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = get_obj_mut(c, probe) {
            default_probe(p);
        }
    }
    if let Some(lifecycle) = get_obj_mut(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = get_obj_mut(lifecycle, hook) {
                default_http_get(h);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

/// `validateContainers`: the regular containers of a pod spec.
pub(crate) fn validate_containers(
    containers: &[Container],
    vols: &Volumes,
    claims: &BTreeSet<String>,
    grace: Option<i64>,
    path: &str,
    errs: &mut Errs,
) {
    if containers.is_empty() {
        errs.push(required(path, ""));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = index(path, i);
        validate_container_common(c, vols, claims, &p, errs);
        if !names.insert(c.name.as_str()) {
            errs.push(duplicate(child(&p, "name"), c.name.as_str()));
        }
        if let Some(lifecycle) = &c.lifecycle {
            validate_lifecycle(lifecycle, grace, &child(&p, "lifecycle"), errs);
        }
        validate_probes(c, grace, &p, errs);
        if c.restart_policy.is_some() {
            errs.push(forbidden(
                child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    check_host_ports(containers, path, errs);
}

/// `validateInitContainers`.
pub(crate) fn validate_init_containers(
    init: &[Container],
    regular: &[Container],
    vols: &Volumes,
    claims: &BTreeSet<String>,
    grace: Option<i64>,
    path: &str,
    errs: &mut Errs,
) {
    let mut names: BTreeSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in init.iter().enumerate() {
        let p = index(path, i);
        validate_container_common(c, vols, claims, &p, errs);
        let mut restart_always = false;
        if let Some(policy) = &c.restart_policy {
            if policy != "Always" {
                errs.push(not_supported(
                    child(&p, "restartPolicy"),
                    policy.as_str(),
                    &["Always"],
                ));
            }
            restart_always = policy == "Always";
        }
        if names.contains(c.name.as_str()) {
            errs.push(duplicate(child(&p, "name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        check_host_ports(std::slice::from_ref(c), path, errs);
        if restart_always {
            if let Some(lifecycle) = &c.lifecycle {
                validate_lifecycle(lifecycle, grace, &child(&p, "lifecycle"), errs);
            }
            validate_probes(c, grace, &p, errs);
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            let set = [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ];
            for (field, is_set) in set {
                if is_set {
                    errs.push(forbidden(child(&p, field), msg));
                }
            }
        }
    }
}

/// `AccumulateUniqueHostPorts`: a host port may be used once per protocol and host IP.
fn check_host_ports(containers: &[Container], path: &str, errs: &mut Errs) {
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let host_port = port.host_port.unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let k = format!(
                "{}/{}/{}",
                port.protocol.as_deref().unwrap_or(""),
                port.host_ip.as_deref().unwrap_or(""),
                host_port
            );
            if !seen.insert(k.clone()) {
                let p = child(&index(&child(&index(path, ci), "ports"), pi), "hostPort");
                errs.push(duplicate(p, k));
            }
        }
    }
}

/// `validateContainerCommon`.
pub(crate) fn validate_container_common(
    c: &Container,
    vols: &Volumes,
    claims: &BTreeSet<String>,
    path: &str,
    errs: &mut Errs,
) {
    if c.name.is_empty() {
        errs.push(required(child(path, "name"), ""));
    } else {
        for msg in is_dns1123_label(&c.name) {
            errs.push(invalid(child(path, "name"), c.name.as_str(), &msg));
        }
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        errs.push(required(child(path, "image"), ""));
    }
    match c.termination_message_policy.as_deref().unwrap_or("") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(required(child(path, "terminationMessagePolicy"), "")),
        other => errs.push(not_supported(
            child(path, "terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    validate_ports(c, &child(path, "ports"), errs);
    validate_env(c.env.as_deref().unwrap_or(&[]), &child(path, "env"), errs);
    validate_env_from(c, &child(path, "envFrom"), errs);
    validate_mounts(c, vols, path, errs);
    match c.image_pull_policy.as_deref().unwrap_or("") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(required(child(path, "imagePullPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(res) = &c.resources {
        validate_resources(res, Some(claims), &child(path, "resources"), errs);
    }
    for (i, policy) in c.resize_policy.iter().flatten().enumerate() {
        let p = child(path, "resizePolicy");
        match policy.resource_name.as_str() {
            "cpu" | "memory" => {}
            "" => errs.push(required(p.as_str(), "")),
            other => errs.push(not_supported(p.as_str(), other, &["cpu", "memory"])),
        }
        match policy.restart_policy.as_str() {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(required(p.as_str(), "")),
            other => errs.push(not_supported(
                p.as_str(),
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        let _ = i;
    }
    if let Some(sc) = &c.security_context {
        validate_security_context(sc, &child(path, "securityContext"), errs);
    }
}

fn validate_ports(c: &Container, path: &str, errs: &mut Errs) {
    let mut names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = index(path, i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(invalid(child(&p, "name"), name, &msg));
                }
            } else if !names.insert(name) {
                errs.push(duplicate(child(&p, "name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(required(child(&p, "containerPort"), ""));
        } else {
            for msg in is_valid_port_num(i64::from(port.container_port)) {
                errs.push(invalid(
                    child(&p, "containerPort"),
                    port.container_port,
                    &msg,
                ));
            }
        }
        if let Some(host_port) = port.host_port.filter(|h| *h != 0) {
            for msg in is_valid_port_num(i64::from(host_port)) {
                errs.push(invalid(child(&p, "hostPort"), host_port, &msg));
            }
        }
        validate_protocol(port.protocol.as_deref(), child(&p, "protocol"), errs);
    }
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `ValidateEnv`.
pub(crate) fn validate_env(env: &[EnvVar], path: &str, errs: &mut Errs) {
    for (i, ev) in env.iter().enumerate() {
        let p = index(path, i);
        if ev.name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        } else {
            for msg in is_env_var_name(&ev.name) {
                errs.push(invalid(child(&p, "name"), ev.name.as_str(), &msg));
            }
        }
        let Some(from) = &ev.value_from else { continue };
        let fp = child(&p, "valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            let fr = child(&fp, "fieldRef");
            let version = f.api_version.as_deref().unwrap_or("");
            if version.is_empty() {
                errs.push(required(child(&fr, "apiVersion"), ""));
            } else if f.field_path.is_empty() {
                errs.push(required(child(&fr, "fieldPath"), ""));
            } else if version != "v1" {
                errs.push(invalid(
                    child(&fr, "fieldPath"),
                    f.field_path.as_str(),
                    &format!("error converting fieldPath: unsupported pod version: {version}"),
                ));
            } else {
                validate_env_field_path(&f.field_path, &fr, errs);
            }
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            let rp = child(&fp, "resourceFieldRef");
            if r.resource.is_empty() {
                errs.push(required(child(&rp, "resource"), ""));
            } else if !RESOURCE_FIELD_PATHS.contains(&r.resource.as_str())
                && !r.resource.starts_with("requests.hugepages-")
                && !r.resource.starts_with("limits.hugepages-")
            {
                errs.push(not_supported(
                    child(&rp, "resource"),
                    r.resource.as_str(),
                    RESOURCE_FIELD_PATHS,
                ));
            }
        }
        let key_refs = [
            (
                "configMapKeyRef",
                from.config_map_key_ref.as_ref().map(|r| (&r.name, &r.key)),
            ),
            (
                "secretKeyRef",
                from.secret_key_ref.as_ref().map(|r| (&r.name, &r.key)),
            ),
        ];
        for (field, r) in key_refs {
            let Some((name, k)) = r else { continue };
            sources += 1;
            let rp = child(&fp, field);
            for msg in name_is_dns_subdomain(name, false) {
                errs.push(invalid(child(&rp, "name"), name.as_str(), &msg));
            }
            if k.is_empty() {
                errs.push(required(child(&rp, "key"), ""));
            } else {
                for msg in is_config_map_key(k) {
                    errs.push(invalid(child(&rp, "key"), k.as_str(), &msg));
                }
            }
        }
        let value_set = ev.value.as_deref().is_some_and(|v| !v.is_empty());
        if sources == 0 {
            errs.push(invalid(fp.as_str(), "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if value_set {
            errs.push(invalid(
                fp.as_str(),
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                fp.as_str(),
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn validate_env_field_path(field_path: &str, path: &str, errs: &mut Errs) {
    if let Some((base, rest)) = field_path.split_once('[') {
        let sub = rest
            .strip_suffix(']')
            .map(|s| s.trim_matches('\''))
            .unwrap_or(rest);
        match base {
            "metadata.annotations" => {
                for msg in is_qualified_name(&sub.to_lowercase()) {
                    errs.push(invalid(path, sub.to_lowercase(), &msg));
                }
            }
            "metadata.labels" => {
                for msg in is_qualified_name(sub) {
                    errs.push(invalid(path, sub, &msg));
                }
            }
            other => errs.push(invalid(path, other, "does not support subscript")),
        }
    } else if !ENV_FIELD_PATHS.contains(&field_path) {
        errs.push(not_supported(
            child(path, "fieldPath"),
            field_path,
            ENV_FIELD_PATHS,
        ));
    }
}

fn validate_env_from(c: &Container, path: &str, errs: &mut Errs) {
    for (i, ev) in c.env_from.iter().flatten().enumerate() {
        let p = index(path, i);
        if let Some(prefix) = ev.prefix.as_deref().filter(|s| !s.is_empty()) {
            for msg in is_env_var_name(prefix) {
                errs.push(invalid(child(&p, "prefix"), prefix, &msg));
            }
        }
        let refs = [
            ("configMapRef", ev.config_map_ref.as_ref().map(|r| &r.name)),
            ("secretRef", ev.secret_ref.as_ref().map(|r| &r.name)),
        ];
        let mut sources = 0;
        for (field, name) in refs {
            let Some(name) = name else { continue };
            sources += 1;
            let np = child(&child(&p, field), "name");
            if name.is_empty() {
                errs.push(required(np, ""));
            } else {
                for msg in name_is_dns_subdomain(name, true) {
                    errs.push(invalid(np.as_str(), name.as_str(), &msg));
                }
            }
        }
        if sources == 0 {
            errs.push(invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies() {
        assert_eq!(pull_policy_for("nginx"), "Always");
        assert_eq!(pull_policy_for("nginx:latest"), "Always");
        assert_eq!(pull_policy_for("nginx:1.27"), "IfNotPresent");
        assert_eq!(
            pull_policy_for("registry.example.com:5000/team/app"),
            "Always"
        );
        assert_eq!(
            pull_policy_for("registry.example.com:5000/team/app:v2"),
            "IfNotPresent"
        );
        assert_eq!(pull_policy_for("nginx@sha256:abc"), "IfNotPresent");
        assert_eq!(pull_policy_for("Nginx"), "IfNotPresent");
    }
}
