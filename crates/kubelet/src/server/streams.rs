//! `/exec/{ns}/{pod}/{container}`, `/attach/{ns}/{pod}/{container}` and
//! `/portForward/{ns}/{pod}`: the kubelet asks the runtime (CRI Exec, Attach, PortForward)
//! for a URL on its streaming server, then hands the client's HTTP/1.1 upgrade request to
//! that URL and, once the runtime switches protocols, splices the two upgraded connections
//! byte for byte. The runtime speaks the Kubernetes streaming protocols itself (SPDY/3.1
//! with `v4.channel.k8s.io` …, WebSocket with `channel.k8s.io` … `v4`), so whatever the
//! client asked for is negotiated end to end; a refused upgrade goes back to the client as
//! the runtime answered it. WebSocket `v5.channel.k8s.io` for exec and attach, which
//! containerd 1.6 does not speak, is answered by the kubelet itself ([`super::translate`]).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::translate::{self, Streams};
use super::{Body, Failure, Query};
use crate::cri::{self, api};
use crate::pods::runtime::PodRuntime;
use crate::pods::Kubelet;

/// Request headers not passed to the runtime: its own `Host`, our credentials, and the
/// framing of a body that is not forwarded.
const DROPPED: &[http::HeaderName] = &[
    http::header::HOST,
    http::header::AUTHORIZATION,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
];

/// The stdin, stdout, stderr and tty flags of an exec or attach request, as upstream's
/// `remotecommand` server reads them (a tty has no separate stderr).
fn stream_flags(q: &Query) -> Result<Streams, Failure> {
    let (stdin, stdout, tty) = (q.flag("stdin"), q.flag("stdout"), q.flag("tty"));
    let stderr = q.flag("stderr") && !tty;
    if !stdin && !stdout && !q.flag("stderr") {
        return Err(Failure::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        ));
    }
    Ok(Streams {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

/// Runs a command in a container.
pub async fn exec(
    k: &Arc<Kubelet>,
    ns: &str,
    pod: &str,
    container: &str,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let cmd = q.all("command");
    if cmd.is_empty() {
        return Err(Failure::bad_request(
            "you must specify at least one command for the container".into(),
        ));
    }
    let s = stream_flags(q)?;
    let container_id = running_container(k, ns, pod, container).await?;
    let url = k
        .cri
        .runtime
        .clone()
        .exec(api::ExecRequest {
            container_id,
            cmd,
            tty: s.tty,
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
        })
        .await
        .map_err(cri::call("Exec"))
        .map_err(runtime_failure)?
        .into_inner()
        .url;
    forward(&url, req, s).await
}

/// Hands a WebSocket v5 session to the translator and anything else to the runtime.
async fn forward(url: &str, req: Request<Incoming>, s: Streams) -> Result<Response<Body>, Failure> {
    if translate::wants_v5(req.headers()) {
        return translate::serve(url, req, s).await;
    }
    proxy(url, req).await
}

/// Attaches to a container's main process.
pub async fn attach(
    k: &Arc<Kubelet>,
    ns: &str,
    pod: &str,
    container: &str,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let s = stream_flags(q)?;
    let container_id = running_container(k, ns, pod, container).await?;
    let url = k
        .cri
        .runtime
        .clone()
        .attach(api::AttachRequest {
            container_id,
            stdin: s.stdin,
            tty: s.tty,
            stdout: s.stdout,
            stderr: s.stderr,
        })
        .await
        .map_err(cri::call("Attach"))
        .map_err(runtime_failure)?
        .into_inner()
        .url;
    forward(&url, req, s).await
}

/// Forwards ports of a pod's network namespace (the ports come in the stream's headers, or
/// in `?ports=` for WebSocket clients).
pub async fn port_forward(
    k: &Arc<Kubelet>,
    ns: &str,
    pod_name: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let pod = k
        .pods
        .get_in(ns, pod_name)
        .ok_or_else(|| Failure::not_found(format!("pod {pod_name:?} does not exist")))?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let rt = PodRuntime::list(&k.cri, ns, pod_name)
        .await
        .map_err(runtime_failure)?;
    let sandbox = rt
        .ready_sandbox(&uid)
        .ok_or_else(|| Failure::not_found(format!("pod not found ({pod_name}_{ns})")))?;
    let ports: Vec<i32> = Query::parse(req.uri().query())
        .all("ports")
        .iter()
        .flat_map(|p| p.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let url = k
        .cri
        .runtime
        .clone()
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: sandbox.id.clone(),
            port: ports,
        })
        .await
        .map_err(cri::call("PortForward"))
        .map_err(runtime_failure)?
        .into_inner()
        .url;
    proxy(&url, req).await
}

/// The runtime id of the running instance of `container`, as upstream's `findContainer`
/// finds it.
async fn running_container(
    k: &Kubelet,
    ns: &str,
    pod_name: &str,
    container: &str,
) -> Result<String, Failure> {
    let pod = k
        .pods
        .get_in(ns, pod_name)
        .ok_or_else(|| Failure::not_found(format!("pod {pod_name:?} does not exist")))?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let rt = PodRuntime::list(&k.cri, ns, pod_name)
        .await
        .map_err(runtime_failure)?;
    rt.instances
        .iter()
        .filter(|i| i.uid == uid && i.name == container && i.running())
        .max_by_key(|i| (i.attempt, i.status.created_at))
        .map(|i| i.id.clone())
        .ok_or_else(|| Failure::not_found(format!("container not found ({container:?})")))
}

/// A runtime error as upstream's streaming `WriteError` answers it: NotFound → 404,
/// anything else 500, the message as text.
fn runtime_failure(e: cri::Error) -> Failure {
    let code = if e.is_not_found() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

/// An HTTP/1.1 connection (with upgrades) to the runtime's streaming server at `url`; the
/// sender, the server's authority and the parsed URL.
pub(super) async fn connect(
    url: &str,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        http::uri::Authority,
        http::Uri,
    ),
    Failure,
> {
    let unreachable =
        |e: &dyn std::fmt::Display| Failure::internal(format!("streaming server {url}: {e}"));
    let target: http::Uri = url.parse().map_err(|e| unreachable(&e))?;
    let authority = target
        .authority()
        .ok_or_else(|| unreachable(&"no host in the URL"))?
        .clone();
    let tcp = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| unreachable(&e))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "streaming server connection ended with an error");
        }
    });
    Ok((sender, authority, target))
}

/// Sends the client's upgrade request to the runtime's streaming `url` and, when the
/// runtime switches protocols, answers 101 with its headers and splices the two
/// connections; any other answer goes back as it is.
async fn proxy(url: &str, mut req: Request<Incoming>) -> Result<Response<Body>, Failure> {
    let (mut sender, authority, target) = connect(url).await?;
    let unreachable =
        |e: &dyn std::fmt::Display| Failure::internal(format!("streaming server {url}: {e}"));
    // The runtime's URL carries its own token; a WebSocket port-forward names its ports in
    // the client's query.
    let path = match (target.query(), req.uri().query()) {
        (Some(q), _) => format!("{}?{q}", target.path()),
        (None, Some(q)) => format!("{}?{q}", target.path()),
        (None, None) => target.path().to_owned(),
    };
    let mut out = Request::builder().method(req.method().clone()).uri(path);
    for (name, value) in req.headers() {
        if !DROPPED.contains(name) {
            out = out.header(name, value);
        }
    }
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| unreachable(&e))?;
    let out = out
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(&e))?;
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable(&e))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        return Ok(Response::from_parts(
            parts,
            body.map_err(std::io::Error::other).boxed_unsync(),
        ));
    }
    let runtime_upgrade = hyper::upgrade::on(&mut resp);
    let mut answer = Response::new(super::full(Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = resp.headers().clone();
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, runtime_upgrade) {
            Ok((client, runtime)) => {
                let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(runtime));
                if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
                    tracing::debug!(error = %e, "stream ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    Ok(answer)
}
