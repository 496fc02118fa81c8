//! The kubelet's HTTPS API, the part of upstream's kubelet server the API server calls for
//! the streaming pod subresources: `GET /containerLogs/{ns}/{pod}/{container}` ([`logs`]),
//! and `/exec/…`, `/attach/…`, `/portForward/{ns}/{pod}` ([`streams`]), which hand the
//! client's connection upgrade to the container runtime's streaming server.
//!
//! TLS with a self-signed certificate made on first start under `<agent dir>/kubelet/` (the
//! API server does not verify it, as upstream without `--kubelet-certificate-authority`);
//! every request must carry `Authorization: Bearer <token>` with the shared secret given in
//! [`crate::Options::api_token`], or gets a 401. Start at [`Listener::bind`] and
//! [`Listener::serve`].

pub mod logs;
pub mod spdy;
pub mod streams;
pub mod translate;
pub mod websocket;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::pods::Kubelet;

/// The body of every answer: bytes, maybe streamed.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The serving certificate could not be made.
    #[error("making the kubelet's serving certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A stored certificate or key does not parse.
    #[error("reading the kubelet's serving certificate: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    /// rustls refused the configuration.
    #[error("kubelet TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The port is taken or not ours.
    #[error("the kubelet cannot listen on {addr}: {source} (pick another with --kubelet-port)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A request the kubelet refuses, answered as upstream's kubelet does: the status and a
/// plain-text message (the API server turns it into a `Status`).
#[derive(Debug)]
pub struct Failure {
    /// The HTTP status.
    pub code: StatusCode,
    /// The message.
    pub message: String,
}

impl Failure {
    /// 400 with `message`.
    pub fn bad_request(message: String) -> Self {
        Failure {
            code: StatusCode::BAD_REQUEST,
            message,
        }
    }

    /// 404 with `message`.
    pub fn not_found(message: String) -> Self {
        Failure {
            code: StatusCode::NOT_FOUND,
            message,
        }
    }

    /// 500 with `message`.
    pub fn internal(message: String) -> Self {
        Failure {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }

    /// The plain-text answer.
    pub fn into_response(self) -> Response<Body> {
        text(self.code, self.message)
    }
}

/// A plain-text answer.
pub fn text(code: StatusCode, message: String) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(message)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A body of `bytes`.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

/// A request's query, in order, repeated keys kept (`command=sh&command=-c`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter: `1` (what upstream's API server sends), `true` and the other
    /// spellings Go's `strconv.ParseBool` takes, or the key alone.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| matches!(v, "" | "1" | "t" | "T" | "true" | "TRUE" | "True"))
    }

    /// An integer parameter; 400 when it is not one.
    pub fn int(&self, key: &str) -> Result<Option<i64>, Failure> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Failure::bad_request(format!("{key}: {v:?} is not an integer"))),
        }
    }
}

/// A bound, TLS-configured listener, made before the kubelet registers its node so a taken
/// port fails the start.
pub struct Listener {
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
}

impl Listener {
    /// Loads (or makes, under `dir`) the serving certificate for `node_name` and `ip`, and
    /// binds `0.0.0.0:port`.
    pub async fn bind(dir: &Path, node_name: &str, ip: IpAddr, port: u16) -> Result<Self, Error> {
        let (cert, key) = serving_cert(dir, node_name, ip)?;
        let chain =
            CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // Upgrades (exec, attach, port-forward) are HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Listener {
            tcp,
            tls: Arc::new(config),
        })
    }

    /// Serves until the future is dropped: one task per connection, HTTP/1.1 with upgrades.
    pub async fn serve(self, kubelet: Arc<Kubelet>, token: String) {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        let shared = Arc::new(Shared { kubelet, token });
        if let Ok(addr) = self.tcp.local_addr() {
            tracing::info!(%addr, "kubelet API listening");
        }
        loop {
            let (tcp, peer) = match self.tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet API: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, shared) = (acceptor.clone(), shared.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "kubelet API: TLS handshake failed");
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "kubelet API: connection ended with an error");
                }
            });
        }
    }
}

/// What every request handler shares.
struct Shared {
    kubelet: Arc<Kubelet>,
    token: String,
}

/// Whether `header` is `Bearer <token>`, compared in constant time.
fn authorized(token: &str, header: Option<&http::HeaderValue>) -> bool {
    let Some(given) = header
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    if !authorized(
        &shared.token,
        req.headers().get(http::header::AUTHORIZATION),
    ) {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized".into());
    }
    // Namespaces, pods and containers have DNS names: nothing in them is percent-encoded.
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let q = Query::parse(req.uri().query());
    let k = &shared.kubelet;
    let method = req.method().clone();
    let result = match (segs.as_slice(), &method) {
        (["containerLogs", ns, pod, container], &Method::GET) => {
            logs::serve(k, ns, pod, container, &q).await
        }
        (["exec", ns, pod, container], &Method::GET | &Method::POST) => {
            streams::exec(k, ns, pod, container, &q, req).await
        }
        (["attach", ns, pod, container], &Method::GET | &Method::POST) => {
            streams::attach(k, ns, pod, container, &q, req).await
        }
        (["portForward", ns, pod], &Method::GET | &Method::POST) => {
            streams::port_forward(k, ns, pod, req).await
        }
        (["healthz"], &Method::GET) => Ok(text(StatusCode::OK, "ok".into())),
        _ => Err(Failure::not_found("404 page not found".into())),
    };
    result.unwrap_or_else(Failure::into_response)
}

/// The serving certificate and key (PEM) under `dir`, made self-signed on first start for
/// the node's name, its IP and localhost.
fn serving_cert(dir: &Path, node_name: &str, ip: IpAddr) -> Result<(String, String), Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let (cert_path, key_path) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key = rcgen::KeyPair::generate()?;
    let names = vec![node_name.to_owned(), ip.to_string(), "localhost".to_owned()];
    let mut params = rcgen::CertificateParams::new(names)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{node_name}@{now}"));
    let cert = params.self_signed(&key)?;
    write_private(&key_path, &key.serialize_pem()).map_err(io(&key_path))?;
    std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?
        .write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shared_token_passes() {
        let h = |s: &'static str| http::HeaderValue::from_static(s);
        assert!(authorized(
            "K10ab::server:cd",
            Some(&h("Bearer K10ab::server:cd"))
        ));
        assert!(!authorized(
            "K10ab::server:cd",
            Some(&h("Bearer K10ab::server:ce"))
        ));
        assert!(!authorized("K10ab::server:cd", Some(&h("Bearer K10ab"))));
        assert!(!authorized(
            "K10ab::server:cd",
            Some(&h("Basic K10ab::server:cd"))
        ));
        assert!(!authorized("K10ab::server:cd", None));
    }

    #[test]
    fn queries_keep_repeated_keys_and_read_flags_as_upstream() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo%20hi&stdin=1&tty=true&stdout=false&stderr",
        ));
        assert_eq!(q.all("command"), ["sh", "-c", "echo hi"]);
        assert!(q.flag("stdin") && q.flag("tty") && q.flag("stderr"));
        assert!(!q.flag("stdout") && !q.flag("follow"));
        assert!(Query::parse(Some("tailLines=x")).int("tailLines").is_err());
        assert_eq!(
            Query::parse(Some("tailLines=3")).int("tailLines").ok(),
            Some(Some(3))
        );
    }

    #[test]
    fn the_certificate_is_made_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
        let first = serving_cert(dir.path(), "n1", ip).expect("made");
        let again = serving_cert(dir.path(), "n1", ip).expect("read");
        assert_eq!(first, again);
        assert!(first.0.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
