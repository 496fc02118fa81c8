//! What exists from the first start, as upstream's apiserver makes it: the namespaces
//! default, kube-system, kube-public and kube-node-lease, and the `kubernetes` service in
//! default (the first address of the service range) with Endpoints and an EndpointSlice
//! pointing at this API server, and the built-in PriorityClasses `system-cluster-critical` and
//! `system-node-critical`. Made through the same REST path as any client write.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::path::{self, Target};
use super::request::Query;
use super::{write, Registry};
use crate::status::ApiError;

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The PriorityClasses upstream's apiserver makes: name, value, description.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Objects the server makes are managed by `kube-apiserver`, as upstream's.
fn internal_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("kube-apiserver"),
    );
    h
}

/// The target of a built-in resource URL (the served set's built-in part never changes).
fn target(reg: &Registry, group: &str, version: &str, rest: &str) -> Result<Target, ApiError> {
    path::parse(&reg.resources, group, version, rest, rest)
}

async fn create_if_absent(reg: &Arc<Registry>, t: &Target, obj: &Value) -> Result<(), ApiError> {
    reg.cache.wait_fresh().await?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let key = super::object::relative_key(t.namespace.as_deref(), name);
    if reg.cache.resource(t.info).get(&key).is_some() {
        return Ok(());
    }
    let body = Bytes::from(serde_json::to_vec(obj).unwrap_or_default());
    match write::create(reg, t, &Query::default(), &internal_headers(), &body).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == StatusCode::CONFLICT => Ok(()),
        Err(e) => Err(e),
    }
}

async fn create_or_replace(
    reg: &Arc<Registry>,
    collection: &Target,
    item: &Target,
    obj: &Value,
) -> Result<(), ApiError> {
    let body = Bytes::from(serde_json::to_vec(obj).unwrap_or_default());
    let q = Query::default();
    match write::create(reg, collection, &q, &internal_headers(), &body).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == StatusCode::CONFLICT => {
            write::replace(reg, item, &q, &internal_headers(), &body, write::Part::Main)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Makes the system namespaces and the `kubernetes` service, pointing at `address:port`.
pub async fn run(reg: &Arc<Registry>, address: IpAddr, port: u16) -> Result<(), ApiError> {
    let namespaces = target(reg, "", "v1", "namespaces")?;
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } });
        create_if_absent(reg, &namespaces, &obj).await?;
    }
    let classes = target(reg, "scheduling.k8s.io", "v1", "priorityclasses")?;
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        let obj = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": { "name": name },
            "value": value,
            "description": description,
            "preemptionPolicy": "PreemptLowerPriority",
        });
        create_if_absent(reg, &classes, &obj).await?;
    }
    let cluster_ip = reg.allocator().cidr().nth(1).to_string();
    let labels = json!({ "component": "apiserver", "provider": "kubernetes" });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "kubernetes", "labels": labels },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": port }],
            "sessionAffinity": "None",
        },
    });
    create_if_absent(
        reg,
        &target(reg, "", "v1", "namespaces/default/services")?,
        &service,
    )
    .await?;
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" },
        },
        "subsets": [{
            "addresses": [{ "ip": address.to_string() }],
            "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
        }],
    });
    create_or_replace(
        reg,
        &target(reg, "", "v1", "namespaces/default/endpoints")?,
        &target(reg, "", "v1", "namespaces/default/endpoints/kubernetes")?,
        &endpoints,
    )
    .await?;
    let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "labels": { "kubernetes.io/service-name": "kubernetes" },
        },
        "addressType": family,
        "endpoints": [{ "addresses": [address.to_string()], "conditions": { "ready": true } }],
        "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
    });
    create_or_replace(
        reg,
        &target(
            reg,
            "discovery.k8s.io",
            "v1",
            "namespaces/default/endpointslices",
        )?,
        &target(
            reg,
            "discovery.k8s.io",
            "v1",
            "namespaces/default/endpointslices/kubernetes",
        )?,
        &slice,
    )
    .await?;
    Ok(())
}
