//! API discovery, legacy and aggregated, built from the resource catalogue.
//!
//! Legacy: `GET /api` (`APIVersions`), `/apis` (`APIGroupList`), `/apis/<g>` (`APIGroup`),
//! `/api/v1` and `/apis/<g>/<v>` (`APIResourceList`), as `k8s-openapi` types.
//!
//! Aggregated (`apidiscovery.k8s.io` v2 and v2beta1, one round trip for everything): served
//! on `/api` and `/apis` when the Accept header asks for it, with a Content-Type that names
//! the variant served — kubectl reads the body as legacy otherwise. A client that offers only
//! v2beta1 (kubectl ≤ 1.29) gets v2beta1; one that offers neither gets legacy JSON.
//! `k8s-openapi` has no types for these documents, so they are defined here. Every document
//! is encoded once and served as shared bytes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use serde::Serialize;
use tug_api::ResourceInfo;

use crate::rest::Registry;
use crate::status::ApiError;

/// Every served resource, built-in ones in catalogue order, then custom ones.
pub type Served = [&'static ResourceInfo];

/// Groups other than core, in order, each with its versions in preference order.
fn groups(all: &Served) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in all.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.iter().map(|s| (*s).to_owned()).collect())
}

/// The `APIResourceList` of one group-version, or `None` if nothing is served there.
pub fn resource_list(all: &Served, group: &str, version: &str) -> Option<APIResourceList> {
    let mut resources = Vec::new();
    for r in all
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(APIResource {
            name: r.plural.to_owned(),
            singular_name: r.singular(),
            namespaced: r.namespaced,
            kind: r.kind.to_owned(),
            verbs: r.verbs.iter().map(|v| (*v).to_owned()).collect(),
            short_names: strings(r.short_names),
            categories: strings(r.categories),
            ..Default::default()
        });
        for s in r.subresources {
            let other_gv = s.group != r.group || s.version != r.version;
            resources.push(APIResource {
                name: format!("{}/{}", r.plural, s.name),
                singular_name: String::new(),
                namespaced: r.namespaced,
                kind: s.kind.to_owned(),
                verbs: s.verbs.iter().map(|v| (*v).to_owned()).collect(),
                group: other_gv.then(|| s.group.to_owned()),
                version: other_gv.then(|| s.version.to_owned()),
                ..Default::default()
            });
        }
    }
    (!resources.is_empty()).then(|| APIResourceList {
        group_version: group_version(group, version),
        resources,
    })
}

fn api_group(name: &str, versions: &[&str]) -> APIGroup {
    let gvs: Vec<GroupVersionForDiscovery> = versions
        .iter()
        .map(|v| GroupVersionForDiscovery {
            group_version: group_version(name, v),
            version: (*v).to_owned(),
        })
        .collect();
    APIGroup {
        name: name.to_owned(),
        preferred_version: gvs.first().cloned(),
        server_address_by_client_cidrs: None,
        versions: gvs,
    }
}

/// Which aggregated variant the client accepts, if any, in its order of preference.
fn aggregated_variant(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    accept.split(',').find_map(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.iter().any(|x| x.eq_ignore_ascii_case(p));
        if !(has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList")) {
            return None;
        }
        if has("v=v2") {
            Some("v2")
        } else if has("v=v2beta1") {
            Some("v2beta1")
        } else {
            None
        }
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveryList {
    kind: &'static str,
    api_version: String,
    metadata: serde_json::Value,
    items: Vec<GroupDiscovery>,
}

#[derive(Serialize)]
struct GroupDiscovery {
    metadata: serde_json::Value,
    versions: Vec<VersionDiscovery>,
}

#[derive(Serialize)]
struct VersionDiscovery {
    version: &'static str,
    resources: Vec<ResourceDiscovery>,
    freshness: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceDiscovery {
    resource: &'static str,
    response_kind: Gvk,
    scope: &'static str,
    singular_resource: String,
    verbs: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    short_names: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    categories: &'static [&'static str],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subresources: Vec<SubresourceDiscovery>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubresourceDiscovery {
    subresource: &'static str,
    response_kind: Gvk,
    verbs: &'static [&'static str],
}

#[derive(Serialize)]
struct Gvk {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
}

fn resource_discovery(r: &ResourceInfo) -> ResourceDiscovery {
    ResourceDiscovery {
        resource: r.plural,
        response_kind: Gvk {
            group: r.group,
            version: r.version,
            kind: r.kind,
        },
        scope: if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        },
        singular_resource: r.singular(),
        verbs: r.verbs,
        short_names: r.short_names,
        categories: r.categories,
        subresources: r
            .subresources
            .iter()
            .map(|s| SubresourceDiscovery {
                subresource: s.name,
                response_kind: Gvk {
                    group: s.group,
                    version: s.version,
                    kind: s.kind,
                },
                verbs: s.verbs,
            })
            .collect(),
    }
}

fn group_discovery(all: &Served, group: &str, versions: &[&'static str]) -> GroupDiscovery {
    GroupDiscovery {
        metadata: if group.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "name": group })
        },
        versions: versions
            .iter()
            .map(|v| VersionDiscovery {
                version: v,
                resources: all
                    .iter()
                    .filter(|r| r.group == group && r.version == *v)
                    .map(|r| resource_discovery(r))
                    .collect(),
                freshness: "Current",
            })
            .collect(),
    }
}

/// Every discovery document but `/api`'s legacy one (which names the request's host),
/// encoded once per set of served resources (rebuilt when CRDs change it).
pub struct Documents {
    /// `/apis` as `APIGroupList`.
    group_list: Bytes,
    /// `/apis/<g>` as `APIGroup`, by group.
    groups: HashMap<&'static str, Bytes>,
    /// `/api/v1` and `/apis/<g>/<v>` as `APIResourceList`, by group-version.
    resource_lists: HashMap<String, Bytes>,
    /// Aggregated `/api` and `/apis`, by (core?, variant).
    aggregated: HashMap<(bool, &'static str), Bytes>,
}

const VARIANTS: [&str; 2] = ["v2", "v2beta1"];

fn encode(value: &impl Serialize) -> Bytes {
    // Serializing these plain data types cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

impl Documents {
    /// Encodes the documents of the resources in `served`.
    pub fn build(served: &Served) -> Documents {
        let all = groups(served);
        let mut resource_lists = HashMap::new();
        let core = std::iter::once(("", vec!["v1"]));
        for (g, versions) in core.chain(all.iter().cloned()) {
            for v in versions {
                if let Some(list) = resource_list(served, g, v) {
                    resource_lists.insert(group_version(g, v), encode(&list));
                }
            }
        }
        let mut aggregated = HashMap::new();
        for variant in VARIANTS {
            let list = |items| DiscoveryList {
                kind: "APIGroupDiscoveryList",
                api_version: format!("apidiscovery.k8s.io/{variant}"),
                metadata: serde_json::json!({}),
                items,
            };
            aggregated.insert(
                (true, variant),
                encode(&list(vec![group_discovery(served, "", &["v1"])])),
            );
            let items = all
                .iter()
                .map(|(g, v)| group_discovery(served, g, v))
                .collect();
            aggregated.insert((false, variant), encode(&list(items)));
        }
        Documents {
            group_list: encode(&APIGroupList {
                groups: all.iter().map(|(g, v)| api_group(g, v)).collect(),
            }),
            groups: all
                .iter()
                .map(|(g, v)| (*g, encode(&api_group(g, v))))
                .collect(),
            resource_lists,
            aggregated,
        }
    }
}

fn json(body: Bytes, content_type: &str) -> Response {
    let mut response = body.into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

fn aggregated(docs: &Documents, core: bool, variant: &'static str) -> Response {
    let body = docs
        .aggregated
        .get(&(core, variant))
        .cloned()
        .unwrap_or_default();
    let content_type =
        format!("application/json;g=apidiscovery.k8s.io;v={variant};as=APIGroupDiscoveryList");
    let mut response = json(body, &content_type);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// `GET /api`.
pub async fn core(State(reg): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    if let Some(variant) = aggregated_variant(&headers) {
        return aggregated(&reg.resources.served().docs, true, variant);
    }
    Json(APIVersions {
        versions: vec!["v1".to_owned()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_owned(),
            server_address: headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        }],
    })
    .into_response()
}

/// `GET /apis`.
pub async fn groups_list(State(reg): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let served = reg.resources.served();
    match aggregated_variant(&headers) {
        Some(variant) => aggregated(&served.docs, false, variant),
        None => json(served.docs.group_list.clone(), "application/json"),
    }
}

/// `GET /apis/<group>`.
pub async fn group(State(reg): State<Arc<Registry>>, Path(name): Path<String>) -> Response {
    match reg.resources.served().docs.groups.get(name.as_str()) {
        Some(doc) => json(doc.clone(), "application/json"),
        None => ApiError::not_found_path(&format!("/apis/{name}")).into_response(),
    }
}

/// `GET /api/v1`.
pub async fn core_v1(State(reg): State<Arc<Registry>>) -> Response {
    match reg.resources.served().docs.resource_lists.get("v1") {
        Some(doc) => json(doc.clone(), "application/json"),
        None => ApiError::not_found_path("/api/v1").into_response(),
    }
}

/// `GET /apis/<group>/<version>`.
pub async fn group_version_resources(
    State(reg): State<Arc<Registry>>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    let served = reg.resources.served();
    match served
        .docs
        .resource_lists
        .get(&format!("{group}/{version}"))
    {
        Some(doc) => json(doc.clone(), "application/json"),
        None => ApiError::not_found_path(&format!("/apis/{group}/{version}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn negotiates_the_variant_the_client_prefers() {
        let k133 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let k128 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_variant(&accept(k133)), Some("v2"));
        assert_eq!(aggregated_variant(&accept(k128)), Some("v2beta1"));
        assert_eq!(aggregated_variant(&accept("application/json")), None);
        assert_eq!(aggregated_variant(&HeaderMap::new()), None);
    }

    #[test]
    fn resource_lists_carry_subresources_with_their_kinds() {
        let served: Vec<&'static ResourceInfo> = tug_api::catalogue().iter().collect();
        let apps = resource_list(&served, "apps", "v1").unwrap();
        let scale = apps
            .resources
            .iter()
            .find(|r| r.name == "deployments/scale")
            .unwrap();
        assert_eq!(scale.kind, "Scale");
        assert_eq!(scale.group.as_deref(), Some("autoscaling"));
        let status = apps
            .resources
            .iter()
            .find(|r| r.name == "deployments/status")
            .unwrap();
        assert_eq!(status.group, None);
        assert!(resource_list(&served, "apps", "v9").is_none());
        let autoscaling = groups(&served)
            .into_iter()
            .find(|(g, _)| *g == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling.1, ["v2", "v1"], "preferred version first");
    }
}
