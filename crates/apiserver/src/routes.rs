//! The router: health, version, discovery and OpenAPI endpoints, and the REST API over the
//! store.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::discovery;
use crate::status::ApiError;

/// The Kubernetes version Tugboat serves (its API types are those of this release).
pub const KUBERNETES_MAJOR: &str = "1";
/// See [`KUBERNETES_MAJOR`].
pub const KUBERNETES_MINOR: &str = "37";

/// What `/version` answers, as upstream's `version.Info`.
pub fn version_info() -> serde_json::Value {
    serde_json::json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.0+tug{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The router for everything the server answers.
pub fn router(registry: Arc<crate::rest::Registry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/version", get(|| async { axum::Json(version_info()) }))
        .route("/version/", get(|| async { axum::Json(version_info()) }))
        .route("/api", get(discovery::core))
        .route("/api/", get(discovery::core))
        .route("/api/v1", get(discovery::core_v1))
        .route("/apis", get(discovery::groups_list))
        .route("/apis/", get(discovery::groups_list))
        .route("/apis/{group}", get(discovery::group))
        .route(
            "/apis/{group}/{version}",
            get(discovery::group_version_resources),
        )
        .with_state(registry.clone())
        .merge(crate::openapi::routes(registry.openapi.clone()))
        .merge(crate::rest::routes(registry))
        .fallback(|uri: http::Uri| async move { ApiError::not_found_path(uri.path()) })
}
