//! A minimal HTTPS client for benchmarks: one HTTP/1.1 connection per simulated client,
//! authenticated with the admin client certificate a `tug server` wrote, as kubectl or a
//! controller would connect.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::{invalid, Result};

/// TLS settings trusting the cluster CA and presenting the admin certificate, from a
/// server's `<data-dir>/server/tls`.
pub fn tls_config(tls_dir: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let ca = CertificateDer::from_pem_file(tls_dir.join("ca.crt"))
        .map_err(|e| invalid("reading ca.crt", e))?;
    let cert = CertificateDer::from_pem_file(tls_dir.join("admin.crt"))
        .map_err(|e| invalid("reading admin.crt", e))?;
    let key = PrivateKeyDer::from_pem_file(tls_dir.join("admin.key"))
        .map_err(|e| invalid("reading admin.key", e))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(|e| invalid("the cluster CA", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .map_err(|e| invalid("the admin certificate", e))?;
    Ok(Arc::new(config))
}

/// One client connection.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
}

/// A response: status and body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl Conn {
    /// Connects to `127.0.0.1:port`.
    pub async fn open(port: u16, tls: Arc<rustls::ClientConfig>) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| invalid("connecting", e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("127.0.0.1").map_err(|e| invalid("server name", e))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| invalid("TLS handshake", e))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| invalid("HTTP handshake", e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { send })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
        content_type: &str,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        if body.is_some() {
            req = req.header("content-type", content_type);
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| invalid("building a request", e))?;
        self.send
            .ready()
            .await
            .map_err(|e| invalid("connection", e))?;
        self.send
            .send_request(req)
            .await
            .map_err(|e| invalid("request", e))
    }

    /// Sends one request and reads the whole response.
    pub async fn call(&mut self, method: &str, path: &str, body: Option<Bytes>) -> Result<Reply> {
        self.call_as(method, path, body, "application/json").await
    }

    /// Sends one request with a body of the given Content-Type and reads the response.
    pub async fn call_as(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
        content_type: &str,
    ) -> Result<Reply> {
        let res = self.send(method, path, body, content_type).await?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| invalid("reading a response", e))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// Sends a GET and returns the response body as a stream of chunks (watches).
    pub async fn stream(&mut self, path: &str) -> Result<hyper::body::Incoming> {
        Ok(self.send("GET", path, None, "").await?.into_body())
    }
}

/// The tokio ↔ hyper I/O adapter.
pub use hyper_util::rt::TokioIo;
