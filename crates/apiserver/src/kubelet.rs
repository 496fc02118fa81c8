//! The streaming pod subresources, served by the pod's kubelet: `pods/log` (a GET whose
//! answer is streamed back), `pods/exec`, `pods/attach` and `pods/portforward` (HTTP/1.1
//! upgrades to SPDY or WebSocket, spliced byte for byte once the kubelet switches
//! protocols). As upstream's `registry/core/pod/rest`: the pod is read from the watch cache,
//! its container checked (`ValidateContainer`), its node's address (InternalIP first) and
//! kubelet port (`status.daemonEndpoints.kubeletEndpoint.Port`) found, and the request
//! forwarded, query included, over TLS without verifying the kubelet's self-signed
//! certificate (as upstream without `--kubelet-certificate-authority`), with the cluster's
//! join token as bearer. [`KubeletClient`] travels to the handler as a request extension.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use crate::rest::path::Target;
use crate::rest::request::Query;
use crate::rest::Registry;
use crate::status::ApiError;

/// The subresources of pods the kubelet serves.
pub const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

/// The kubelet port when a node does not say (upstream's default).
pub const DEFAULT_PORT: u16 = 10250;

/// How long connecting to a kubelet may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers of an upgrade request the kubelet (and the runtime behind it) negotiates.
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// How the API server reaches kubelets: TLS without verification, and the token.
pub struct KubeletClient {
    token: String,
    tls: tokio_rustls::TlsConnector,
}

impl KubeletClient {
    /// A client presenting `token` (the cluster's join token, which kubelets check).
    pub fn new(token: String) -> Result<Arc<Self>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(KubeletClient {
            token,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }))
    }

    /// Sends `req` to the kubelet at `host:port` on a connection of its own (kept open for
    /// an upgrade).
    async fn send(
        &self,
        host: &str,
        port: u16,
        req: http::Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: {e}"))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended with an error");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("{addr}: {e}"))
    }
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeletClient")
    }
}

/// Accepts any certificate (the handshake's signatures are still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether `t` is a pod subresource the kubelet serves.
pub fn serves(t: &Target) -> bool {
    t.info.group.is_empty()
        && t.info.plural == "pods"
        && t.name.is_some()
        && t.sub.as_deref().is_some_and(|s| SUBRESOURCES.contains(&s))
}

/// Serves a streaming subresource of a pod (see [`serves`]).
pub async fn proxy(reg: &Arc<Registry>, t: &Target, req: Request) -> Response {
    forward(reg, t, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn forward(reg: &Arc<Registry>, t: &Target, mut req: Request) -> Result<Response, ApiError> {
    let sub = t.sub.as_deref().unwrap_or("");
    let verb = match *req.method() {
        Method::GET => "get",
        Method::POST => "create",
        _ => "",
    };
    let verbs = t
        .info
        .subresources
        .iter()
        .find(|s| s.name == sub)
        .map_or(&[][..], |s| s.verbs);
    if !verbs.contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    let client = req
        .extensions()
        .get::<Arc<KubeletClient>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("this API server has no kubelet client".into()))?;
    let pod = current(reg, t).await?;
    let (ns, name) = (t.namespace.as_deref().unwrap_or(""), t.name_str());
    let q = Query::parse(req.uri().query());
    let upgrade = sub != "log";
    let container = match sub {
        "portforward" => String::new(),
        _ => validate_container(&pod, name, q.get("container").unwrap_or(""))?,
    };
    if upgrade && !wants_upgrade(req.headers()) {
        return Err(ApiError::bad_request("Upgrade request required".into()));
    }
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node.is_empty() {
        if !upgrade {
            // Upstream answers an empty log for a pod not yet scheduled.
            return Ok(plain(StatusCode::OK, Body::empty()));
        }
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let (host, port) = node_location(reg, node)?;
    let path = match sub {
        "log" => format!("/containerLogs/{ns}/{name}/{container}"),
        "exec" => format!("/exec/{ns}/{name}/{container}"),
        "attach" => format!("/attach/{ns}/{name}/{container}"),
        _ => format!("/portForward/{ns}/{name}"),
    };
    let uri = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut out = http::Request::builder()
        .method(if upgrade {
            req.method().clone()
        } else {
            Method::GET
        })
        .uri(uri);
    if upgrade {
        for (k, v) in req.headers() {
            if UPGRADE_HEADERS.contains(&k.as_str()) {
                out = out.header(k, v);
            }
        }
    }
    let bearer = HeaderValue::from_str(&format!("Bearer {}", client.token))
        .map_err(|e| ApiError::internal(format!("the kubelet token: {e}")))?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let out = out
        .header(http::header::AUTHORIZATION, bearer)
        .header(http::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(format!("building the kubelet request: {e}")))?;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let mut resp = client.send(&host, port, out).await.map_err(|e| {
        ApiError::internal(format!(
            "error dialing backend: the kubelet of node {node:?}: {e}"
        ))
    })?;
    match client_upgrade {
        None if resp.status().is_success() => {
            let (parts, body) = resp.into_parts();
            let mut r = plain(parts.status, Body::new(body));
            if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
                r.headers_mut()
                    .insert(http::header::CONTENT_TYPE, ct.clone());
            }
            Ok(r)
        }
        None => Err(kubelet_error(resp).await),
        Some(client_upgrade) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let kubelet_upgrade = hyper::upgrade::on(&mut resp);
            let mut answer = Response::new(Body::empty());
            *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            *answer.headers_mut() = resp.headers().clone();
            tokio::spawn(splice(client_upgrade, kubelet_upgrade));
            Ok(answer)
        }
        // A refused upgrade goes back as the kubelet (or the runtime) answered it: clients
        // read it (kubectl falls back from WebSocket to SPDY on it).
        Some(_) => {
            let (parts, body) = resp.into_parts();
            Ok(Response::from_parts(parts, Body::new(body)))
        }
    }
}

/// Copies bytes both ways between the client's and the kubelet's upgraded connections.
async fn splice(client: hyper::upgrade::OnUpgrade, kubelet: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, kubelet) {
        Ok((client, kubelet)) => {
            let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(kubelet));
            if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
                tracing::debug!(error = %e, "stream ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
    }
}

fn plain(code: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

/// Whether the request asks to switch protocols (`Connection: Upgrade` and `Upgrade`).
fn wants_upgrade(h: &HeaderMap) -> bool {
    let connection_upgrade = h.get_all(http::header::CONNECTION).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    connection_upgrade && h.contains_key(http::header::UPGRADE)
}

/// A kubelet's refusal as a `Status`, as upstream's `GenericHttpResponseChecker` makes it:
/// the kubelet's text becomes the message.
async fn kubelet_error(resp: http::Response<hyper::body::Incoming>) -> ApiError {
    const MAX: usize = 64 * 1024;
    let code = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    match code {
        StatusCode::BAD_REQUEST => ApiError::bad_request(text),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::internal(text),
        StatusCode::NOT_FOUND => ApiError {
            code,
            reason: "NotFound",
            message: text,
            details: None,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::internal(format!(
            "the kubelet refused the API server's credentials ({code}): {text}"
        )),
        _ => ApiError {
            code,
            reason: "",
            message: text,
            details: None,
        },
    }
}

/// The pod, from the watch cache once it is fresh.
async fn current(reg: &Registry, t: &Target) -> Result<Value, ApiError> {
    reg.cache.wait_fresh().await?;
    let key = crate::rest::object::relative_key(t.namespace.as_deref(), t.name_str());
    reg.cache
        .resource(t.info)
        .get(&key)
        .map(|c| c.value().clone())
        .ok_or_else(|| ApiError::not_found(t.status_target()))
}

/// The container a request is for, checked as upstream's `ValidateContainer`: none named
/// is fine when the pod has exactly one.
pub fn validate_container(pod: &Value, name: &str, container: &str) -> Result<String, ApiError> {
    let names = |field: &str| -> Vec<&str> {
        pod["spec"][field]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    if container.is_empty() {
        return match containers.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            many => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::bad_request(msg))
            }
        };
    }
    let known = containers
        .iter()
        .chain(&init)
        .chain(&names("ephemeralContainers"))
        .any(|c| *c == container);
    if !known {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    Ok(container.to_owned())
}

/// Where a node's kubelet listens: its first address by upstream's preferred types
/// (InternalIP, then ExternalIP, then Hostname) and its kubelet port.
fn node_location(reg: &Registry, node: &str) -> Result<(String, u16), ApiError> {
    let info = tug_api::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served".into()))?;
    let obj = reg.cache.resource(info).get(node).ok_or_else(|| {
        ApiError::not_found(crate::status::Target {
            resource: "nodes",
            group: "",
            name: node,
        })
    })?;
    location(obj.value()).ok_or_else(|| {
        ApiError::internal(format!(
            "node {node:?} has no address to reach its kubelet at"
        ))
    })
}

/// A node object's kubelet address and port.
pub fn location(node: &Value) -> Option<(String, u16)> {
    let addresses = node["status"]["addresses"].as_array()?;
    let host = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|ty| {
            addresses
                .iter()
                .find(|a| a["type"].as_str() == Some(*ty))
                .and_then(|a| a["address"].as_str())
                .filter(|a| !a.is_empty())
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_PORT);
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_checked_as_upstream_checks_them() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(validate_container(&one, "p", "").ok(), Some("app".into()));
        let err = validate_container(&one, "p", "nope")
            .err()
            .map(|e| (e.code, e.message));
        assert_eq!(
            err,
            Some((
                StatusCode::BAD_REQUEST,
                "container nope is not valid for pod p".into()
            ))
        );
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                   "initContainers": [{"name": "i"}]}});
        assert_eq!(
            validate_container(&two, "p", "").err().map(|e| e.message),
            Some(
                "a container name must be specified for pod p, choose one of: [a b] or one of \
                 the init containers: [i]"
                    .into()
            )
        );
        assert_eq!(validate_container(&two, "p", "i").ok(), Some("i".into()));
    }

    #[test]
    fn nodes_are_reached_at_their_internal_ip_and_kubelet_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"},
                          {"type": "InternalIP", "address": "10.0.0.7"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10333}}}});
        assert_eq!(location(&node), Some(("10.0.0.7".into(), 10333)));
        let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(location(&bare), Some(("n1".into(), DEFAULT_PORT)));
        assert_eq!(location(&json!({"status": {}})), None);
    }

    #[test]
    fn upgrades_need_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!wants_upgrade(&h));
        h.insert(http::header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(wants_upgrade(&h));
    }
}
