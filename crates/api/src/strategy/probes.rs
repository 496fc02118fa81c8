//! Probes, lifecycle handlers and security contexts of containers: exactly one handler per
//! probe or hook, well-formed ports, paths and thresholds, and the user, group, proc mount and
//! seccomp rules (`validateProbe`, `validateHandler`, `ValidateSecurityContext`).

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe, SecurityContext};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{child, is_http_header_name, is_valid_port_name, is_valid_port_num};
use super::{forbidden, invalid, invalid_json, not_supported, required, Errs};

pub(crate) fn validate_probes(c: &Container, grace: Option<i64>, path: &str, errs: &mut Errs) {
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(probe) = probe else { continue };
        let p = child(path, field);
        validate_probe(probe, grace, &p, errs);
        if field == "readinessProbe" {
            if let Some(t) = probe.termination_grace_period_seconds {
                errs.push(invalid(
                    child(&p, "terminationGracePeriodSeconds"),
                    t,
                    "must not be set for readinessProbes",
                ));
            }
        } else if probe.success_threshold.unwrap_or(0) != 1 {
            errs.push(invalid(
                child(&p, "successThreshold"),
                probe.success_threshold.unwrap_or(0),
                "must be 1",
            ));
        }
    }
}

fn validate_probe(probe: &Probe, grace: Option<i64>, path: &str, errs: &mut Errs) {
    let handlers = [
        (
            "exec",
            probe
                .exec
                .as_ref()
                .map(|e| e.command.as_deref().unwrap_or(&[]).is_empty()),
        ),
        ("httpGet", probe.http_get.as_ref().map(|_| false)),
        ("tcpSocket", probe.tcp_socket.as_ref().map(|_| false)),
        ("grpc", probe.grpc.as_ref().map(|_| false)),
    ];
    validate_handlers(&handlers, path, errs);
    if let Some(h) = &probe.http_get {
        validate_http_get(h, &child(path, "httpGet"), errs);
    }
    if let Some(t) = &probe.tcp_socket {
        validate_port_num_or_name(&t.port, &child(&child(path, "tcpSocket"), "port"), errs);
    }
    if let Some(g) = &probe.grpc {
        for msg in is_valid_port_num(i64::from(g.port)) {
            errs.push(invalid(child(&child(path, "grpc"), "port"), g.port, &msg));
        }
    }
    let numbers = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (field, v) in numbers {
        super::nonnegative(i64::from(v.unwrap_or(0)), child(path, field), errs);
    }
    if let Some(t) = probe.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errs.push(invalid(
            child(path, "terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    let _ = grace;
}

/// `validateHandler`: exactly one handler; `Some(true)` marks an exec without a command.
fn validate_handlers(handlers: &[(&str, Option<bool>)], path: &str, errs: &mut Errs) {
    let mut count = 0;
    for (name, h) in handlers {
        let Some(empty_exec) = h else { continue };
        if count > 0 {
            errs.push(forbidden(
                child(path, name),
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        count += 1;
        if *empty_exec {
            errs.push(required(child(&child(path, name), "command"), ""));
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a handler type"));
    }
}

fn validate_http_get(h: &k8s_openapi::api::core::v1::HTTPGetAction, path: &str, errs: &mut Errs) {
    if h.path.as_deref().unwrap_or("").is_empty() {
        errs.push(required(child(path, "path"), ""));
    }
    validate_port_num_or_name(&h.port, &child(path, "port"), errs);
    let scheme = h.scheme.as_deref().unwrap_or("");
    if !matches!(scheme, "HTTP" | "HTTPS") {
        errs.push(not_supported(
            child(path, "scheme"),
            scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    for header in h.http_headers.iter().flatten() {
        for msg in is_http_header_name(&header.name) {
            errs.push(invalid(
                child(path, "httpHeaders"),
                header.name.as_str(),
                &msg,
            ));
        }
    }
}

/// `ValidatePortNumOrName`.
pub(crate) fn validate_port_num_or_name(port: &IntOrString, path: &str, errs: &mut Errs) {
    match port {
        IntOrString::Int(n) => {
            for msg in is_valid_port_num(i64::from(*n)) {
                errs.push(invalid(path, *n, &msg));
            }
        }
        IntOrString::String(s) => {
            for msg in is_valid_port_name(s) {
                errs.push(invalid(path, s.as_str(), &msg));
            }
        }
    }
}

pub(crate) fn validate_lifecycle(
    lifecycle: &k8s_openapi::api::core::v1::Lifecycle,
    grace: Option<i64>,
    path: &str,
    errs: &mut Errs,
) {
    let hooks: [(&str, &Option<LifecycleHandler>); 2] = [
        ("postStart", &lifecycle.post_start),
        ("preStop", &lifecycle.pre_stop),
    ];
    for (field, hook) in hooks {
        let Some(h) = hook else { continue };
        let p = child(path, field);
        let handlers = [
            (
                "exec",
                h.exec
                    .as_ref()
                    .map(|e| e.command.as_deref().unwrap_or(&[]).is_empty()),
            ),
            ("httpGet", h.http_get.as_ref().map(|_| false)),
            ("tcpSocket", h.tcp_socket.as_ref().map(|_| false)),
            ("sleep", h.sleep.as_ref().map(|_| false)),
        ];
        validate_handlers(&handlers, &p, errs);
        if let Some(http) = &h.http_get {
            validate_http_get(http, &child(&p, "httpGet"), errs);
        }
        if let Some(t) = &h.tcp_socket {
            validate_port_num_or_name(&t.port, &child(&child(&p, "tcpSocket"), "port"), errs);
        }
        if let (Some(sleep), Some(grace)) = (&h.sleep, grace) {
            if sleep.seconds < 0 || sleep.seconds > grace {
                errs.push(invalid(
                    child(&p, "sleep"),
                    sleep.seconds,
                    &format!(
                    "must be non-negative and less than terminationGracePeriodSeconds ({grace})"
                ),
                ));
            }
        }
    }
}

/// `IsValidUserID` / `IsValidGroupID`.
pub(crate) fn validate_id(value: i64, path: &str, errs: &mut Errs) {
    if !(0..=2_147_483_647).contains(&value) {
        errs.push(invalid(
            path,
            value,
            "must be between 0 and 2147483647, inclusive",
        ));
    }
}

/// `validateSeccompProfileField`.
pub(crate) fn validate_seccomp(
    sp: &k8s_openapi::api::core::v1::SeccompProfile,
    path: &str,
    errs: &mut Errs,
) {
    match sp.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(required(
            child(path, "type"),
            "type is required when seccompProfile is set",
        )),
        other => errs.push(not_supported(
            child(path, "type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    if sp.type_ == "Localhost" {
        match &sp.localhost_profile {
            None => errs.push(required(
                child(path, "localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(p) => super::volumes::validate_local_descending_path(
                p,
                &child(path, "localhostProfile"),
                errs,
            ),
        }
    } else if sp.localhost_profile.is_some() {
        errs.push(invalid_json(
            child(path, "localhostProfile"),
            sp,
            "can only be set when seccomp type is Localhost",
        ));
    }
}

/// `ValidateSecurityContext` (a container's).
pub(crate) fn validate_security_context(sc: &SecurityContext, path: &str, errs: &mut Errs) {
    if let Some(u) = sc.run_as_user {
        validate_id(u, &child(path, "runAsUser"), errs);
    }
    if let Some(g) = sc.run_as_group {
        validate_id(g, &child(path, "runAsGroup"), errs);
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        if !matches!(pm, "Default" | "Unmasked") {
            errs.push(not_supported(
                child(path, "procMount"),
                pm,
                &["Default", "Unmasked"],
            ));
        }
    }
    if let Some(sp) = &sc.seccomp_profile {
        validate_seccomp(sp, &child(path, "seccompProfile"), errs);
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            errs.push(invalid_json(
                path,
                sc,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        let adds_sys_admin = sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN"));
        if adds_sys_admin {
            errs.push(invalid_json(path, sc, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(container: serde_json::Value) -> Vec<String> {
        let c: Container = serde_json::from_value(container).unwrap();
        let mut errs = Vec::new();
        validate_probes(&c, Some(30), "c", &mut errs);
        if let Some(l) = &c.lifecycle {
            validate_lifecycle(l, Some(30), "c.lifecycle", &mut errs);
        }
        if let Some(sc) = &c.security_context {
            validate_security_context(sc, "c.securityContext", &mut errs);
        }
        errs.iter().map(super::super::FieldError::message).collect()
    }

    #[test]
    fn probes_and_handlers() {
        assert_eq!(
            errors(
                json!({"name": "a", "livenessProbe": {"successThreshold": 2, "periodSeconds": 10}})
            ),
            [
                "c.livenessProbe: Required value: must specify a handler type",
                "c.livenessProbe.successThreshold: Invalid value: 2: must be 1",
            ]
        );
        assert_eq!(
            errors(json!({"name": "a", "readinessProbe": {"exec": {}, "tcpSocket": {"port": "web_port"}}})),
            [
                "c.readinessProbe.exec.command: Required value",
                "c.readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                "c.readinessProbe.tcpSocket.port: Invalid value: \"web_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            ]
        );
        assert_eq!(
            errors(json!({"name": "a", "lifecycle": {"preStop": {"sleep": {"seconds": 60}}}})),
            ["c.lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than terminationGracePeriodSeconds (30)"]
        );
    }

    #[test]
    fn security_context() {
        assert_eq!(
            errors(json!({"name": "a", "securityContext": {"runAsUser": -1, "procMount": "Odd"}})),
            [
                "c.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                "c.securityContext.procMount: Unsupported value: \"Odd\": supported values: \"Default\", \"Unmasked\"",
            ]
        );
    }
}
