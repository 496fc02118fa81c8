//! HTTPS serving: a rustls listener that asks for (but does not require) a client
//! certificate signed by the cluster CA, HTTP/1.1 and HTTP/2 through hyper, and
//! authentication of every request before the router sees it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::authn::Authenticator;
use crate::pki::Pki;
use crate::status::ApiError;

/// Setting up TLS failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM block could not be parsed.
    #[error("parsing {what}: {source}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Paths anyone may read, as upstream's `system:public-info-viewer` role allows, and
/// `/cacerts`, the CA agents check against their join token (as k3s).
const PUBLIC: &[&str] = &[
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/version/",
    "/cacerts",
];

/// The rustls configuration: the serving certificate, optional client certificates verified
/// against the cluster CA, ALPN h2 and http/1.1.
pub fn tls_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca_cert.as_bytes()) {
        let ca = ca.map_err(|source| Error::Pem {
            what: "the CA certificate",
            source,
        })?;
        roots.add(ca)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let chain = CertificateDer::pem_slice_iter(pki.serving_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            what: "the serving certificate",
            source,
        })?;
    let key =
        PrivateKeyDer::from_pem_slice(pki.serving_key.as_bytes()).map_err(|source| Error::Pem {
            what: "the serving key",
            source,
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections on `listener` until `shutdown` resolves, authenticating each request
/// (the client certificate once per connection, bearer tokens per request) and handing it to `router` with the [`UserInfo`](crate::authn::UserInfo) as an extension.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    authenticator: Arc<Authenticator>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let (acceptor, authenticator, router) =
            (acceptor.clone(), authenticator.clone(), router.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            // A client certificate names the user of every request on this connection.
            let cert_user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::authn::cert_user(c.as_ref()));
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let router = router.clone();
                let user = cert_user.clone().or_else(|| {
                    authenticator.token_user(
                        req.headers()
                            .get(http::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok()),
                    )
                });
                let user = user.map(|u| crate::authn::impersonate(u, req.headers()));
                async move {
                    let mut req = req.map(axum::body::Body::new);
                    match user {
                        Some(Ok(user)) => {
                            req.extensions_mut().insert(user);
                        }
                        Some(Err(message)) => {
                            let e = if message.contains("is forbidden") {
                                ApiError::forbidden(crate::status::Target::NONE, message)
                            } else {
                                ApiError::bad_request(message)
                            };
                            return Ok::<_, Infallible>(e.into_response());
                        }
                        None if PUBLIC.contains(&req.uri().path()) => {}
                        None => {
                            return Ok::<_, Infallible>(ApiError::unauthorized().into_response())
                        }
                    }
                    router.oneshot(req).await
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // With upgrades: exec, attach and port-forward switch protocols (SPDY, WebSocket).
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
