//! The Kubernetes REST API over the store: one generic implementation for every resource in
//! the catalogue. A request's URL names the resource ([`path`]); reads are served from the
//! watch cache ([`cache`], [`read`], [`watch`]); writes go through the kind's strategy
//! (defaulting and validation from `tug_api::strategy`, plus the server-side rules in
//! [`write`] and [`kinds`]) to the store.

pub mod admission;
mod alloc;
pub mod bootstrap;
pub mod cache;
pub mod crds;
pub mod custom;
pub mod delete;
pub mod eviction;
pub mod fields;
pub mod kinds;
pub mod object;
pub mod patch;
pub mod patching;
pub mod path;
pub mod read;
pub mod render;
pub mod request;
pub mod resources;
pub mod reviews;
pub mod service_account;
mod stamp;
pub mod strict;
pub mod subresource;
pub mod token;
pub mod watch;
pub mod write;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http::{HeaderMap, Method};
use tug_store::Store;

use crate::authn::UserInfo;
use crate::status::ApiError;
use path::Target;
use request::Query;

/// Settings of the REST layer.
#[derive(Clone, Debug)]
pub struct Config {
    /// The range ClusterIPs come from (`--service-cidr`).
    pub service_cidr: alloc::Cidr,
    /// The NodePort range (`--service-node-port-range`).
    pub node_ports: (u16, u16),
    /// The key service account tokens are signed with; without one, TokenRequest is not
    /// served.
    pub service_account_keys: Option<Arc<crate::tokens::Keys>>,
    /// Admission plugins turned off (`--disable-admission-plugins`; names in
    /// [`admission::PLUGINS`]).
    pub disabled_admission_plugins: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_cidr: alloc::Cidr::default(),
            node_ports: (30000, 32767),
            service_account_keys: None,
            disabled_admission_plugins: Vec::new(),
        }
    }
}

/// The REST API's shared state.
pub struct Registry {
    /// The store everything lives in.
    pub store: Arc<dyn Store>,
    /// The watch cache.
    pub cache: Arc<cache::Cache>,
    /// ClusterIP and NodePort allocations.
    pub alloc: Mutex<alloc::Allocator>,
    /// The served resources (built-in and custom).
    pub resources: Arc<resources::Resources>,
    /// The OpenAPI documents (custom kinds registered by the CRD controller).
    pub openapi: Arc<crate::openapi::OpenApi>,
    /// The service account token key (TokenRequest).
    pub tokens: Option<Arc<crate::tokens::Keys>>,
    /// Admission plugins turned off.
    pub disabled_admission_plugins: Vec<String>,
    /// The server's authenticator, for TokenReview (set once the server has built it).
    pub authenticator: std::sync::OnceLock<Arc<crate::authn::Authenticator>>,
}

impl Registry {
    /// Fills the cache from the store and prepares the allocators from the services in it.
    pub async fn start(
        store: Arc<dyn Store>,
        config: Config,
    ) -> Result<Arc<Self>, tug_store::Error> {
        let cache = cache::Cache::start(store.clone()).await?;
        let mut allocator = alloc::Allocator::new(config.service_cidr, config.node_ports);
        if let Some(info) = tug_api::find("", "v1", "services") {
            let services = cache.resource(info);
            for svc in services.snapshot(None, cache.revision()).items {
                allocator.mark_used(svc.value());
            }
        }
        let registry = Arc::new(Registry {
            store,
            cache,
            alloc: Mutex::new(allocator),
            resources: Arc::new(resources::Resources::new()),
            openapi: Arc::new(crate::openapi::OpenApi::new()),
            tokens: config.service_account_keys,
            disabled_admission_plugins: config.disabled_admission_plugins,
            authenticator: std::sync::OnceLock::new(),
        });
        // Custom resources are served from the first request on.
        let mut served = crds::Accepted::default();
        crds::sync(&registry, &mut served).await;
        crds::spawn(registry.clone(), served);
        Ok(registry)
    }

    /// The allocator, even if a panicking holder poisoned it.
    pub fn allocator(&self) -> std::sync::MutexGuard<'_, alloc::Allocator> {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Routes for every resource URL.
pub fn routes(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/api/v1/{*rest}", any(core_handler))
        .route("/apis/{group}/{version}/{*rest}", any(group_handler))
        .with_state(registry)
}

async fn core_handler(
    State(reg): State<Arc<Registry>>,
    Path(rest): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let target = path::parse(&reg.resources, "", "v1", &rest, req.uri().path());
    // Pod logs, exec, attach and port-forward are the kubelet's: proxied, upgrades and all.
    if let Ok(t) = &target {
        if crate::kubelet::serves(t) {
            return crate::kubelet::proxy(&reg, t, req).await;
        }
    }
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().map(str::to_owned);
    let user = parts.extensions.get::<UserInfo>().cloned();
    handle(reg, target, parts.method, query, parts.headers, body, user).await
}

async fn group_handler(
    State(reg): State<Arc<Registry>>,
    Path((group, version, rest)): Path<(String, String, String)>,
    req: axum::extract::Request,
) -> Response {
    let target = path::parse(&reg.resources, &group, &version, &rest, req.uri().path());
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().map(str::to_owned);
    let user = parts.extensions.get::<UserInfo>().cloned();
    handle(reg, target, parts.method, query, parts.headers, body, user).await
}

async fn handle(
    reg: Arc<Registry>,
    target: Result<Target, ApiError>,
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
    user: Option<UserInfo>,
) -> Response {
    let result = async {
        let target = target?;
        let query = Query::parse(query.as_deref());
        let body = axum::body::to_bytes(body, request::MAX_BODY_BYTES + 1)
            .await
            .map_err(|_| ApiError::too_large())?;
        request::check_size(body.len())?;
        let (headers, body) = request::protobuf_to_json(headers, body)?;
        dispatch(&reg, target, method, query, headers, body, user).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch(
    reg: &Arc<Registry>,
    t: Target,
    method: Method,
    q: Query,
    headers: HeaderMap,
    body: bytes::Bytes,
    user: Option<UserInfo>,
) -> Result<Response, ApiError> {
    if let Some(sub) = t.sub.clone() {
        return subresource::handle(reg, &t, &sub, method, &q, &headers, &body).await;
    }
    let verb = match (&method, t.name.is_some()) {
        (&Method::GET, _) if q.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    if !t.info.verbs.contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    if reviews::answers(t.info.kind) {
        return reviews::answer(reg, &t, user.as_ref(), &body);
    }
    let part = write::Part::Main;
    match verb {
        "watch" => watch::serve(reg, &t, &q, &headers).await,
        "list" => read::list(reg, &t, &q, &headers).await,
        "get" => read::get(reg, &t, &q, &headers).await,
        "create" => write::create(reg, &t, &q, &headers, &body).await,
        "update" => write::replace(reg, &t, &q, &headers, &body, part).await,
        "patch" => patching::patch(reg, &t, &q, &headers, &body, part).await,
        "delete" => delete::delete(reg, &t, &q, &body).await,
        _ => delete::delete_collection(reg, &t, &q, &body).await,
    }
}
