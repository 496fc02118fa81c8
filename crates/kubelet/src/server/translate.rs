//! WebSocket `v5.channel.k8s.io` for exec and attach, which kubectl ≥ 1.30 asks for first
//! and containerd 1.6's streaming server does not speak: the kubelet answers the WebSocket
//! itself and talks SPDY/3.1 `v4.channel.k8s.io` to the runtime, as upstream's API server
//! translates for kubelets. Channels map to streams: 0 stdin, 1 stdout, 2 stderr, 3 error
//! (the exit status), 4 resize; v5's close signal (channel 255) half-closes stdin, which is
//! what v4 over WebSocket cannot say.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use super::spdy::{self, Frame};
use super::websocket::{self, Message};
use super::{Body, Failure};

/// The WebSocket subprotocol translated here.
pub const V5: &str = "v5.channel.k8s.io";
/// What is asked of the runtime.
const V4: &str = "v4.channel.k8s.io";
const SYN_REPLY: u16 = 2;
const GOAWAY: u16 = 7;

/// Which streams a session has (the request's stdin, stdout, stderr and tty).
#[derive(Clone, Copy, Debug)]
pub struct Streams {
    /// stdin.
    pub stdin: bool,
    /// stdout.
    pub stdout: bool,
    /// stderr (never with a tty).
    pub stderr: bool,
    /// A tty (with a resize stream).
    pub tty: bool,
}

/// Whether the request is a WebSocket upgrade offering `v5.channel.k8s.io`.
pub fn wants_v5(h: &HeaderMap) -> bool {
    let websocket = h
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    websocket
        && h.get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == V5)
}

/// Opens an SPDY session to the runtime's streaming `url`, then answers the client's
/// WebSocket upgrade and relays between the two.
pub async fn serve(
    url: &str,
    mut req: Request<Incoming>,
    streams: Streams,
) -> Result<Response<Body>, Failure> {
    let key = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Failure::bad_request("missing Sec-WebSocket-Key".into()))?
        .to_owned();
    let runtime = connect(url).await?;
    let client = hyper::upgrade::on(&mut req);
    let mut answer = Response::new(super::full(Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = answer.headers_mut();
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(V5),
    );
    let accept = HeaderValue::from_str(&websocket::accept_key(&key))
        .map_err(|e| Failure::bad_request(format!("Sec-WebSocket-Key: {e}")))?;
    h.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    tokio::spawn(async move {
        match client.await {
            Ok(client) => relay(TokioIo::new(client), TokioIo::new(runtime), streams).await,
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    Ok(answer)
}

/// Upgrades a connection to the runtime's streaming server to SPDY/3.1.
async fn connect(url: &str) -> Result<hyper::upgrade::Upgraded, Failure> {
    let unreachable =
        |e: &dyn std::fmt::Display| Failure::internal(format!("streaming server {url}: {e}"));
    let (mut sender, authority, target) = super::streams::connect(url).await?;
    let path = target
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let out = Request::post(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", V4)
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(&e))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable(&e))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(unreachable(&format!(
            "answered {} to an SPDY upgrade",
            resp.status()
        )));
    }
    hyper::upgrade::on(&mut resp)
        .await
        .map_err(|e| unreachable(&e))
}

async fn send<W: AsyncWrite + Unpin>(w: &Mutex<W>, bytes: &[u8]) -> std::io::Result<()> {
    let mut w = w.lock().await;
    w.write_all(bytes).await?;
    w.flush().await
}

/// Relays one session until the runtime ends it (or the client goes away).
async fn relay<C, R>(client: C, runtime: R, s: Streams)
where
    C: tokio::io::AsyncRead + AsyncWrite + Send + 'static,
    R: tokio::io::AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut client_in, client_out) = tokio::io::split(client);
    let (mut runtime_in, runtime_out) = tokio::io::split(runtime);
    let (client_out, runtime_out) = (
        Arc::new(Mutex::new(client_out)),
        Arc::new(Mutex::new(runtime_out)),
    );
    // The client's streams, in upstream's order: error, stdin, stdout, stderr, resize.
    let mut writer = spdy::Writer::default();
    // Client stream ids are odd, in order.
    let mut next_id = 1u32;
    let mut open = |kind: &str, wanted: bool| -> (Option<u32>, Vec<u8>) {
        if !wanted {
            return (None, Vec::new());
        }
        let id = next_id;
        next_id += 2;
        (Some(id), writer.syn_stream(id, &[("streamtype", kind)]))
    };
    // With a tty, the terminal's size comes first: the runtime starts the process once the
    // streams exist, and a size that arrives after the start is seen late.
    let mut early: Vec<Vec<u8>> = Vec::new();
    if s.tty {
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while let Ok(m) =
            tokio::time::timeout_at(until, websocket::read_message(&mut client_in)).await
        {
            match m {
                Ok(Message::Data(m)) => {
                    let size = m.first() == Some(&4);
                    early.push(m);
                    if size {
                        break;
                    }
                }
                Ok(Message::Ping(p)) => {
                    let mut w = client_out.lock().await;
                    let _ = websocket::write_pong(&mut *w, &p).await;
                }
                Ok(Message::Close) | Err(_) => return,
            }
        }
    }
    let (error, f0) = open("error", true);
    let (stdin, f1) = open("stdin", s.stdin);
    let (stdout, f2) = open("stdout", s.stdout);
    let (stderr, f3) = open("stderr", s.stderr);
    let (resize, f4) = open("resize", s.tty);
    let opened = [error, stdin, stdout, stderr, resize]
        .iter()
        .flatten()
        .count();
    if send(&runtime_out, &[f0, f1, f2, f3, f4].concat())
        .await
        .is_err()
    {
        return;
    }
    // Data goes only to streams the runtime has answered (as client-go's CreateStream
    // waits): before that it may not be read.
    let mut replies = 0;
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while replies < opened {
        match tokio::time::timeout_at(until, spdy::read_frame(&mut runtime_in)).await {
            Ok(Ok(Frame::Control {
                kind: SYN_REPLY, ..
            })) => replies += 1,
            Ok(Ok(Frame::Control { kind, payload })) if kind == spdy::PING => {
                let _ = send(&runtime_out, &spdy::control(spdy::PING, 0, &payload)).await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => {
                let mut w = client_out.lock().await;
                let _ = websocket::write_close(&mut *w).await;
                return;
            }
        }
    }
    let early: Vec<u8> = early
        .iter()
        .filter_map(|m| to_runtime(m, stdin, resize))
        .flatten()
        .collect();
    if !early.is_empty() && send(&runtime_out, &early).await.is_err() {
        return;
    }

    // Client → runtime.
    let (runtime_w, to_client) = (runtime_out.clone(), client_out.clone());
    let upstream = tokio::spawn(async move {
        loop {
            let m = match websocket::read_message(&mut client_in).await {
                Ok(Message::Data(m)) => m,
                Ok(Message::Ping(p)) => {
                    let mut w = to_client.lock().await;
                    if websocket::write_pong(&mut *w, &p).await.is_err() {
                        break;
                    }
                    continue;
                }
                Ok(Message::Close) | Err(_) => break,
            };
            let Some(frame) = to_runtime(&m, stdin, resize) else {
                continue;
            };
            if send(&runtime_w, &frame).await.is_err() {
                break;
            }
        }
        // The client is gone: ending the runtime's session stops what it runs.
        let _ = runtime_w.lock().await.shutdown().await;
    });

    // Runtime → client.
    loop {
        match spdy::read_frame(&mut runtime_in).await {
            Ok(Frame::Data { stream, data, .. }) => {
                let channel = match Some(stream) {
                    s if s == stdout => 1,
                    s if s == stderr => 2,
                    s if s == error => 3,
                    _ => continue,
                };
                if data.is_empty() {
                    continue;
                }
                let mut w = client_out.lock().await;
                if websocket::write_channel(&mut *w, channel, &data)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(Frame::Control { kind, payload }) if kind == spdy::PING => {
                if send(&runtime_out, &spdy::control(spdy::PING, 0, &payload))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(Frame::Control { kind, .. }) if kind == GOAWAY => break,
            Ok(Frame::Control { kind, payload }) => {
                tracing::debug!(kind, ?payload, "spdy control frame from the runtime");
            }
            Err(_) => break,
        }
    }
    let mut w = client_out.lock().await;
    let _ = websocket::write_close(&mut *w).await;
    let _ = w.shutdown().await;
    upstream.abort();
}

/// The SPDY frame for a client's message: stdin data, a resize event, or v5's close
/// signal (channel 255, naming the channel that is done: stdin half-closes).
fn to_runtime(m: &[u8], stdin: Option<u32>, resize: Option<u32>) -> Option<Vec<u8>> {
    let (&channel, body) = m.split_first()?;
    match (channel, stdin, resize) {
        (0, Some(id), _) => Some(spdy::data(id, body, false)),
        (4, _, Some(id)) => Some(spdy::data(id, body, false)),
        (255, Some(id), _) if body.first() == Some(&0) => Some(spdy::data(id, &[], true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_upgrades_offering_v5_are_translated() {
        let mut h = HeaderMap::new();
        h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        assert!(!wants_v5(&h), "v4 goes to the runtime as it is");
        h.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        assert!(wants_v5(&h));
        h.insert(http::header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(!wants_v5(&h));
    }

    #[test]
    fn channels_map_to_streams_and_close_half_closes_stdin() {
        let (stdin, resize) = (Some(3), Some(9));
        assert_eq!(
            to_runtime(b"\x00ab", stdin, resize),
            Some(spdy::data(3, b"ab", false))
        );
        assert_eq!(
            to_runtime(b"\x04{}", stdin, resize),
            Some(spdy::data(9, b"{}", false))
        );
        assert_eq!(
            to_runtime(b"\xff\x00", stdin, resize),
            Some(spdy::data(3, b"", true))
        );
        assert_eq!(
            to_runtime(b"\x00ab", None, resize),
            None,
            "no stdin asked for"
        );
        assert_eq!(
            to_runtime(b"\x01ab", stdin, resize),
            None,
            "stdout is not written"
        );
        assert_eq!(to_runtime(b"", stdin, resize), None);
    }
}
