//! The other core/v1 kinds: Namespaces, ConfigMaps, Secrets, ServiceAccounts, Endpoints,
//! Nodes, LimitRanges, ResourceQuotas and Events, plus the defaults of PersistentVolumes and
//! claims (`SetDefaults_Namespace`, `_Secret`, `_Endpoints`, `_PersistentVolume(Claim)`,
//! `_LimitRangeItem`, the namespace strategy's finalizer and phase) and their validation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, ResourceQuota, Secret,
};
use serde_json::{json, Value};

use super::meta::{
    canonicalize_resources, child, each_obj, entry_obj, get_obj_mut, index, is_config_map_key,
    is_qualified_name, is_unset, is_valid_port_num, key, set_if_empty, set_if_unset, str_of,
    validate_kube_finalizer_name, validate_label_name, validate_protocol, Obj,
};
use super::{
    duplicate, forbidden, immutable, invalid, not_supported, required, run, too_long, Errs,
    FieldError,
};

use super::storage::{validate_claim, validate_volume};
use crate::validation::is_dns1123_label;

/// The most a config map's or secret's data may hold.
const MAX_DATA: usize = 1024 * 1024;

/// Defaults of the kinds in this file; `false` when `plural` is not one of them.
pub(crate) fn default_core(group: &str, plural: &str, obj: &mut Obj) -> bool {
    if !group.is_empty() {
        return false;
    }
    match plural {
        "namespaces" => default_namespace(obj),
        "secrets" => default_secret(obj),
        "persistentvolumeclaims" => default_claim(obj),
        "persistentvolumes" => {
            if let Some(spec) = entry_obj(obj, "spec") {
                set_if_empty(spec, "persistentVolumeReclaimPolicy", "Retain");
                set_if_unset(spec, "volumeMode", "Filesystem");
                canonicalize_resources(spec, "capacity");
                if let Some(h) = get_obj_mut(spec, "hostPath") {
                    set_if_unset(h, "type", "");
                }
            }
            if let Some(status) = entry_obj(obj, "status") {
                set_if_empty(status, "phase", "Pending");
            }
        }
        "nodes" => {
            if let Some(status) = get_obj_mut(obj, "status") {
                canonicalize_resources(status, "capacity");
                canonicalize_resources(status, "allocatable");
                if is_unset(status, "allocatable") && !is_unset(status, "capacity") {
                    let capacity = status.get("capacity").cloned().unwrap_or(Value::Null);
                    status.insert("allocatable".to_owned(), capacity);
                }
            }
        }
        "limitranges" => {
            if let Some(spec) = get_obj_mut(obj, "spec") {
                each_obj(spec, "limits").for_each(default_limit_range_item);
            }
        }
        "resourcequotas" => {
            if let Some(spec) = get_obj_mut(obj, "spec") {
                canonicalize_resources(spec, "hard");
            }
        }
        "configmaps" | "serviceaccounts" | "events" => {}
        _ => return false,
    }
    true
}

/// `SetDefaults_Namespace` (the `kubernetes.io/metadata.name` label) and, for a new namespace
/// (no status phase yet), the strategy's `kubernetes` finalizer and `Active` phase.
fn default_namespace(ns: &mut Obj) {
    let name = super::meta::at(ns, "metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !name.is_empty() {
        if let Some(labels) = entry_obj(ns, "metadata").and_then(|m| entry_obj(m, "labels")) {
            labels.insert("kubernetes.io/metadata.name".to_owned(), Value::from(name));
        }
    }
    let new = super::meta::at(ns, "status/phase").is_none_or(Value::is_null);
    if new {
        if let Some(spec) = entry_obj(ns, "spec") {
            let finalizers = spec.entry("finalizers").or_insert_with(|| json!([]));
            if finalizers.is_null() {
                *finalizers = json!([]);
            }
            if let Some(list) = finalizers.as_array_mut() {
                if !list.iter().any(|f| f == "kubernetes") {
                    list.push(Value::from("kubernetes"));
                }
            }
        }
        if let Some(status) = entry_obj(ns, "status") {
            status.insert("phase".to_owned(), Value::from("Active"));
        }
    }
}

/// Standard base64 (what a secret's `data` holds).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `SetDefaults_Secret` (type `Opaque`), and the v1 conversion's folding of `stringData`
/// into `data` (upstream never stores or returns `stringData`).
fn default_secret(secret: &mut Obj) {
    set_if_empty(secret, "type", "Opaque");
    let Some(Value::Object(string_data)) = secret.remove("stringData") else {
        return;
    };
    if let Some(data) = entry_obj(secret, "data") {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or("").as_bytes().to_vec();
            data.insert(k, Value::from(base64(&text)));
        }
    }
}

/// A claim's defaults (`SetDefaults_PersistentVolumeClaim(Spec)`): phase `Pending`, volume
/// mode `Filesystem`.
pub(crate) fn default_claim(claim: &mut Obj) {
    if let Some(spec) = entry_obj(claim, "spec") {
        super::volumes::default_claim_spec(spec);
    }
    if let Some(status) = entry_obj(claim, "status") {
        set_if_empty(status, "phase", "Pending");
        canonicalize_resources(status, "capacity");
    }
}

/// `SetDefaults_LimitRangeItem`: container defaults from max, requests from defaults or min.
fn default_limit_range_item(item: &mut Obj) {
    for list in [
        "max",
        "min",
        "default",
        "defaultRequest",
        "maxLimitRequestRatio",
    ] {
        canonicalize_resources(item, list);
    }
    if str_of(item, "type") != "Container" {
        return;
    }
    let list = |item: &Obj, k: &str| {
        item.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (max, min) = (list(item, "max"), list(item, "min"));
    if let Some(default) = entry_obj(item, "default") {
        for (k, v) in max {
            default.entry(k).or_insert(v);
        }
    }
    let default = list(item, "default");
    if let Some(request) = entry_obj(item, "defaultRequest") {
        for (k, v) in default.into_iter().chain(min) {
            request.entry(k).or_insert(v);
        }
    }
}

/// Validation of the kinds in this file; `None` when `plural` is not one of them.
pub(crate) fn validate_core(
    group: &str,
    plural: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Option<Result<Errs, FieldError>> {
    if !group.is_empty() {
        return None;
    }
    Some(match plural {
        "namespaces" => run(obj, old, validate_namespace),
        "configmaps" => run(obj, old, validate_config_map),
        "secrets" => run(obj, old, validate_secret),
        "persistentvolumeclaims" => run(obj, old, validate_claim),
        "persistentvolumes" => run(obj, old, validate_volume),
        "nodes" => run(obj, old, validate_node),
        "limitranges" => run(obj, old, validate_limit_range),
        "resourcequotas" => run(obj, old, validate_quota),
        "events" => run(obj, old, validate_event),
        "serviceaccounts" => Ok(Vec::new()),
        _ => return None,
    })
}

fn validate_namespace(ns: &Namespace, old: Option<&Namespace>) -> Errs {
    let mut errs = Vec::new();
    if old.is_none() {
        for f in ns.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
            for msg in is_qualified_name(f) {
                errs.push(invalid("spec.finalizers", f.as_str(), &msg));
            }
            validate_kube_finalizer_name(f, "spec.finalizers", &mut errs);
        }
    }
    errs
}

fn validate_data_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &str, errs: &mut Errs) {
    for k in keys {
        for msg in is_config_map_key(k) {
            errs.push(invalid(key(path, k), k.as_str(), &msg));
        }
    }
}

fn validate_config_map(cm: &ConfigMap, old: Option<&ConfigMap>) -> Errs {
    let mut errs = Vec::new();
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    for k in data.keys() {
        for msg in is_config_map_key(k) {
            errs.push(invalid(key("data", k), k.as_str(), &msg));
        }
        if binary.contains_key(k) {
            errs.push(invalid(
                key("data", k),
                k.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
    }
    validate_data_keys(binary.keys(), "binaryData", &mut errs);
    let size: usize = data.values().map(String::len).sum::<usize>()
        + binary.values().map(|b| b.0.len()).sum::<usize>();
    if size > MAX_DATA {
        errs.push(too_long("", MAX_DATA));
    }
    if let Some(old) = old.filter(|o| o.immutable == Some(true)) {
        let msg = "field is immutable when `immutable` is set";
        if cm.immutable != Some(true) {
            errs.push(forbidden("immutable", msg));
        }
        if cm.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
            errs.push(forbidden("data", msg));
        }
        if cm.binary_data.clone().unwrap_or_default() != old.binary_data.clone().unwrap_or_default()
        {
            errs.push(forbidden("binaryData", msg));
        }
    }
    errs
}

fn validate_secret(secret: &Secret, old: Option<&Secret>) -> Errs {
    let mut errs = Vec::new();
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    validate_data_keys(data.keys(), "data", &mut errs);
    if data.values().map(Vec::len).sum::<usize>() > MAX_DATA {
        errs.push(too_long("data", MAX_DATA));
    }
    let has = |k: &str| data.contains_key(k);
    match secret.type_.as_deref().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let annotated = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|v| !v.is_empty());
            if !annotated {
                errs.push(required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => validate_json_key(&data, ".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => {
            validate_json_key(&data, ".dockerconfigjson", &mut errs)
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required("data[username]", ""));
            errs.push(required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            errs.push(required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(required(key("data", k), ""));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        errs.extend(immutable(&secret.type_, &old.type_, "type"));
        if old.immutable == Some(true) {
            let msg = "field is immutable when `immutable` is set";
            if secret.immutable != Some(true) {
                errs.push(forbidden("immutable", msg));
            }
            let old_data: BTreeMap<String, Vec<u8>> = old
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            if data != old_data {
                errs.push(forbidden("data", msg));
            }
        }
    }
    errs
}

fn validate_json_key(data: &BTreeMap<String, Vec<u8>>, k: &str, errs: &mut Errs) {
    match data.get(k) {
        None => errs.push(required(key("data", k), "")),
        Some(bytes) => {
            if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(bytes) {
                errs.push(invalid(
                    key("data", k),
                    "<secret contents redacted>",
                    &e.to_string(),
                ));
            }
        }
    }
}

fn validate_node(node: &Node, _old: Option<&Node>) -> Errs {
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in node
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .enumerate()
    {
        let p = index("metadata.taints", i);
        validate_label_name(&t.key, &child(&p, "key"), &mut errs);
        let value = t.value.as_deref().unwrap_or("");
        let msgs = super::meta::is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(invalid(child(&p, "value"), value, &msgs.join(";")));
        }
        match t.effect.as_str() {
            "" => errs.push(required(child(&p, "effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(not_supported(
                child(&p, "effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if !seen.insert((t.effect.clone(), t.key.clone())) {
            let mut e = duplicate(p, serde_json::to_value(t).unwrap_or(Value::Null));
            "taints must be unique by key and effect pair".clone_into(&mut e.detail);
            errs.push(e);
        }
    }
    errs
}

fn validate_limit_range(lr: &LimitRange, _old: Option<&LimitRange>) -> Errs {
    let mut errs = Vec::new();
    for (i, item) in lr.spec.iter().flat_map(|s| s.limits.iter()).enumerate() {
        let p = index("spec.limits", i);
        if !matches!(
            item.type_.as_str(),
            "Pod" | "Container" | "PersistentVolumeClaim"
        ) && !item.type_.contains('/')
        {
            errs.push(invalid(
                child(&p, "type"),
                item.type_.as_str(),
                "must be a standard limit type or fully qualified",
            ));
        }
        let lists = [
            ("max", &item.max),
            ("min", &item.min),
            ("default", &item.default),
            ("defaultRequest", &item.default_request),
            ("maxLimitRequestRatio", &item.max_limit_request_ratio),
        ];
        let mut values: BTreeMap<&str, BTreeMap<&str, i128>> = BTreeMap::new();
        for (field, list) in lists {
            for (k, q) in list.iter().flatten() {
                match super::meta::parse_quantity(&q.0) {
                    Err(msg) => errs.push(invalid(key(&child(&p, field), k), q.0.as_str(), msg)),
                    Ok(v) => {
                        values.entry(field).or_default().insert(k.as_str(), v.nano);
                    }
                }
            }
        }
        let get = |f: &str, k: &str| values.get(f).and_then(|m| m.get(k)).copied();
        let keys: std::collections::BTreeSet<&str> =
            values.values().flat_map(|m| m.keys().copied()).collect();
        for k in keys {
            if let (Some(min), Some(max)) = (get("min", k), get("max", k)) {
                if min > max {
                    let (mn, mx) = (
                        item.min.as_ref().and_then(|m| m.get(k)),
                        item.max.as_ref().and_then(|m| m.get(k)),
                    );
                    let show =
                        |q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
                            q.map(|q| super::meta::quantity_string(&q.0))
                                .unwrap_or_default()
                        };
                    errs.push(invalid(
                        key(&child(&p, "min"), k),
                        show(mn),
                        &format!(
                            "min value {} is greater than max value {}",
                            show(mn),
                            show(mx)
                        ),
                    ));
                }
            }
        }
    }
    errs
}

fn validate_quota(rq: &ResourceQuota, old: Option<&ResourceQuota>) -> Errs {
    let mut errs = Vec::new();
    let spec = rq.spec.clone().unwrap_or_default();
    for (k, q) in spec.hard.iter().flatten() {
        let p = key("spec.hard", k);
        for msg in is_qualified_name(k) {
            errs.push(invalid(p.as_str(), k.as_str(), &msg));
        }
        match super::meta::parse_quantity(&q.0) {
            Err(msg) => errs.push(invalid(p, q.0.as_str(), msg)),
            Ok(v) if v.nano < 0 => errs.push(invalid(
                p,
                super::meta::quantity_string(&q.0),
                "must be greater than or equal to 0",
            )),
            Ok(_) => {}
        }
    }
    let scopes = [
        "BestEffort",
        "NotBestEffort",
        "Terminating",
        "NotTerminating",
        "PriorityClass",
        "CrossNamespacePodAffinity",
        "VolumeAttributesClass",
    ];
    let list = spec.scopes.clone().unwrap_or_default();
    if list.iter().any(|s| !scopes.contains(&s.as_str())) {
        errs.push(super::invalid_json(
            "spec.scopes",
            &list,
            "unsupported scope",
        ));
    }
    if let Some(old) = old {
        let mut a = list.clone();
        let mut b = old
            .spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .unwrap_or_default();
        a.sort();
        a.dedup();
        b.sort();
        b.dedup();
        if a != b {
            errs.push(super::invalid_json(
                "spec.scopes",
                &list,
                "field is immutable",
            ));
        }
    }
    errs
}

/// core/v1 Events keep upstream's legacy rules: only the namespace checks.
fn validate_event(ev: &Event, _old: Option<&Event>) -> Errs {
    let mut errs = Vec::new();
    let ns = ev.metadata.namespace.as_deref().unwrap_or("");
    let involved = ev.involved_object.namespace.as_deref().unwrap_or("");
    if ev.event_time.is_none() {
        let ok = if involved.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == involved
        };
        if !ok {
            errs.push(invalid(
                "involvedObject.namespace",
                involved,
                "does not match event.namespace",
            ));
        }
    }
    for msg in crate::validation::is_dns1123_subdomain(ns) {
        errs.push(invalid("namespace", ns, &msg));
    }
    errs
}

/// `SetDefaults_Endpoints`: ports speak TCP unless told otherwise.
pub(crate) fn default_endpoints(ep: &mut Obj) {
    for subset in each_obj(ep, "subsets") {
        for port in each_obj(subset, "ports") {
            set_if_empty(port, "protocol", "TCP");
        }
    }
}

/// `ValidateEndpoints`.
pub(crate) fn validate_endpoints(ep: &Endpoints, _old: Option<&Endpoints>) -> Errs {
    let mut errs = Vec::new();
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let p = index("subsets", i);
        let addresses = ss.addresses.as_deref().unwrap_or(&[]);
        let not_ready = ss.not_ready_addresses.as_deref().unwrap_or(&[]);
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(required(
                p.as_str(),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (field, list) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                let ap = index(&child(&p, field), j);
                super::meta::validate_ip(&child(&ap, "ip"), &a.ip, &mut errs);
                if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                    for msg in is_dns1123_label(h) {
                        errs.push(invalid(child(&ap, "hostname"), h, &msg));
                    }
                }
            }
        }
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&p, "ports"), j);
            let name = port.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(required(child(&pp, "name"), ""));
            } else if !name.is_empty() {
                for msg in is_dns1123_label(name) {
                    errs.push(invalid(child(&pp, "name"), name, &msg));
                }
            }
            for msg in is_valid_port_num(i64::from(port.port)) {
                errs.push(invalid(child(&pp, "port"), port.port, &msg));
            }
            validate_protocol(port.protocol.as_deref(), child(&pp, "protocol"), &mut errs);
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{default_object, validate};

    #[test]
    fn namespaces() {
        let mut ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
        default_object("", "namespaces", &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        assert!(validate("", "namespaces", &ns, None).is_empty());
        let mut old = ns.clone();
        old["spec"]["finalizers"] = json!([]);
        default_object("", "namespaces", &mut old);
        assert_eq!(old["spec"]["finalizers"], json!([]));
    }

    #[test]
    fn config_maps_and_secrets() {
        let cm = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"ok.key": "v", "bad key": "v"}});
        let errs = validate("", "configmaps", &cm, None);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message().starts_with("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
        let big = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "x".repeat(MAX_DATA + 1)}});
        assert_eq!(
            validate("", "configmaps", &big, None)[0].message(),
            ": Too long: may not be more than 1048576 bytes"
        );
        let mut secret =
            json!({"metadata": {"name": "s", "namespace": "d"}, "stringData": {"user": "admin"}});
        default_object("", "secrets", &mut secret);
        assert_eq!(secret["type"], "Opaque");
        assert_eq!(secret["data"], json!({"user": "YWRtaW4="}));
        assert!(secret.get("stringData").is_none());
        let tls = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {}});
        let msgs: Vec<String> = validate("", "secrets", &tls, None)
            .iter()
            .map(FieldError::message)
            .collect();
        assert_eq!(
            msgs,
            [
                "data[tls.crt]: Required value",
                "data[tls.key]: Required value"
            ]
        );
    }
}
