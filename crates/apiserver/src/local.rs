//! The in-process transport: a kube-rs [`kube::Client`] whose requests go straight into the
//! router, without TLS, sockets or HTTP framing. `tug server` runs its controllers, scheduler
//! and hollow kubelets on it, as one authenticated user each.

use std::sync::Arc;

use axum::Router;
use tower::ServiceExt;

use crate::authn::UserInfo;

/// A client that sends every request to `router` as `user`. Requests carry the User-Agent
/// `<component>/v1.37.0 (tug)` (the user name without `system:`), so writes without an explicit
/// fieldManager are managed by `kube-controller-manager`, `kube-scheduler`, … as upstream's.
pub fn client(router: Router, user: UserInfo) -> kube::Client {
    let component = user.name.strip_prefix("system:").unwrap_or(&user.name);
    let agent = http::HeaderValue::from_str(&format!(
        "{component}/v{}.{}.0 (tug)",
        crate::routes::KUBERNETES_MAJOR,
        crate::routes::KUBERNETES_MINOR
    ))
    .unwrap_or_else(|_| http::HeaderValue::from_static("tug"));
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(user.clone());
        req.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert_with(|| agent.clone());
        router.clone().oneshot(req)
    });
    kube::Client::new(service, "default")
}

/// Starting an in-process API server failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] tug_store::Error),
    /// Making the system objects failed.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// An API server over `store`, with the system namespaces and the `kubernetes` service made,
/// ready to serve in-process clients: what tests and benchmarks that run components in one
/// process start from.
pub async fn start(store: Arc<dyn tug_store::Store>) -> Result<Router, StartError> {
    // As upstream's integration test server: no ServiceAccount admission, since no
    // controller makes the accounts it would wait for.
    let config = crate::rest::Config {
        disabled_admission_plugins: vec!["ServiceAccount".to_owned()],
        ..crate::rest::Config::default()
    };
    let registry = crate::rest::Registry::start(store, config).await?;
    let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    crate::rest::bootstrap::run(&registry, loopback, 6443)
        .await
        .map_err(|e| StartError::Bootstrap(e.message))?;
    Ok(crate::routes::router(registry))
}

/// [`start`] over a fresh in-memory store.
pub async fn in_memory() -> Result<Router, StartError> {
    start(Arc::new(tug_store::embedded::EmbeddedStore::in_memory()?)).await
}

/// The user a component of `tug server` acts as, as upstream names them
/// (`system:kube-scheduler`, `system:kube-controller-manager`, …).
pub fn component_user(name: &str) -> UserInfo {
    UserInfo {
        name: name.to_owned(),
        uid: String::new(),
        groups: vec!["system:authenticated".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;

    #[tokio::test]
    async fn a_local_client_reads_and_writes() {
        let router = in_memory().await.unwrap_or_else(|e| panic!("{e}"));
        let client = client(router, component_user("test"));
        let api: Api<Namespace> = Api::all(client);
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "local"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        api.create(&Default::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        let got = api
            .get("local")
            .await
            .unwrap_or_else(|e| panic!("get: {e}"));
        assert_eq!(got.metadata.name.as_deref(), Some("local"));
        let err = api.get("absent").await.err();
        assert!(matches!(err, Some(kube::Error::Api(s)) if s.code == 404));
    }
}
