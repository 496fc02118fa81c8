//! Watches, served from the watch cache: newline-delimited JSON events on a streamed 200
//! response. Without a resourceVersion (or with "0") the current objects come first as
//! ADDED; with one, only later changes. `sendInitialEvents` ends the initial objects with
//! the `k8s.io/initial-events-end` bookmark; `allowWatchBookmarks` adds a bookmark every
//! minute and before a timeout closes the stream; a revision older than the cache's window
//! is an ERROR event carrying a 410 Expired Status. Objects leaving or entering a selector
//! arrive as DELETED or ADDED, as upstream. Each event reuses the object's cached bytes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::cache::{CacheEvent, Cached, EventType};
use super::path::Target;
use super::read::{parse_rv, Selectors};
use super::render::{self, Include};
use super::request::{negotiate, Form, Query};
use super::Registry;
use crate::status::ApiError;

/// How often an idle watch with bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// How a watch renders events.
struct Renderer {
    t: Target,
    custom: Option<std::sync::Arc<super::resources::CustomVersion>>,
    form: Form,
    include: Include,
    columns_sent: bool,
}

impl Renderer {
    fn frame(&mut self, kind: &str, obj: &Cached) -> Bytes {
        match self.form {
            Form::Json => {
                let bytes = render::versioned_bytes(self.t.info, self.custom.as_deref(), obj);
                let mut out = BytesMut::with_capacity(bytes.len() + 40);
                out.put_slice(b"{\"type\":\"");
                out.put_slice(kind.as_bytes());
                out.put_slice(b"\",\"object\":");
                out.put_slice(&bytes);
                out.put_slice(b"}\n");
                out.freeze()
            }
            Form::Table(version) => {
                let meta = json!({ "resourceVersion": obj.rv.to_string() });
                let table = render::table(
                    self.t.info,
                    self.custom.as_deref(),
                    version,
                    &[obj.value()],
                    self.include,
                    meta,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                line(&json!({ "type": kind, "object": table }))
            }
            Form::Metadata => line(&json!({
                "type": kind,
                "object": render::partial_metadata(obj.value()),
            })),
        }
    }

    fn bookmark(&self, rv: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let (kind, api_version) = match self.form {
            Form::Json => (self.t.info.kind.to_owned(), self.t.info.group_version()),
            Form::Table(v) => ("Table".to_owned(), format!("meta.k8s.io/{v}")),
            Form::Metadata => (
                "PartialObjectMetadata".to_owned(),
                "meta.k8s.io/v1".to_owned(),
            ),
        };
        line(&json!({
            "type": "BOOKMARK",
            "object": { "kind": kind, "apiVersion": api_version, "metadata": meta },
        }))
    }
}

fn line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn error_frame(err: &ApiError) -> Bytes {
    line(&json!({ "type": "ERROR", "object": err.body() }))
}

/// The event a watcher with selectors sees for a cache event, if any.
fn visible(t: &Target, sel: &Selectors, ns: Option<&str>, e: &CacheEvent) -> Option<EventType> {
    if ns.is_some() && e.object.namespace() != ns {
        return None;
    }
    let now = sel.matches_cached(t, &e.object);
    let before = e.prev.as_ref().is_some_and(|p| sel.matches_cached(t, p));
    match (e.kind, before, now) {
        (EventType::Deleted, _, _) if before || now => Some(EventType::Deleted),
        (EventType::Deleted, _, _) => None,
        (EventType::Added, _, true) => Some(EventType::Added),
        (EventType::Modified, true, true) => Some(EventType::Modified),
        (EventType::Modified, false, true) => Some(EventType::Added),
        (EventType::Modified, true, false) => Some(EventType::Deleted),
        _ => None,
    }
}

/// Serves a watch request.
pub async fn serve(
    reg: &Arc<Registry>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let form = negotiate(headers)?;
    let include = Include::from_query(q)?;
    let mut sel = Selectors::from_query(t, q)?;
    if let Some(name) = &t.name {
        // GET .../pods/x?watch=true: the legacy single-object watch.
        sel.fields = tug_api::selectors::FieldSelector::parse(&format!("metadata.name={name}"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true" || v == "1");
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty());
    if send_initial.is_some() {
        let bad = q.get("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks;
        if bad && send_initial == Some(true) {
            return Err(ApiError::bad_request(
                "sendInitialEvents: Forbidden: sendInitialEvents is allowed only with \
                 resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true"
                    .to_owned(),
            ));
        }
    }
    let timeout = match q.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(u64::try_from(s).unwrap_or(u64::MAX)),
        // Upstream picks 30–60 minutes at random; kubectl `get -w` ends when the stream does.
        _ => Duration::from_secs(1800 + u64::from(rand_byte()) * 7),
    };
    let cache = super::read::resource(reg, t);
    // Where the watch starts: 0 = with the current objects.
    if rv.is_none() {
        reg.cache.wait_fresh().await?;
    }
    let after = match (rv, send_initial) {
        // The current objects first (sendInitialEvents, or no revision as of old).
        (_, Some(true)) | (None | Some("0"), None) => 0,
        // sendInitialEvents=false: only changes from now (or the revision given).
        (None | Some("0"), Some(false)) => reg.cache.revision().load(Ordering::Acquire).max(1),
        (Some(n), _) => {
            let n = parse_rv(n)?;
            reg.cache.wait_for(n).await?;
            n
        }
    };
    let ns = t.namespace.clone();
    let mut r = Renderer {
        t: t.clone(),
        custom: t.custom.clone(),
        form,
        include,
        columns_sent: false,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    match cache.subscribe(after, ns.as_deref(), reg.cache.revision()) {
        Err(old) => {
            let err = ApiError::expired(format!(
                "too old resource version: {after} ({})",
                old.oldest
            ));
            let _ = tx.try_send(error_frame(&err));
        }
        Ok(sub) => {
            let reg = reg.clone();
            let t = t.clone();
            tokio::spawn(async move {
                // Events arrive in revision order; anything at or before `last` was delivered.
                let mut last = if after > 0 { after } else { sub.rv };
                for obj in &sub.initial {
                    if sel.matches_cached(&t, obj) && tx.send(r.frame("ADDED", obj)).await.is_err()
                    {
                        return;
                    }
                }
                if send_initial == Some(true) && tx.send(r.bookmark(sub.rv, true)).await.is_err() {
                    return;
                }
                let mut live = sub.live;
                let mut pending = sub.replay;
                let deadline = tokio::time::sleep(timeout);
                tokio::pin!(deadline);
                let mut tick = tokio::time::interval(BOOKMARK_EVERY);
                tick.reset();
                loop {
                    for e in pending.drain(..) {
                        if e.object.rv <= last {
                            continue;
                        }
                        last = last.max(e.object.rv);
                        if let Some(kind) = visible(&t, &sel, ns.as_deref(), &e) {
                            if tx.send(r.frame(kind.as_str(), &e.object)).await.is_err() {
                                return;
                            }
                        }
                    }
                    tokio::select! {
                        got = live.recv() => match got {
                            Ok(e) => pending.push(e),
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                let c = reg.cache.resource(t.info);
                                live = live.resubscribe();
                                match c.catch_up(last) {
                                    Ok(events) => pending = events,
                                    Err(old) => {
                                        let err = ApiError::expired(format!(
                                            "too old resource version: {last} ({})", old.oldest));
                                        let _ = tx.send(error_frame(&err)).await;
                                        return;
                                    }
                                }
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        _ = tick.tick(), if bookmarks => {
                            let rv = reg.cache.revision().load(Ordering::Acquire).max(last);
                            // Deliver anything queued first, so the bookmark skips nothing.
                            while let Ok(e) = live.try_recv() { pending.push(e); }
                            if pending.is_empty() && tx.send(r.bookmark(rv, false)).await.is_err() {
                                return;
                            }
                        }
                        () = &mut deadline => {
                            if bookmarks {
                                while let Ok(e) = live.try_recv() { pending.push(e); }
                                if pending.is_empty() {
                                    let rv = last.max(reg.cache.revision().load(Ordering::Acquire));
                                    let _ = tx.send(r.bookmark(rv, false)).await;
                                }
                            }
                            return;
                        }
                        () = tx.closed() => return,
                    }
                }
            });
        }
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    let mut res = Response::new(Body::from_stream(stream));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(res)
}

/// A cheap random byte (spreading watch timeouts needs no cryptographic quality).
fn rand_byte() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos >> 8) as u8
}
