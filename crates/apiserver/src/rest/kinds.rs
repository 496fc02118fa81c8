//! The server-side rules that differ by kind and need the server's state or clock (defaults
//! and validation without state live in `tug_api::strategy`): status reset on create and
//! status kept on spec writes, generation, graceful deletion of
//! pods and namespaces, and service ClusterIP/NodePort allocation.

use serde_json::{json, Value};
use tug_api::strategy::{ErrorType, FieldError};
use tug_api::ResourceInfo;

use super::alloc::Allocator;
use super::object;

/// Whether writes to the main resource keep the stored status (the kind has a status
/// subresource, so status changes go through it).
pub fn status_is_separate(info: &ResourceInfo) -> bool {
    info.has_subresource("status")
}

/// Server-set fields of a new object, before defaulting: status cleared where it is
/// separate (the kind's strategy then sets its initial status: a pod's phase and QoS class, a
/// namespace's phase), generation 1 for kinds with a spec.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    if status_is_separate(info) {
        if let Value::Object(m) = obj {
            m.remove("status");
        }
    }
    if obj.get("spec").is_some() {
        object::set_meta(obj, "generation", 1);
    }
    if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
        // Deleting a CRD first deletes its objects (see `crds`).
        let meta = object::meta_mut(obj);
        let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut() {
            if !list.iter().any(|f| f == super::crds::CLEANUP_FINALIZER) {
                list.push(json!(super::crds::CLEANUP_FINALIZER));
            }
        }
    }
}

/// Keeps what a spec write may not change, and bumps the generation when the spec changed.
pub fn prepare_update(info: &ResourceInfo, new: &mut Value, old: &Value) {
    if status_is_separate(info) {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Value::Object(m) = new {
                    m.remove("status");
                }
            }
        }
    }
    let generation = old["metadata"]["generation"].as_i64();
    if let Some(g) = generation {
        let bumped = if new.get("spec") == old.get("spec") {
            g
        } else {
            g + 1
        };
        object::set_meta(new, "generation", bumped);
    }
}

/// A status write: the stored object with the new status (labels and annotations may change
/// too, as upstream allows on most kinds).
pub fn apply_status(old: &Value, sent: &Value) -> Value {
    let mut out = old.clone();
    match sent.get("status") {
        Some(s) => out["status"] = s.clone(),
        None => {
            if let Value::Object(m) = &mut out {
                m.remove("status");
            }
        }
    }
    // managedFields too: a status write records its manager (or, for an apply, carries
    // the entries the apply computed).
    for field in ["labels", "annotations", "managedFields"] {
        if let Some(v) = sent["metadata"].get(field) {
            object::set_meta(&mut out, field, v.clone());
        }
    }
    out
}

/// `old` with the ephemeral containers of `sent` (`pods/ephemeralcontainers`), and its
/// labels, annotations and managedFields as a status write takes them.
pub fn apply_ephemeral_containers(old: &Value, sent: &Value) -> Value {
    let mut out = old.clone();
    if let Some(spec) = out["spec"].as_object_mut() {
        match sent["spec"].get("ephemeralContainers") {
            Some(e) => {
                spec.insert("ephemeralContainers".to_owned(), e.clone());
            }
            None => {
                spec.remove("ephemeralContainers");
            }
        }
    }
    for field in ["labels", "annotations", "managedFields"] {
        if let Some(v) = sent["metadata"].get(field) {
            object::set_meta(&mut out, field, v.clone());
        }
    }
    out
}

/// How a DELETE proceeds for an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Remove it now.
    Now,
    /// Mark it (deletionTimestamp) and wait: finalizers, a running pod's grace period, a
    /// namespace's contents.
    Graceful {
        /// Seconds until the deadline (pods), else 0.
        grace: i64,
    },
}

/// The deletion an object gets, given the request's gracePeriodSeconds.
pub fn deletion(info: &ResourceInfo, obj: &Value, requested_grace: Option<i64>) -> Deletion {
    let core = info.group.is_empty();
    if core && info.plural == "pods" {
        let scheduled = obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        let grace = requested_grace
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0);
        if scheduled && !terminal && grace > 0 {
            return Deletion::Graceful { grace };
        }
    }
    if core && info.plural == "namespaces" {
        let finalizers = obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            return Deletion::Graceful { grace: 0 };
        }
    }
    if object::has_finalizers(obj) {
        return Deletion::Graceful { grace: 0 };
    }
    Deletion::Now
}

/// Namespaces that may never be deleted, as upstream's NamespaceLifecycle admission says.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Marks an object as being deleted.
pub fn mark_deleting(info: &ResourceInfo, obj: &mut Value, grace: i64, now: i64) {
    let at = tug_api::meta::timestamp(now.saturating_add(grace));
    object::set_meta(obj, "deletionTimestamp", at);
    object::set_meta(obj, "deletionGracePeriodSeconds", grace);
    if info.group.is_empty() && info.plural == "namespaces" {
        obj["status"]["phase"] = json!("Terminating");
    }
}

/// Whether an object marked for deletion can go now (no finalizers left, and for a
/// namespace no spec finalizers).
pub fn ready_to_remove(info: &ResourceInfo, obj: &Value) -> bool {
    if !object::is_deleting(obj) || object::has_finalizers(obj) {
        return false;
    }
    if info.group.is_empty() && info.plural == "namespaces" {
        return obj["spec"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    }
    if info.group.is_empty() && info.plural == "pods" {
        // A pod on a node goes when its kubelet deletes it with grace 0; an unbound or
        // finished one as soon as its last finalizer does.
        let bound = obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        return !bound || terminal;
    }
    true
}

fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "services"
}

fn wants_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

/// What a write took from the allocator, to give back if the write fails.
#[derive(Debug, Default)]
pub struct Taken {
    ip: Option<std::net::Ipv4Addr>,
    ports: Vec<u16>,
}

impl Taken {
    /// Gives everything back.
    pub fn undo(self, alloc: &mut Allocator) {
        if let Some(ip) = self.ip {
            alloc.free_ip(ip);
        }
        for p in self.ports {
            alloc.free_port(p);
        }
    }
}

fn field_error(field: String, value: Value, detail: String) -> FieldError {
    FieldError {
        kind: ErrorType::Invalid,
        field,
        bad_value: Some(value),
        detail,
    }
}

/// Gives a service spec one IPv4 cluster address (or "None", headless).
fn set_single_stack(spec: &mut Value, ip: &str) {
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    spec["ipFamilies"] = json!(["IPv4"]);
    spec["ipFamilyPolicy"] = json!("SingleStack");
}

/// Allocates a service's ClusterIP and NodePorts (new ones only, on update: what `old`
/// held is kept, what the new spec no longer uses is released after the write).
pub fn allocate(
    info: &ResourceInfo,
    alloc: &mut Allocator,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Taken, Vec<FieldError>> {
    let mut taken = Taken::default();
    if !is_service(info) {
        return Ok(taken);
    }
    let old_spec = old.map(|o| &o["spec"]);
    let spec = &mut obj["spec"];
    let external_name = spec["type"].as_str() == Some("ExternalName");
    // An update that leaves the address out keeps the old one, as upstream.
    if let Some(os) = old_spec {
        let empty = spec["clusterIP"].as_str().is_none_or(str::is_empty);
        if empty && !external_name && os["clusterIP"].is_string() {
            for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                spec[f] = os[f].clone();
            }
        }
    }
    let old_ip = old_spec.and_then(|s| s["clusterIP"].as_str()).unwrap_or("");
    let ip = spec["clusterIP"].as_str().unwrap_or("").to_owned();
    if external_name {
        if let Value::Object(m) = spec {
            m.remove("clusterIP");
            m.remove("clusterIPs");
        }
    } else if ip == "None" {
        set_single_stack(spec, "None");
    } else if ip.is_empty() || ip != old_ip {
        let wanted = if ip.is_empty() {
            None
        } else {
            Some(ip.parse().map_err(|_| {
                vec![field_error(
                    "spec.clusterIPs".into(),
                    json!([ip.clone()]),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into(),
                )]
            })?)
        };
        let got = alloc.allocate_ip(wanted).map_err(|detail| {
            vec![field_error(
                "spec.clusterIPs".into(),
                json!([ip.clone()]),
                detail,
            )]
        })?;
        taken.ip = Some(got);
        set_single_stack(spec, &got.to_string());
    }
    let old_ports: Vec<u16> = old.map(|o| super::alloc::held(o).1).unwrap_or_default();
    let node_ports = wants_node_ports(spec);
    if !node_ports {
        // Fields of externally reachable types go when the type changes, as upstream drops
        // them.
        if let Value::Object(m) = spec {
            for f in ["externalTrafficPolicy", "healthCheckNodePort"] {
                m.remove(f);
            }
        }
    }
    let mut errors = Vec::new();
    if let Some(ports) = spec["ports"].as_array_mut() {
        for (i, p) in ports.iter_mut().enumerate() {
            if !node_ports {
                if let Value::Object(m) = p {
                    m.remove("nodePort");
                }
                continue;
            }
            let wanted = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok());
            if let Some(w) = wanted {
                if old_ports.contains(&w) {
                    continue;
                }
            }
            match alloc.allocate_port(wanted) {
                Ok(port) => {
                    taken.ports.push(port);
                    p["nodePort"] = json!(port);
                }
                Err(detail) => errors.push(field_error(
                    format!("spec.ports[{i}].nodePort"),
                    json!(wanted.unwrap_or(0)),
                    detail,
                )),
            }
        }
    }
    if !errors.is_empty() {
        taken.undo(alloc);
        return Err(errors);
    }
    Ok(taken)
}

/// After a successful service update: frees what the old spec held and the new one does not.
pub fn release_unused(info: &ResourceInfo, alloc: &mut Allocator, new: &Value, old: &Value) {
    if !is_service(info) {
        return;
    }
    let (new_ip, new_ports) = super::alloc::held(new);
    let (old_ip, old_ports) = super::alloc::held(old);
    if let Some(ip) = old_ip {
        if new_ip != Some(ip) {
            alloc.free_ip(ip);
        }
    }
    for p in old_ports {
        if !new_ports.contains(&p) {
            alloc.free_port(p);
        }
    }
}

/// After a deletion: frees what the object held.
pub fn release_all(info: &ResourceInfo, alloc: &mut Allocator, obj: &Value) {
    if is_service(info) {
        alloc.release(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_on_nodes_are_deleted_gracefully() {
        let pods = tug_api::find("", "v1", "pods").unwrap();
        let bound = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(
            deletion(pods, &bound, None),
            Deletion::Graceful { grace: 30 }
        );
        assert_eq!(deletion(pods, &bound, Some(0)), Deletion::Now);
        assert_eq!(deletion(pods, &json!({"spec": {}}), None), Deletion::Now);
        let cms = tug_api::find("", "v1", "configmaps").unwrap();
        let fin = json!({"metadata": {"finalizers": ["x"]}});
        assert_eq!(deletion(cms, &fin, None), Deletion::Graceful { grace: 0 });
    }

    #[test]
    fn services_get_addresses_and_ports() {
        let svc = tug_api::find("", "v1", "services").unwrap();
        let mut a = Allocator::new(super::super::alloc::Cidr::default(), (30000, 32767));
        let mut obj = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let taken = allocate(svc, &mut a, &mut obj, None).unwrap();
        assert!(taken.ip.is_some());
        assert_eq!(obj["spec"]["ports"][0]["nodePort"], 30000);
        let mut again =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}});
        let errs = allocate(svc, &mut a, &mut again, None).unwrap_err();
        assert_eq!(errs[0].field, "spec.ports[0].nodePort");
        // An update without the address keeps it.
        let mut upd =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}});
        allocate(svc, &mut a, &mut upd, Some(&obj)).unwrap();
        assert_eq!(upd["spec"]["clusterIP"], obj["spec"]["clusterIP"]);
    }
}
